"""DockerExecutor and the builder image against the real daemon (no mocks of Docker).

The image is built FROM scratch on an engine that may have no images and no registry, into a
test-private cache; every step then runs in a fresh container and is checked from the inside
(network, capabilities, uid) and from the outside (file ownership, no container left behind).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pipeline.build.executor import (
    CONTAINER_LABEL,
    Container,
    DockerExecutor,
    Mount,
    choose_executor,
)
from pipeline.build.image import ensure_image
from pipeline.build.ownership import UNPRIVILEGED, caller_ids
from pipeline.config import load_options
from pipeline.errors import EnvironmentProblem

pytestmark = pytest.mark.docker

PATH = "/usr/bin:/bin"


@pytest.fixture(scope="module")
def opts(docker_daemon, tmp_path_factory):
    work = tmp_path_factory.mktemp("docker-executor")
    return load_options(None, env={"GOPATCH_CACHE_DIR": str(work / "cache"),
                                   "GOPATCH_BUILD_EXECUTOR": "docker"}, cwd=work)


@pytest.fixture(scope="module")
def builder(docker_daemon, opts):
    return ensure_image(opts, lambda _m: None, client=docker_daemon)


@pytest.fixture
def workdir(tmp_path):
    # Readable and writable by uid 1000 too, as a user's own tree would be.
    tmp_path.chmod(0o777)
    return tmp_path


def ours(client) -> list:
    """Containers this test process started (other gopatch runs may have their own)."""
    return client.containers.list(all=True, filters={"label": [CONTAINER_LABEL, f"gopatch.pid={os.getpid()}"]})


def owned_by(root: Path) -> set[tuple[int, int]]:
    """The (uid, gid) pairs of root and everything under it."""
    return {(p.lstat().st_uid, p.lstat().st_gid) for p in (root, *root.rglob("*"))}


def expected_owner(user: tuple[int, int]) -> tuple[int, int]:
    """Who owns what a step running as ``user`` wrote: the caller when it is root (the mounts were
    lent to ``user`` and handed back), else ``user`` itself."""
    return caller_ids() if os.geteuid() == 0 else user


def run(executor, script: str, workdir: Path, *, env=None, mounts=None, on_line=None):
    lines: list[str] = []
    result = executor.run(["bash", "-c", script], cwd=workdir, env=env or {"PATH": PATH},
                          mounts=mounts or [Mount(path=workdir)], on_line=on_line or lines.append)
    return result, lines


def test_image_builds_from_scratch_and_is_reused(docker_daemon, opts, builder):
    image = docker_daemon.images.get(builder.tag)
    assert image.id == builder.id
    assert image.labels["gopatch.content_sha256"] == builder.content_sha256
    assert image.attrs["Config"]["User"] == ""  # the user comes from each run, not the image
    assert builder.base == "scratch"
    messages: list[str] = []
    start = time.monotonic()
    again = ensure_image(opts, messages.append, client=docker_daemon)
    assert again == builder
    assert not any("building" in m for m in messages)  # the tag held: no rebuild
    assert time.monotonic() - start < 5


def test_choose_executor_gives_docker_with_a_description(docker_daemon, opts, builder):
    chosen = choose_executor(opts, lambda _m: None)
    assert isinstance(chosen, DockerExecutor)
    described = chosen.describe()
    assert described["image"] == builder.tag and described["image_id"] == builder.id
    assert described["network"] == "none"
    chosen.client.close()


def test_bootstrap_go_runs_from_a_read_only_mount(docker_daemon, builder, go_dist, workdir):
    goroot = go_dist("1.27.3")
    executor = DockerExecutor(docker_daemon, builder)
    result, lines = run(executor, f"go version && touch {goroot}/x", workdir,
                        env={"PATH": f"{goroot}/bin:{PATH}", "GOTOOLCHAIN": "local"},
                        mounts=[Mount(path=workdir), Mount(path=goroot, read_only=True)])
    assert lines[0] == "go version go1.27.3 linux/amd64"
    assert result.exit_code != 0  # the bootstrap GOROOT is read-only in the container
    assert not (goroot / "x").exists()


def test_no_network_and_no_capabilities(docker_daemon, builder, workdir):
    executor = DockerExecutor(docker_daemon, builder)
    script = ("ls /sys/class/net; grep CapEff /proc/self/status; "
              "if (exec 3<>/dev/tcp/1.1.1.1/53) 2>/dev/null; then echo connected; else echo no-connect; fi")
    result, lines = run(executor, script, workdir)
    assert result.exit_code == 0
    assert lines[0] == "lo"  # the only interface
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    assert lines[2] == "no-connect"


def test_the_requested_user_runs_the_step(docker_daemon, builder, workdir):
    executor = DockerExecutor(docker_daemon, builder, user=(1000, 1000))
    result, lines = run(executor, "id -u; id -g; echo $HOME; touch $HOME/ok && mkdir out && echo hi > out/f", workdir)
    assert result.exit_code == 0, lines
    assert lines[:3] == ["1000", "1000", "/tmp"]
    assert owned_by(workdir / "out") == {expected_owner((1000, 1000))}
    assert (workdir / "out" / "f").read_text() == "hi\n"


def test_the_build_never_runs_as_root_and_its_files_are_the_callers(docker_daemon, builder, tmp_path):
    # The work directory as build.py makes it: the caller's, mode 0700 (no chmod 777 here), with
    # the step's HOME inside. As root, gopatch lends it to the build user for the step.
    work = tmp_path / "work"
    (work / "go" / "src").mkdir(parents=True, mode=0o700)
    (work / "home").mkdir(mode=0o700)
    (work / "go" / "src" / "make.bash").write_text("#!/bin/bash\n")
    work.chmod(0o700)
    executor = DockerExecutor(docker_daemon, builder)
    caller = caller_ids()
    assert executor.user == (UNPRIVILEGED if caller[0] == 0 else caller)
    script = ("id -u; id -g; id -un; echo $HOME; mkdir -p ../pkg/distpack && echo pack > ../pkg/distpack/a.tar.gz "
              "&& echo gone > make.bash && touch $HOME/.cache-ok && echo wrote")
    result, lines = run(executor, script, work / "go" / "src",
                        env={"PATH": PATH, "HOME": str(work / "home")}, mounts=[Mount(path=work)])
    assert result.exit_code == 0, lines
    uid, gid = int(lines[0]), int(lines[1])
    assert (uid, gid) == executor.user and uid != 0
    if caller[0] == 0:
        assert gid != 0 and lines[2] == "gopatch"  # named in the image's /etc/passwd
    assert lines[3:] == [str(work / "home"), "wrote"]
    # Afterwards everything is the caller's again (root here), new files included.
    assert owned_by(work) == {caller}
    assert (work / "go" / "pkg" / "distpack" / "a.tar.gz").read_text() == "pack\n"
    assert (work / "go" / "src" / "make.bash").read_text() == "gone\n"
    assert executor.describe()["user"] == f"{uid}:{gid}"

    # A failing step is handed back too.
    result, _ = run(executor, "touch ../after-failure; exit 3", work / "go" / "src",
                    env={"PATH": PATH}, mounts=[Mount(path=work)])
    assert result.exit_code == 3
    assert owned_by(work) == {caller}


def test_environment_is_the_given_one(docker_daemon, builder, workdir):
    executor = DockerExecutor(docker_daemon, builder)
    env = {"PATH": PATH, "GOOS": "linux", "EMPTY": "", "SPACES": "a b  c"}
    lines: list[str] = []
    executor.run(["env"], cwd=workdir, env=env, mounts=[Mount(path=workdir)], on_line=lines.append)
    seen = dict(line.split("=", 1) for line in lines)
    # Not the image's ENV (PATH, LANG, HOME), not Docker's HOSTNAME: only HOME is added, as the
    # host's home does not exist in the container.
    assert seen == {**env, "HOME": "/tmp"}


def test_lines_stream_in_order_and_live(docker_daemon, builder, workdir):
    executor = DockerExecutor(docker_daemon, builder)
    result, lines = run(executor, "seq 1 3000; seq 3001 3010 >&2; echo -n last", workdir)
    assert result.exit_code == 0
    assert lines == [str(i) for i in range(1, 3011)] + ["last"]

    stamps: list[float] = []
    run(executor, "echo one; sleep 1.5; echo two", workdir, on_line=lambda _l: stamps.append(time.monotonic()))
    assert len(stamps) == 2 and stamps[1] - stamps[0] > 1.0  # not buffered until exit


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_codes_propagate(docker_daemon, builder, workdir, code):
    result, _ = run(DockerExecutor(docker_daemon, builder), f"exit {code}", workdir)
    assert result.exit_code == code
    assert not ours(docker_daemon)


def test_a_missing_program_is_exit_127_with_its_name(docker_daemon, builder, workdir):
    lines: list[str] = []
    result = DockerExecutor(docker_daemon, builder).run(
        ["no-such-tool", "--version"], cwd=workdir, env={"PATH": PATH}, mounts=[Mount(path=workdir)],
        on_line=lines.append)
    assert result.exit_code == 127
    assert any("no-such-tool" in line for line in lines)


class Stop(Exception):
    pass


@pytest.mark.parametrize("error", [Stop, KeyboardInterrupt])
def test_exception_from_on_line_stops_and_removes_the_container(docker_daemon, builder, workdir, error):
    executor = DockerExecutor(docker_daemon, builder)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "3":
            assert len(ours(docker_daemon)) == 1  # it is running right now
            raise error

    start = time.monotonic()
    with pytest.raises(error):
        run(executor, "touch started; for i in $(seq 1 600); do echo $i; sleep 0.1; done; touch finished",
            workdir, on_line=on_line)
    assert seen == ["1", "2", "3"]
    assert not ours(docker_daemon)
    assert time.monotonic() - start < 30
    time.sleep(0.5)
    assert not (workdir / "finished").exists()
    assert owned_by(workdir) == {caller_ids()}  # the interrupted step's files are handed back too


def test_real_sigint_mid_run_leaves_no_container(docker_daemon, builder, workdir, ctrl_c):
    import signal

    executor = DockerExecutor(docker_daemon, builder)

    def on_line(line: str) -> None:
        if line == "started":
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        run(executor, "touch started; echo started; sleep 120", workdir, on_line=on_line)
    assert not ours(docker_daemon)
    assert owned_by(workdir) == {caller_ids()}  # Ctrl-C: handed back all the same


def test_a_container_that_cannot_start_is_removed(docker_daemon, builder, workdir):
    config = DockerExecutor(docker_daemon, builder).container_config(
        ["true"], cwd=workdir, env={"PATH": PATH}, mounts=[Mount(path=workdir)])
    config["user"] = "no-such-user"  # the fault: Docker refuses to start a user it cannot find
    with pytest.raises(EnvironmentProblem, match="could not start"), Container(docker_daemon, config):
        pass
    assert not ours(docker_daemon)


def test_limits_reach_the_container(docker_daemon, builder, workdir):
    executor = DockerExecutor(docker_daemon, builder, cpus=1.5, memory="256m")
    script = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "cat /sys/fs/cgroup/cpu.max 2>/dev/null || "
              "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")
    result, lines = run(executor, script, workdir)
    assert result.exit_code == 0, lines
    assert int(lines[0]) == 256 * 1024 * 1024
    quota, period = map(int, lines[1].split())
    assert quota / period == pytest.approx(1.5)
    assert executor.describe()["memory"] == "256m" and executor.describe()["cpus"] == "1.5"


def test_another_base_renders_from_that_image(docker_daemon, opts, builder, tmp_path):
    # Stand in for debian:bookworm-slim with a local tag: the registry-free engine has no other.
    docker_daemon.images.get(builder.id).tag("gopatch-test-base", "1")
    try:
        other = load_options(None, env={"GOPATCH_CACHE_DIR": str(opts.cache.dir),
                                        "GOPATCH_DOCKER_BASE": "gopatch-test-base:1"}, cwd=tmp_path)
        info = ensure_image(other, lambda _m: None, client=docker_daemon)
        assert info.base == "gopatch-test-base:1" and info.tag != builder.tag
        tmp_path.chmod(0o777)
        result, lines = run(DockerExecutor(docker_daemon, info), "uname -s", tmp_path)
        assert (result.exit_code, lines) == (0, ["Linux"])
        docker_daemon.images.remove(info.tag)
    finally:
        docker_daemon.images.remove("gopatch-test-base:1")


def test_a_base_the_engine_cannot_get_is_exit_3_with_a_hint(docker_daemon, opts, tmp_path):
    other = load_options(None, env={"GOPATCH_CACHE_DIR": str(opts.cache.dir),
                                    "GOPATCH_DOCKER_BASE": "gopatch-no-such-image:0"}, cwd=tmp_path)
    with pytest.raises(EnvironmentProblem) as info:
        ensure_image(other, lambda _m: None, client=docker_daemon)
    assert info.value.exit_code == 3
    assert "docker pull gopatch-no-such-image:0" in info.value.render()


def test_a_long_silence_does_not_hit_the_client_timeout(builder, workdir):
    # make.bash prints nothing for minutes while it builds packages; the control timeout of the
    # client (2 s here) must not cut the output stream.
    import docker

    client = docker.from_env(timeout=2)
    try:
        result, lines = run(DockerExecutor(client, builder), "echo a; sleep 4; echo b", workdir)
    finally:
        client.close()
    assert (result.exit_code, lines) == (0, ["a", "b"])


def test_cancel_from_another_thread_stops_and_removes_the_container(docker_daemon, builder, workdir):
    from pipeline.build.executor import StepCancelled

    executor = DockerExecutor(docker_daemon, builder)
    up = threading.Event()
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            run(executor, "echo up; sleep 300; touch finished", workdir,
                on_line=lambda line: up.set() if line == "up" else None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert up.wait(timeout=30)
    executor.cancel()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StepCancelled)
    assert not ours(docker_daemon)
    assert not (workdir / "finished").exists()
    with pytest.raises(StepCancelled):  # a cancelled executor starts nothing new
        run(executor, "true", workdir)


def test_go_builds_a_program_as_an_unprivileged_user(docker_daemon, builder, go_dist, workdir):
    # What make.bash does at small scale: the read-only bootstrap compiles into the mounted tree,
    # with GOCACHE in the container's /tmp, as a uid that has no home on this machine.
    import subprocess

    goroot = go_dist("1.27.3")
    (workdir / "go.mod").write_text("module hello\n\ngo 1.24\n")
    (workdir / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the builder") }\n')
    env = {"PATH": f"{goroot}/bin:{PATH}", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0",
           "GOCACHE": "/tmp/gocache", "GOFLAGS": "-trimpath"}
    lines: list[str] = []
    result = DockerExecutor(docker_daemon, builder, user=(1000, 1000)).run(
        ["go", "build", "-o", "hello", "."], cwd=workdir, env=env,
        mounts=[Mount(path=workdir), Mount(path=goroot, read_only=True)], on_line=lines.append)
    assert result.exit_code == 0, lines
    assert (workdir / "hello").stat().st_uid == expected_owner((1000, 1000))[0]
    out = subprocess.run([workdir / "hello"], capture_output=True, text=True, check=True).stdout
    assert out == "hello from the builder\n"
