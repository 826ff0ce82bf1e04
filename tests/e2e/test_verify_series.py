"""`gopatch verify` against the real go1.27 patch series (patches/go1.27).

Two toolchains per run, both copies of the official go1.27.3 distribution: one with the whole
series applied to its src/, one with the series minus its last patch. A vanilla Go compiles the
runtime and the standard library from $GOROOT/src, so for runtime/std patches these copies give
the same assembly, source and probe results as a make.bash build of the same trees; the real
build is checked by test_real_build_passes when one exists (out/<version>/<goos>_<goarch>/go).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prereq import missing

from pipeline.series import load_series
from pipeline.verify.goenv import host_target

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERIES = REPO / "patches" / "go1.27"


def series_or_missing():
    patches = load_series(SERIES) if (SERIES / "series").is_file() else ()
    if not patches:
        missing(f"a non-empty patch series in {SERIES}")
    return patches


def standin(vanilla: Path, dest: Path, patch_files: list[Path]) -> Path:
    shutil.copytree(vanilla, dest, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    for p in patch_files:
        # git apply outside a repository behaves like patch(1) and understands git's a/ b/ paths.
        subprocess.run(["git", "apply", "-p1", "--whitespace=nowarn", str(p)], cwd=dest, check=True,
                       capture_output=True, text=True)
    return dest


def gopatch(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env["GOPATCH_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "verify", "--series", str(SERIES), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def trees(go_dist, tmp_path_factory):
    patches = series_or_missing()
    root = tmp_path_factory.mktemp("series-standins")
    vanilla = go_dist("1.27.3")
    return {
        "patches": patches,
        "full": standin(vanilla, root / "full", [p.path for p in patches]),
        "minus_last": standin(vanilla, root / "minus-last", [p.path for p in patches[:-1]]),
    }


def test_full_series_passes_asm_ast_and_behavior(trees, shared_cache, tmp_path):
    proc = gopatch("--toolchain", str(trees["full"]), "--layers", "asm,ast,behavior", "--json",
                   "--html", str(tmp_path / "verify.html"), cache=shared_cache, cwd=tmp_path)
    report = json.loads(proc.stdout or "{}")
    assert proc.returncode == 0, proc.stderr[-3000:] + json.dumps(
        [x["problems"] for x in report.get("layers", [])], indent=1)


def test_series_minus_last_patch_fails_for_exactly_its_functions(trees, shared_cache, tmp_path):
    last = trees["patches"][-1]
    proc = gopatch("--toolchain", str(trees["minus_last"]), "--layers", "asm", "--json",
                   cache=shared_cache, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    asm = json.loads(proc.stdout)["layers"][0]["details"]
    assert asm["missing"] == {last.name: list(last.touches)}


def test_real_build_passes(shared_cache, tmp_path):
    series_or_missing()
    built = sorted((REPO / "out").glob(f"*/{host_target().slug}/go/VERSION"))
    if not built:
        missing(f"a built toolchain under {REPO / 'out'} (run `gopatch build`)")
    proc = gopatch("--layers", "version,asm,ast,behavior", "--json", cache=shared_cache, cwd=REPO)
    report = json.loads(proc.stdout or "{}")
    assert proc.returncode == 0, proc.stderr[-3000:] + json.dumps(
        [x["problems"] for x in report.get("layers", [])], indent=1)
