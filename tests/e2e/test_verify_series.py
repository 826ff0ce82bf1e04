"""`gopatch verify` and the probes against real make.bash builds of the shipped series.

- go1.27.3 + patches/go1.27, built in Docker (docker_build): every layer passes for the host
  target (version, asm, ast, behaviour = each probe holds with the built toolchain and not with
  vanilla, plus the configured runtime tests); the cross target passes version, asm and ast.
- go1.27.3 + the series minus its last patch (minus_last_build): the asm layer fails and names
  exactly that patch's Touches: functions.
- go1.26.6 + patches/go1.26 (go126_build): every layer passes there too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.series import load_series

pytestmark = pytest.mark.slow


def verify(helpers, env: dict, cwd: Path, *args: str):
    proc = helpers.gopatch(["verify", "--json", *args], env=env, cwd=cwd, check=False, timeout=1800)
    report = json.loads(proc.stdout or "{}")
    return proc, report


def problems(report: dict) -> str:
    return json.dumps({x["layer"]: x["problems"] for x in report.get("layers", [])}, indent=1)


@pytest.mark.docker
def test_real_build_passes_every_layer(docker_build, helpers, tmp_path):
    env = docker_build["env"]
    html = tmp_path / "verify.html"
    proc, report = verify(helpers, env, docker_build["out"], "--target", "linux/amd64",
                          "--layers", "version,asm,ast,behavior", "--html", str(html))
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert {x["layer"]: x["status"] for x in report["layers"]} == dict.fromkeys(
        ("version", "asm", "ast", "behavior"), "pass")
    assert report["version"] == docker_build["results"]["linux/amd64"]["version"]
    assert_probes_held(report, helpers.REPO / "patches" / "go1.27")
    assert report["version"] in html.read_text()


def assert_probes_held(report: dict, series_dir: Path) -> None:
    """Every patch's probe ran with the built toolchain (-expect=patched) and with vanilla
    (-expect=vanilla), and both held: the patch's effect is there, and only there."""
    behavior = next(x for x in report["layers"] if x["layer"] == "behavior")
    probes = {p["patch"]: p for p in behavior["details"]["probes"]}
    for patch in load_series(series_dir):
        entry = probes[patch.name]
        assert entry["patched"]["ok"] and entry["vanilla"]["ok"], entry


@pytest.mark.docker
def test_cross_build_passes_version_asm_ast(docker_build, helpers):
    proc, report = verify(helpers, docker_build["env"], docker_build["out"], "--target", "linux/arm64",
                          "--layers", "version,asm,ast")
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert report["target"] == "linux/arm64"
    assert all(x["status"] == "pass" for x in report["layers"]), problems(report)


def test_build_without_the_last_patch_fails_asm_for_exactly_its_functions(minus_last_build, helpers):
    last = load_series(helpers.REPO / "patches" / "go1.27")[-1]
    proc, report = verify(helpers, minus_last_build["env"], minus_last_build["out"], "--layers", "asm",
                          "--series", str(helpers.REPO / "patches" / "go1.27"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    asm = report["layers"][0]["details"]
    assert asm["missing"] == {last.name: list(last.touches)}
    assert last.name in proc.stderr or last.name in problems(report)


def test_go126_build_passes_every_layer(go126_build, helpers):
    proc, report = verify(helpers, go126_build["env"], go126_build["out"], "--layers", "version,asm,ast,behavior",
                          "--series", str(helpers.REPO / "patches" / "go1.26"))
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert all(x["status"] == "pass" for x in report["layers"]), problems(report)
    assert report["version"].startswith("go1.26.6-gopatch.3-")
    assert_probes_held(report, helpers.REPO / "patches" / "go1.26")
