"""Layer 5, stability (``--soak DURATION``): a GC- and scheduler-heavy workload runs for the same
bounded time with vanilla and with patched under GODEBUG=gctrace=1,schedtrace=1000; the GC pause
distribution, GC count and the scheduler counters are compared and a regression beyond the
threshold fails the layer."""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cmd import run
from ..config import host_target
from ..errors import UsageError
from .goenv import go_env
from .model import FAIL, PASS, SKIP, LayerResult
from .toolchains import Toolchains

# Allocation churn (GC), goroutine ping-pong (scheduler) and blocking syscalls, which make the
# runtime hand Ps off (handoffp), for `-d` then exit 0.
WORKLOAD = r'''package main

import (
	"flag"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// retained keeps a steady live heap (~32 MiB) so that GC cycles have real marking work and a
// stable rhythm, instead of thousands of near-empty cycles whose pauses are timer noise.
var retained [8192][]byte

func main() {
	d := flag.Duration("d", 10*time.Second, "how long to run")
	flag.Parse()
	stop := time.Now().Add(*d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4*runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ch := make(chan int)
			go func() {
				for v := range ch {
					_ = v
				}
			}()
			for i := 0; time.Now().Before(stop); i++ {
				b := make([]byte, 512<<(i%4))
				if i%8 == 0 {
					mu.Lock()
					retained[(w*7919+i)%len(retained)] = b
					mu.Unlock()
				}
				ch <- i
				if i%256 == 0 {
					syscall.Getpid()
					if f, err := os.Open("/dev/null"); err == nil {
						f.Close()
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			close(ch)
		}(w)
	}
	wg.Wait()
}
'''

# gc 12 @1.234s 3%: 0.018+1.2+0.021 ms clock, ... : STW pauses are the first and third clock terms.
_GC = re.compile(r"^gc (\d+) @[\d.]+s \d+%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock")
_SCHED = re.compile(r"^SCHED \d+ms: (.*)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"--soak {text!r} is not a duration such as 30s, 2m or 1500ms.")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if value <= 0:
        raise UsageError(f"--soak {text!r} must be longer than zero.")
    return value


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def parse_trace(stderr: str) -> dict[str, Any]:
    """Figures from gctrace and schedtrace lines (pauses in milliseconds)."""
    pauses: list[float] = []
    gcs = 0
    sched: dict[str, str] = {}
    for line in stderr.splitlines():
        m = _GC.match(line)
        if m:
            gcs = max(gcs, int(m.group(1)))
            pauses += [float(m.group(2)), float(m.group(4))]
            continue
        m = _SCHED.match(line)
        if m:
            # key=value fields of the last SCHED line; a patch may add counters here.
            sched = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv and not kv.endswith("=["))
    return {
        "gc_count": gcs, "pauses": len(pauses),
        "pause_p50_ms": percentile(pauses, 0.50), "pause_p99_ms": percentile(pauses, 0.99),
        "pause_max_ms": max(pauses, default=0.0),
        "pause_mean_ms": statistics.fmean(pauses) if pauses else 0.0,
        "sched": sched,
    }


def soak_one(goroot: Path, seconds: float, *, cache_dir: Path, log=None) -> dict[str, Any]:
    env = go_env(goroot, cache_dir=cache_dir)
    with tempfile.TemporaryDirectory(prefix="gopatch-soak-") as tmp:
        (Path(tmp) / "main.go").write_text(WORKLOAD, encoding="utf-8")
        binary = Path(tmp) / "soak"
        run([goroot / "bin" / "go", "build", "-o", binary, "./main.go"], cwd=Path(tmp), env=env, log=log)
        env["GODEBUG"] = "gctrace=1,schedtrace=1000"
        t0 = time.monotonic()
        try:
            proc = run([binary, f"-d={seconds}s"], cwd=Path(tmp), env=env, log=log, check=False,
                       timeout=seconds * 3 + 30)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"did not finish within {seconds * 3 + 30:.0f}s"}
        figures = parse_trace(proc.stderr)
        figures.update(ok=proc.returncode == 0, exit=proc.returncode, seconds=round(time.monotonic() - t0, 2))
        return figures


def judge(vanilla: dict[str, Any], patched: dict[str, Any], threshold: float) -> list[str]:
    """Regressions: patched p50/p99 pause above vanilla by more than ``threshold`` (1.0 = +100 %)
    and by more than 0.5 ms. Measured here (2 shared cores), the p99 of two vanilla runs differed
    1.5 vs 5.9 ms, so the max pause is reported but not judged, and the floor keeps that noise from
    failing a release."""
    problems = []
    for side, figures in (("vanilla", vanilla), ("patched", patched)):
        if not figures.get("ok"):
            problems.append(f"the soak workload failed with the {side} toolchain "
                            f"({figures.get('error') or 'exit ' + str(figures.get('exit'))}).")
    if problems:
        return problems
    for key in ("pause_p50_ms", "pause_p99_ms"):
        v, p = vanilla[key], patched[key]
        if p > v * (1 + threshold) and p - v > 0.5:
            problems.append(f"GC {key[6:9]} pause regressed: {p:.3f} ms patched vs {v:.3f} ms vanilla "
                            f"(threshold +{threshold:.0%}).")
    if patched["gc_count"] == 0:
        problems.append("the patched run completed no GC cycle: the workload did not exercise the GC.")
    return problems


def check(tc: Toolchains, *, soak: str, cache_dir: Path, threshold: float,
          log: Callable[[str], None] | None = None) -> LayerResult:
    if not soak:
        return LayerResult(layer="stability", status=SKIP, summary="not run (pass --soak 30s to run it)")
    seconds = parse_duration(soak)
    if tc.target != host_target():
        return LayerResult(layer="stability", status=SKIP,
                           summary=f"{tc.target} programs do not run on this {host_target()} machine")
    t0 = time.monotonic()
    # One after the other: run side by side they would compete for the same cores.
    vanilla = soak_one(tc.vanilla, seconds, cache_dir=cache_dir, log=log)
    patched = soak_one(tc.compiler, seconds, cache_dir=cache_dir, log=log)
    problems = judge(vanilla, patched, threshold)
    new_counters = {k: v for k, v in patched.get("sched", {}).items() if k not in vanilla.get("sched", {})}
    summary = (f"{seconds:g}s each: p99 pause {vanilla.get('pause_p99_ms', 0):.3f} -> "
               f"{patched.get('pause_p99_ms', 0):.3f} ms, GCs {vanilla.get('gc_count', 0)} -> "
               f"{patched.get('gc_count', 0)}")
    return LayerResult(layer="stability", status=FAIL if problems else PASS, summary=summary, problems=problems,
                       details={"vanilla": vanilla, "patched": patched, "new_sched_counters": new_counters,
                                "threshold": threshold}, seconds=time.monotonic() - t0)
