"""Layer 4, behaviour: the patches' probes hold their expectation on the patched toolchain and the
opposite one on vanilla, and a configured subset of the touched packages' own tests pass.

Probe contract (patches/README.md): in the probe directory, ``go build -o <tmp>/probe .``; run
``<tmp>/probe -expect=patched|vanilla`` with GOROOT and PATH pointing at the toolchain under test;
exit 0 = the expectation held; the last stdout line is one JSON object with the measured facts.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..cmd import run
from ..config import host_target
from ..progress import PlainProgress
from .claims import Claim
from .goenv import go_env
from .model import FAIL, PASS, SKIP, LayerResult
from .toolchains import Toolchains
from .vcache import VanillaCache, dir_digest


def _last_json(stdout: str) -> Any:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def run_probe(probe: Path, goroot: Path, expect: str, *, cache_dir: Path, timeout: float,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    env = go_env(goroot, cache_dir=cache_dir)
    out: dict[str, Any] = {"toolchain": str(goroot), "expect": expect}
    with tempfile.TemporaryDirectory(prefix="gopatch-probe-") as tmp:
        binary = Path(tmp) / "probe"
        t0 = time.monotonic()
        try:
            build = run([goroot / "bin" / "go", "build", "-o", binary, "."], cwd=probe, env=env, log=log,
                        check=False, timeout=timeout)
            if build.returncode != 0:
                out.update(ok=False, exit=build.returncode, error="probe does not build",
                           stderr=build.stderr[-2000:])
                return out
            proc = run([binary, f"-expect={expect}"], cwd=probe, env=env, log=log, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            out.update(ok=False, exit=None, error=f"timed out after {timeout:.0f}s")
            return out
        facts = _last_json(proc.stdout)
        out.update(ok=proc.returncode == 0 and facts is not None, exit=proc.returncode, facts=facts,
                   stdout=proc.stdout[-2000:], stderr=proc.stderr[-2000:], seconds=round(time.monotonic() - t0, 2))
        if facts is None:
            out["error"] = "the last stdout line is not a JSON object (probe contract)"
    return out


def parse_test_spec(spec: str) -> list[tuple[str, str]]:
    """'runtime:TestGoroutineParallelism|TestSchedLocal sync' -> [(pkg, -run regex or '')]."""
    items = []
    for word in spec.split():
        pkg, _, pattern = word.partition(":")
        items.append((pkg, pattern))
    return items


def run_test(tc: Toolchains, pkg: str, pattern: str, *, cache_dir: Path, timeout: float,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``go test -short`` of one package with the patched toolchain, through the recording wrapper."""
    with tempfile.TemporaryDirectory(prefix="gopatch-test-") as tmp:
        exec_log = Path(tmp) / "exec.jsonl"
        env = go_env(tc.patched, cache_dir=cache_dir)
        env["GOPATCH_EXEC_LOG"] = str(exec_log)
        # The file, not `-m`: the wrapper then imports nothing of gopatch per test binary.
        wrapper = shlex.join([sys.executable, str(Path(__file__).with_name("execwrap.py"))])
        # -vet=off: verify runs tests for what the patched runtime does; go test's default vet pass
        # over the package (type-checking all of runtime and its tests) proves nothing about that.
        cmd = [tc.patched / "bin" / "go", "test", "-short", "-count=1", "-vet=off", f"-timeout={int(timeout)}s",
               f"-exec={wrapper}", *(["-run", pattern] if pattern else []), pkg]
        t0 = time.monotonic()
        try:
            proc = run(cmd, cwd=Path(tmp), env=env, log=log, check=False, timeout=timeout + 60)
            code, output = proc.returncode, (proc.stdout + proc.stderr)
        except subprocess.TimeoutExpired:
            code, output = None, f"timed out after {timeout + 60:.0f}s"
        binaries = [json.loads(line) for line in exec_log.read_text().splitlines()] if exec_log.exists() else []
        return {"package": pkg, "run": pattern, "exit": code, "ok": code == 0,
                "seconds": round(time.monotonic() - t0, 2), "binaries": binaries, "output": output[-3000:]}


