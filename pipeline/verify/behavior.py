"""Layer 4, behaviour: the patches' probes hold their expectation on the patched toolchain and the
opposite one on vanilla, and a configured subset of the touched packages' own tests pass.

Probe contract (patches/README.md): in the probe directory, ``go build -o <tmp>/probe .``; run
``<tmp>/probe -expect=patched|vanilla`` with GOROOT and PATH pointing at the toolchain under test;
exit 0 = the expectation held; the last stdout line is one JSON object with the measured facts.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cmd import run
from .claims import Claim
from .goenv import go_env, host_target
from .model import FAIL, PASS, SKIP, LayerResult
from .toolchains import Toolchains


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


def run_tests(tc: Toolchains, spec: str, *, cache_dir: Path, timeout: float,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    results = []
    for pkg, pattern in parse_test_spec(spec):
        with tempfile.TemporaryDirectory(prefix="gopatch-test-") as tmp:
            exec_log = Path(tmp) / "exec.jsonl"
            env = go_env(tc.patched, cache_dir=cache_dir)
            env["GOPATCH_EXEC_LOG"] = str(exec_log)
            # The file, not `-m`: the wrapper then imports nothing of gopatch per test binary.
            wrapper = shlex.join([sys.executable, str(Path(__file__).with_name("execwrap.py"))])
            cmd = [tc.patched / "bin" / "go", "test", "-short", "-count=1", f"-timeout={int(timeout)}s",
                   f"-exec={wrapper}", *(["-run", pattern] if pattern else []), pkg]
            t0 = time.monotonic()
            try:
                proc = run(cmd, cwd=Path(tmp), env=env, log=log, check=False, timeout=timeout + 60)
                code, output = proc.returncode, (proc.stdout + proc.stderr)
            except subprocess.TimeoutExpired:
                code, output = None, f"timed out after {timeout + 60:.0f}s"
            binaries = [json.loads(line) for line in exec_log.read_text().splitlines()] if exec_log.exists() else []
            results.append({"package": pkg, "run": pattern, "exit": code, "ok": code == 0,
                            "seconds": round(time.monotonic() - t0, 2), "binaries": binaries,
                            "output": output[-3000:]})
    return results


def check(
    tc: Toolchains,
    claims: Sequence[Claim],
    *,
    cache_dir: Path,
    tests: str = "",
    timeout: float = 120,
    log: Callable[[str], None] | None = None,
) -> LayerResult:
    t0 = time.monotonic()
    if tc.target != host_target():
        return LayerResult(layer="behavior", status=SKIP, seconds=0.0,
                           summary=f"{tc.target} programs do not run on this {host_target()} machine")
    problems: list[str] = []
    probes = []
    for c in claims:
        if c.probe is None:
            probes.append({"patch": c.name, "skipped": "the patch declares no Probe:"})
            continue
        if not c.probe.is_dir():
            problems.append(f"patch {c.name}: probe directory {c.probe} does not exist.")
            continue
        entry = {"patch": c.name, "probe": str(c.probe)}
        for side, root in (("patched", tc.compiler), ("vanilla", tc.vanilla)):
            res = run_probe(c.probe, root, side, cache_dir=cache_dir, timeout=timeout, log=log)
            entry[side] = res
            if not res["ok"]:
                why = res.get("error") or f"exit {res['exit']}"
                problems.append(f"patch {c.name}: probe {c.probe.name} -expect={side} failed with the {side} "
                                f"toolchain ({why}).")
        probes.append(entry)
    test_results = run_tests(tc, tests, cache_dir=cache_dir, timeout=timeout, log=log) if tests.strip() else []
    for t in test_results:
        if not t["ok"]:
            problems.append(f"go test -short {t['package']}" + (f" -run {t['run']}" if t["run"] else "")
                            + f" failed with the patched toolchain (exit {t['exit']}).")
    n_probes = sum(1 for p in probes if "probe" in p)
    summary = (f"{n_probes} probe(s) run on patched and vanilla; {len(test_results)} test package(s)"
               + ("" if tests.strip() else " (none configured: [verify] tests)") + f"; {len(problems)} problem(s)")
    return LayerResult(layer="behavior", status=FAIL if problems else PASS, summary=summary, problems=problems,
                       details={"probes": probes, "tests": test_results}, seconds=time.monotonic() - t0)
