"""The build plan (pure), cache keys, failure blame, and the orchestration around a scripted executor.

The executor here is a stand-in for make.bash (it writes the distpack archives a real one would):
what is under test is planning, caching, publishing and error reporting, not make.bash.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import git
import pytest
from typer.testing import CliRunner

from pipeline.build import plan as P
from pipeline.build import run as B
from pipeline.build.artifacts import ArtifactStore, materialize
from pipeline.build.bootstrap import Bootstrap
from pipeline.build.executor import StepResult
from pipeline.cli import app
from pipeline.config import Target
from pipeline.errors import BuildFailed, TreeNotClean, UsageError
from pipeline.journal import open_tree
from pipeline.progress import stage_of

LINUX_AMD64 = Target(goos="linux", goarch="amd64")
LINUX_ARM64 = Target(goos="linux", goarch="arm64")


def test_host_plan_is_one_make_bash_with_a_clean_environment(tmp_path):
    cfg = P.BuildConfig(goexperiment="", extra_env=())
    plan = P.plan_host(target=LINUX_AMD64, workdir=tmp_path, bootstrap=Path("/boot/go"), config=cfg)
    (step,) = plan.steps
    assert step.argv == ("bash", "make.bash", "-distpack")
    assert step.cwd == tmp_path / "go" / "src"
    env = step.environ
    assert env == {"PATH": P.STEP_PATH, "HOME": str(tmp_path / "home"), "GOOS": "linux", "GOARCH": "amd64",
                   "GOTOOLCHAIN": "local", "GOROOT_BOOTSTRAP": "/boot/go", "CGO_ENABLED": "0"}
    assert not set(env) & (set(P.LEAKY) - {"GOTOOLCHAIN"})


def test_configured_experiment_and_extra_env_pass_through(tmp_path):
    cfg = P.BuildConfig(cgo_enabled=True, goexperiment="loopvar", extra_env=(("GOAMD64", "v3"),))
    env = P.plan_host(target=LINUX_AMD64, workdir=tmp_path, bootstrap=Path("/b"), config=cfg).steps[0].environ
    assert env["GOEXPERIMENT"] == "loopvar" and env["GOAMD64"] == "v3" and env["CGO_ENABLED"] == "1"


def test_cross_plan_is_the_measured_shortcut(tmp_path):
    plan = P.plan_cross(target=LINUX_ARM64, workdir=tmp_path, config=P.BuildConfig())
    install, pack = plan.steps
    go = str(tmp_path / "go" / "bin" / "go")
    assert install.argv == (go, "install", *P.DIST_COMMANDS)
    assert install.environ["GOFLAGS"] == "-trimpath -ldflags=-w -gcflags=cmd/...=-dwarf=false"
    assert install.environ["CGO_ENABLED"] == "0"
    assert (install.environ["GOOS"], install.environ["GOARCH"]) == ("linux", "arm64")
    assert pack.argv == (go, "tool", "distpack")
    assert "GOFLAGS" not in pack.environ and pack.environ["GOARCH"] == "arm64"


def test_cache_key_changes_with_every_input():
    base = dict(tree_hash="t", version="v", bootstrap_version="go1.27.3", target=LINUX_AMD64, host=LINUX_AMD64,
                config=P.BuildConfig(), executor={"executor": "docker", "image_id": "sha256:1", "user": "0:0"})
    k = P.cache_key(**base)
    assert k == P.cache_key(**base)
    assert k == P.cache_key(**{**base, "executor": {**base["executor"], "user": "1000:1000"}})  # not build-affecting
    for change in [dict(tree_hash="u"), dict(version="w"), dict(bootstrap_version="go1.26.6"),
                   dict(target=LINUX_ARM64), dict(config=P.BuildConfig(cgo_enabled=True)),
                   dict(executor={"executor": "docker", "image_id": "sha256:2"}), dict(host_key="h")]:
        assert P.cache_key(**{**base, **change}) != k, change


def test_stage_lines():
    assert stage_of("Building Go cmd/dist using /b. (go1.27.3 linux/amd64)") == "cmd/dist"
    assert stage_of("Building Go toolchain2 using go_bootstrap and Go toolchain1.") == "toolchain2"
    assert stage_of("Building packages and commands for linux/amd64.") == "packages and commands"
    assert stage_of("compile: something") is None


def test_blame_names_the_patch_that_touched_the_failing_file():
    patches = [("a" * 40, "runtime: tweak", "0001-runtime.patch", ("src/runtime/proc.go",)),
               ("b" * 40, "dist: break", "0002-dist.patch", ("src/cmd/dist/build.go",))]
    lines = ["Building Go cmd/dist using /boot.", "# cmd/dist",
             "cmd/dist/build.go:12:2: syntax error: unexpected newline"]
    text = B.blame_patch(lines, patches)
    assert "0002-dist.patch" in text and "src/cmd/dist/build.go" in text
    absolute = ["/x/.tmp/ab-1/go/src/runtime/proc.go:99:1: undefined: foo"]
    assert "0001-runtime.patch" in B.blame_patch(absolute, patches)
    assert B.blame_patch(["net/http/server.go:1:1: oops"], patches) is None


# --------------------------------------------------------------------------------------------
# Orchestration with a scripted executor
# --------------------------------------------------------------------------------------------


def _tgz(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))


class ScriptedExecutor:
    """Writes what make.bash -distpack / go tool distpack would, or fails like a compiler."""

    name = "host"

    def __init__(self, fail_with: str = "") -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.fail_with = fail_with

    def describe(self):
        return {"executor": "host", "machine": "x86_64"}

    def cancel(self):
        pass

    def run(self, argv, *, cwd, env, mounts, on_line):
        self.calls.append((" ".join(argv), dict(env)))
        root = Path(cwd).parent
        if self.fail_with:
            on_line("Building Go cmd/dist using /boot.")
            on_line(self.fail_with)
            return StepResult(exit_code=2, seconds=0.1)
        if argv[-1] in ("-distpack", "distpack"):
            version = (root / "VERSION").read_text().split("\n")[0]
            dist = root / "pkg" / "distpack"
            dist.mkdir(parents=True, exist_ok=True)
            pair = f"{env['GOOS']}-{env['GOARCH']}"
            _tgz(dist / f"{version}.src.tar.gz", {"go/VERSION": b"src"})
            _tgz(dist / f"{version}.{pair}.tar.gz", {"go/VERSION": (root / "VERSION").read_bytes(),
                                                       "go/bin/go": pair.encode()})
            (dist / f"v0.0.1-{version}.{pair}.mod").write_text("module golang.org/toolchain\n")
            on_line("Packaging archives for x.")
        return StepResult(exit_code=0, seconds=0.1)


def _go_tree(path: Path) -> git.Repo:
    (path / "src").mkdir(parents=True)
    (path / "src" / "make.bash").write_text("#!/bin/bash\n")
    (path / "VERSION").write_text("go1.27.3\ntime 2026-10-19T22:20:36Z")
    repo = git.Repo.init(path)
    repo.index.add(["VERSION", "src/make.bash"])
    repo.index.commit("go1.27.3")
    assert open_tree(path).base_commit  # records this commit as the base the patches sit on
    return repo


def _request(tmp_path, executor, targets=(LINUX_AMD64,)):
    tree = open_tree(tmp_path / "goroot")
    return B.BuildRequest(tree=tree, targets=targets, executor=executor,
                          bootstrap=Bootstrap(goroot=tmp_path, version="go1.27.3", origin="test"),
                          store=ArtifactStore(tmp_path / "cache"), out_dir=tmp_path / "out", log=lambda m: None)


def test_build_publishes_stamped_artifacts_and_second_run_is_a_cache_hit(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    repo = _go_tree(tmp_path / "goroot")
    (tmp_path / "goroot" / "src" / "x.go").write_text("package x\n")
    repo.index.add(["src/x.go"])
    repo.index.commit("x: add\n\nGopatch-Patch: 0001-x.patch\n")
    ex = ScriptedExecutor()
    req = _request(tmp_path, ex, targets=(LINUX_AMD64, LINUX_ARM64))
    src = B.source_info(req.tree)
    assert [p[2] for p in src.patches] == ["0001-x.patch"]
    version = "go1.27.3-gopatch.1-" + src.tree_hash[:8]
    results = B.build(req, version=version, src=src)
    assert [str(r.target) for r in results] == ["linux/amd64", "linux/arm64"]
    assert not any(r.cached for r in results)
    arm = tmp_path / "out" / version / "linux_arm64"
    assert (arm / "go" / "bin" / "go").read_bytes() == b"linux-arm64"
    meta = json.loads((arm / "build.json").read_text())
    assert meta["version"] == version and meta["target"] == "linux/arm64" and meta["kind"] == "cross"
    assert set(meta["archives"]) == {f"{version}.src.tar.gz", f"{version}.linux-arm64.tar.gz",
                                     f"v0.0.1-{version}.linux-arm64.mod"}
    assert (arm / "distpack" / f"{version}.linux-arm64.tar.gz").is_file()
    assert "Packaging archives" in (arm / "build.log").read_text()
    # The stamped VERSION went into the host build tree, with its time line.
    assert (tmp_path / "out" / version / "linux_amd64" / "go" / "VERSION").read_text().startswith(version + "\n")
    assert not list((tmp_path / "cache" / "builds" / ".tmp").iterdir())

    calls = len(ex.calls)
    again = B.build(_request(tmp_path, ex, targets=(LINUX_AMD64, LINUX_ARM64)), version=version, src=src)
    assert all(r.cached for r in again) and len(ex.calls) == calls


def test_leftovers_of_a_killed_build_are_cleared_and_never_published(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    _go_tree(tmp_path / "goroot")
    req = _request(tmp_path, ScriptedExecutor())
    src = B.source_info(req.tree)
    key = B._Builder(req, src, "go1.27.3-gopatch.0-x").key(LINUX_AMD64)
    stale = req.store.root / ".tmp" / f"{key[:16]}-killed"
    (stale / "go").mkdir(parents=True)
    assert req.store.entries() == []
    B.build(req, version="go1.27.3-gopatch.0-x", src=src)
    assert not stale.exists()
    assert [a.key for a in req.store.entries()] == [key]


def test_failed_build_exits_1_with_tail_log_and_patch(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    repo = _go_tree(tmp_path / "goroot")
    (tmp_path / "goroot" / "src" / "cmd" / "dist").mkdir(parents=True)
    (tmp_path / "goroot" / "src" / "cmd" / "dist" / "build.go").write_text("package main\nfunc {\n")
    repo.index.add(["src/cmd/dist/build.go"])
    repo.index.commit("dist: break the build\n\nGopatch-Patch: 0001-break-dist.patch\n")
    req = _request(tmp_path, ScriptedExecutor(fail_with="cmd/dist/build.go:2:6: syntax error: unexpected {"))
    with pytest.raises(BuildFailed) as err:
        B.build(req, version="go1.27.3-gopatch.1-x", src=B.source_info(req.tree))
    text = err.value.render()
    assert err.value.exit_code == 1
    assert "syntax error" in text and "0001-break-dist.patch" in text and "dist: break the build" in text
    log = Path(text.split("Full log: ")[1].split("\n")[0])
    assert log.is_file() and "syntax error" in log.read_text()
    assert req.store.entries() == [] and not (tmp_path / "out").exists()


def test_materialize_is_a_noop_for_the_same_key(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    _go_tree(tmp_path / "goroot")
    req = _request(tmp_path, ScriptedExecutor())
    (r,) = B.build(req, version="go1.27.3-gopatch.0-x", src=B.source_info(req.tree))
    assert materialize(r.artifact, r.out) is False
    assert [p.name for p in r.out.parent.iterdir()] == ["linux_amd64"]


def test_dirty_tree_is_refused_without_force(tmp_path, monkeypatch):
    _go_tree(tmp_path / "goroot")
    (tmp_path / "goroot" / "VERSION").write_text("go1.27.3-local")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["build", "--dir", str(tmp_path / "goroot")])
    assert isinstance(result.exception, TreeNotClean)
    assert result.exception.exit_code == 3


def test_cache_ls_and_prune(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    _go_tree(tmp_path / "goroot")
    req = _request(tmp_path, ScriptedExecutor(), targets=(LINUX_AMD64, LINUX_ARM64))
    B.build(req, version="go1.27.3-gopatch.0-x", src=B.source_info(req.tree))
    monkeypatch.setenv("GOPATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(app, ["cache", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(e["target"] for e in json.loads(listed.stdout)) == ["linux/amd64", "linux/arm64"]
    dry = runner.invoke(app, ["cache", "prune", "--keep", "1", "--dry-run", "--json"])
    assert dry.exit_code == 0 and len(json.loads(dry.stdout)) == 1
    assert len(req.store.entries()) == 2
    gone = runner.invoke(app, ["cache", "prune", "--all"])
    assert gone.exit_code == 0 and req.store.entries() == []
    refused = runner.invoke(app, ["cache", "prune"]).exception
    assert isinstance(refused, UsageError) and refused.exit_code == 2


def test_leftovers_of_a_killed_build_are_stopped_before_they_are_removed(tmp_path):
    # A step of a gopatch killed with -9 goes on running in its own session and would write
    # into the work directory again after it was removed (Go tools recreate $HOME/.config).
    import subprocess
    import time

    from pipeline.build.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "cache")
    key = "ab" * 32
    stale = store.root / ".tmp" / f"{key[:16]}-dead"
    (stale / "home").mkdir(parents=True)
    orphan = subprocess.Popen(["sh", "-c", "while :; do mkdir -p home/.config/go; sleep 0.01; done"], cwd=stale,
                              start_new_session=True)
    try:
        time.sleep(0.2)
        fresh = store.workdir(key)
        assert orphan.wait(timeout=10) == -9
        time.sleep(0.2)
        assert not stale.exists() and fresh.is_dir()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_target_flags_are_parsed_one_way_for_every_command():
    from pipeline.commands.common import targets
    from pipeline.config import host_target

    configured = (LINUX_ARM64, Target.parse("windows/amd64"))
    assert targets([]) == (host_target(),)
    # -t repeatable, each also a comma (or space) list; --goos/--goarch pairs first; --all last; no duplicates
    assert targets(["linux/amd64,linux/arm64", "darwin/arm64"], goos=["linux"], goarch=["riscv64"],
                   all_=True, configured=configured) == tuple(map(Target.parse, (
                       "linux/riscv64", "linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64")))
    assert targets(["linux/amd64 linux/amd64"]) == (LINUX_AMD64,)
    with pytest.raises(UsageError, match=r"^--target: 'linux/arm6' is not a GOOS/GOARCH pair .*did you mean linux/arm64"):
        targets(["linux/amd64,linux/arm6"], command="verify")
    with pytest.raises(UsageError, match="come in pairs") as exc:
        targets([], goos=["linux"], command="build")
    assert exc.value.exit_code == 2 and "gopatch build --goos" in (exc.value.hint or "")


@pytest.mark.parametrize("command", ["build", "release", "verify", "matrix"])
def test_every_command_with_target_rejects_a_misspelt_one(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [command, "-t", "linux/amd64,linux/amd46"])
    assert isinstance(result.exception, UsageError), result.output
    assert result.exception.exit_code == 2 and "did you mean linux/amd64" in result.exception.message