def run_tests(tc: Toolchains, spec: str, *, cache_dir: Path, timeout: float,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    return [run_test(tc, pkg, pattern, cache_dir=cache_dir, timeout=timeout, log=log)
            for pkg, pattern in parse_test_spec(spec)]


def _probe_parts(probe: Path) -> dict[str, Any]:
    """What a vanilla probe result depends on besides the distribution: the probe's bytes and the
    machine it runs on (the build environment is go_env's, fixed)."""
    return {"probe": dir_digest(probe), "expect": "vanilla", "host": str(host_target())}


def _quiet(_: str) -> None:
    pass


def check(
    tc: Toolchains,
    claims: Sequence[Claim],
    *,
    cache_dir: Path,
    tests: str = "",
    timeout: float = 120,
    log: Callable[[str], None] | None = None,
    jobs: int = 0,
    vanilla_cache: bool = True,
) -> LayerResult:
    """Probes on both sides and the configured tests, in independent *lanes* run ``jobs`` at a time
    (0: one per CPU). A lane runs its steps one after the other: the patched probes share one
    toolchain's freshly compiled runtime and std, so running them side by side would compile the
    same packages twice; the vanilla probes are another lane (another compiler, nothing shared),
    each test package one more. Vanilla probe results come from the vanilla cache when the same
    probe bytes already held on the same distribution."""
    t0 = time.monotonic()
    if tc.target != host_target():
        return LayerResult(layer="behavior", status=SKIP, seconds=0.0,
                           summary=f"{tc.target} programs do not run on this {host_target()} machine")
    say = log or _quiet
    problems: list[str] = []
    probes: list[dict[str, Any]] = []
    vc = VanillaCache(cache_dir, tc.vanilla, enabled=vanilla_cache)
    lanes: dict[str, list[tuple[str, Callable[[], None]]]] = {"patched": [], "vanilla": []}
    cached = 0

    def probe_step(c: Claim, entry: dict[str, Any], side: str, root: Path) -> Callable[[], None]:
        def step() -> None:
            res = run_probe(c.probe, root, side, cache_dir=cache_dir, timeout=timeout, log=log)
            if side == "vanilla" and res["ok"]:  # a failure may be the weather: never stored
                vc.put("probe", _probe_parts(c.probe), res)
            entry[side] = res
        return step

    for c in claims:
        if c.probe is None:
            probes.append({"patch": c.name, "skipped": "the patch declares no Probe:"})
            continue
        if not c.probe.is_dir():
            problems.append(f"patch {c.name}: probe directory {c.probe} does not exist.")
            continue
        entry: dict[str, Any] = {"patch": c.name, "probe": str(c.probe)}
        probes.append(entry)
        lanes["patched"].append((f"probe {c.probe.name} -expect=patched", probe_step(c, entry, "patched", tc.compiler)))
        hit = vc.get("probe", _probe_parts(c.probe))
        if hit is not None:
            entry["vanilla"] = {**hit[0], "cached": str(hit[1])}
            cached += 1
            say(f"behavior: probe {c.probe.name} -expect=vanilla: held before on this distribution "
                f"(vanilla cache {hit[1].name[:12]})")
        else:
            lanes["vanilla"].append((f"probe {c.probe.name} -expect=vanilla",
                                     probe_step(c, entry, "vanilla", tc.vanilla)))
    test_results: list[dict[str, Any]] = []
    for pkg, pattern in parse_test_spec(tests):
        slot: dict[str, Any] = {}
        test_results.append(slot)

        def test_step(pkg: str = pkg, pattern: str = pattern, slot: dict[str, Any] = slot) -> None:
            slot.update(run_test(tc, pkg, pattern, cache_dir=cache_dir, timeout=timeout, log=log))
        lanes[f"test {pkg}"] = [(f"go test -short {pkg}" + (f" -run {pattern}" if pattern else ""), test_step)]

    _run_lanes({k: v for k, v in lanes.items() if v}, jobs=jobs, log=say)

    for entry in probes:
        for side in ("patched", "vanilla"):
            res = entry.get(side)
            if res is not None and not res["ok"]:
                why = res.get("error") or f"exit {res['exit']}"
                problems.append(f"patch {entry['patch']}: probe {Path(entry['probe']).name} -expect={side} failed "
                                f"with the {side} toolchain ({why}).")
    for t in test_results:
        if not t["ok"]:
            problems.append(f"go test -short {t['package']}" + (f" -run {t['run']}" if t["run"] else "")
                            + f" failed with the patched toolchain (exit {t['exit']}).")
    n_probes = sum(1 for p in probes if "probe" in p)
    summary = (f"{n_probes} probe(s) run on patched and vanilla"
               + (f" ({cached} vanilla result(s) from the vanilla cache)" if cached else "")
               + f"; {len(test_results)} test package(s)"
               + ("" if tests.strip() else " (none configured: [verify] tests)") + f"; {len(problems)} problem(s)")
    return LayerResult(layer="behavior", status=FAIL if problems else PASS, summary=summary, problems=problems,
                       details={"probes": probes, "tests": test_results, "vanilla_cached": cached,
                                "jobs": _jobs(jobs, len(lanes))},
                       seconds=time.monotonic() - t0)


def _jobs(jobs: int, lanes: int) -> int:
    return max(1, min(jobs or os.cpu_count() or 1, max(lanes, 1)))


def _run_lanes(lanes: dict[str, list[tuple[str, Callable[[], None]]]], *, jobs: int,
               log: Callable[[str], None]) -> None:
    """Run each lane's steps in order, up to ``jobs`` lanes at once, with one progress line per
    step start and end ('[vanilla 0:12] probe handoffp -expect=vanilla')."""
    progress = PlainProgress(log)

    def lane(name: str, steps: list[tuple[str, Callable[[], None]]]) -> None:
        for label, step in steps:
            progress.stage(name, f"{label} ...")
            t = time.monotonic()
            step()
            progress.stage(name, f"{label}: done in {time.monotonic() - t:.1f}s")

    workers = _jobs(jobs, len(lanes))
    if workers == 1:
        for name, steps in lanes.items():
            lane(name, steps)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="behavior") as pool:
        futures = [pool.submit(lane, name, steps) for name, steps in lanes.items()]
        for f in futures:
            f.result()
