"""Layer 1, version: the toolchain says it is the stamped build, for the right target, rooted in
the artifact (not in some other Go that happens to be on PATH)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from ..cmd import run
from ..records import BUILD_JSON, BuildRecord
from .goenv import go_env
from .model import FAIL, PASS, LayerResult
from .toolchains import Toolchains


def expected_version(tc: Toolchains, *, suffix: str, patch_count: int) -> tuple[str, str]:
    """(expectation, how it was derived). build.json beside the artifact wins when it names one."""
    build_json = tc.patched.parent / BUILD_JSON
    record = BuildRecord.load_cached(build_json)
    recorded = record.version if record is not None else None
    if recorded:
        return recorded, f"exactly, as recorded in {build_json}"
    if suffix and patch_count:
        return f"{tc.release}-{suffix}.{patch_count}", f"[build] version_suffix={suffix} and {patch_count} patch(es) (prefix)"
    return tc.release, "the release (no suffix configured)"


def check(
    tc: Toolchains,
    *,
    cache_dir: Path,
    suffix: str,
    patch_count: int,
    timeout: float = 120,
    log: Callable[[str], None] | None = None,
) -> LayerResult:
    t0 = time.monotonic()
    problems: list[str] = []
    facts: dict[str, str] = {"VERSION": tc.version}
    want, why = expected_version(tc, suffix=suffix, patch_count=patch_count)
    facts["expected"] = f"{want} ({why})"
    exact = why.startswith("exactly")
    # A prefix must end where a version component ends: -gopatch.1 must not accept -gopatch.12.
    matches = tc.version == want or (not exact and tc.version[len(want):len(want) + 1] in ("+", "-")
                                     and tc.version.startswith(want))
    if not matches:
        problems.append(f"{tc.patched}/VERSION says {tc.version!r}; expected {want!r} ({why}).")

    env = go_env(tc.compiler, cache_dir=cache_dir)
    go = tc.patched / "bin" / "go"
    if tc.compiler == tc.patched:
        out = run([go, "version"], env=env, log=log, check=False, timeout=timeout)
        facts["go version"] = out.stdout.strip() or out.stderr.strip()
        expect_line = f"go version {tc.version} {tc.target.goos}/{tc.target.goarch}"
        if facts["go version"] != expect_line:
            problems.append(f"`{go} version` printed {facts['go version']!r}, expected {expect_line!r}.")
        # Without GOROOT in the environment the go command finds its root from its own path:
        # exactly what a user who puts bin/ on PATH gets.
        bare = {k: v for k, v in env.items() if k != "GOROOT"}
        out = run([go, "env", "GOROOT"], env=bare, log=log, check=False, timeout=timeout)
        facts["go env GOROOT"] = out.stdout.strip()
        if os.path.realpath(out.stdout.strip() or "/nonexistent") != os.path.realpath(tc.patched):
            problems.append(f"`{go} env GOROOT` printed {out.stdout.strip()!r}, not the artifact {tc.patched}.")
    else:
        # A cross toolchain cannot run here: ask the host go command to read the binary's build info.
        target_go = next((p for p in (go, tc.patched / "bin" / tc.target.slug / "go", go.with_suffix(".exe"))
                          if p.is_file()), go)
        out = run([tc.compiler / "bin" / "go", "version", "-m", target_go], env=env, log=log, check=False, timeout=timeout)
        text = out.stdout.strip()
        facts["go version -m"] = "\n".join(text.splitlines()[:12])
        first = text.splitlines()[0] if text else out.stderr.strip()
        if not first.endswith(f": {tc.version}"):
            problems.append(f"`go version -m {target_go}` reported {first!r}, expected the stamped {tc.version!r}.")
        for key, value in (("GOOS", tc.target.goos), ("GOARCH", tc.target.goarch)):
            if f"build\t{key}={value}" not in text:
                problems.append(f"`go version -m {target_go}` does not record {key}={value}.")
        facts["go env GOROOT"] = "(not run: the target's go command does not run on this machine)"
    status = FAIL if problems else PASS
    summary = f"{tc.version} for {tc.target}" + ("" if not problems else f": {len(problems)} problem(s)")
    return LayerResult(layer="version", status=status, summary=summary, problems=problems,
                       details={"facts": facts}, seconds=time.monotonic() - t0)
