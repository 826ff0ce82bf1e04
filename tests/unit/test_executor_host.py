"""HostExecutor: exact environment, merged and ordered streaming, exit codes, interrupts that leave
no process behind, and choose_executor's registry (host paths only: no Docker needed)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.build import executor as ex
from pipeline.build.executor import HostExecutor, Mount, choose_executor, iter_lines
from pipeline.config import load_options
from pipeline.errors import EnvironmentProblem
from pipeline.process import alive

PY = sys.executable
ENV = {"PATH": "/usr/bin:/bin", "ONLY_THIS": "yes"}


def run(argv, *, env=ENV, cwd: Path | None = None, mounts=(), on_line=None):
    lines: list[str] = []
    result = HostExecutor().run(argv, cwd=cwd or Path("/"), env=env, mounts=list(mounts),
                                on_line=on_line or lines.append)
    return result, lines


def test_env_is_exactly_what_was_given(monkeypatch):
    monkeypatch.setenv("GOPATCH_LEAK_CANARY", "leaked")
    result, lines = run([PY, "-c", "import os, json; print(json.dumps(dict(os.environ), sort_keys=True))"])
    assert result.exit_code == 0
    import json

    seen = json.loads(lines[-1])
    seen.pop("LC_CTYPE", None)  # Python's own UTF-8 coercion (PEP 538) may add it in the child
    assert seen == ENV


def test_program_is_found_on_the_given_path_not_ours(tmp_path):
    tool = tmp_path / "bin" / "only-here"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho found-it\n")
    tool.chmod(0o755)
    result, lines = run(["only-here"], env={"PATH": f"{tool.parent}:/usr/bin:/bin"})
    assert (result.exit_code, lines) == (0, ["found-it"])
    with pytest.raises(EnvironmentProblem, match="only-here"):
        run(["only-here"])  # not on ENV's PATH


def test_stdout_and_stderr_are_merged_in_order_and_lines_split_right():
    script = (
        "import sys\n"
        "for i in range(200):\n"
        "    (sys.stdout if i % 2 else sys.stderr).write(f'line {i}\\n'); "
        "(sys.stdout if i % 2 else sys.stderr).flush()\n"
        "sys.stdout.buffer.write(b'caf\\xc3\\xa9 crlf\\r\\nbad \\xff byte\\nno newline'); sys.stdout.flush()\n"
    )
    result, lines = run([PY, "-c", script])
    assert result.exit_code == 0
    assert lines[:200] == [f"line {i}" for i in range(200)]
    assert lines[200:] == ["café crlf", "bad \ufffd byte", "no newline"]


def test_lines_arrive_while_the_process_runs():
    stamps: list[float] = []
    run(["bash", "-c", "echo first; sleep 1; echo second"], on_line=lambda _l: stamps.append(time.monotonic()))
    assert len(stamps) == 2
    assert stamps[1] - stamps[0] > 0.8  # the first line was not held back until the end


def test_iter_lines_reassembles_split_utf8_and_lines():
    data = "é\nab\r\nlast".encode()
    chunks = [data[i:i + 1] for i in range(len(data))]
    assert list(iter_lines(chunks)) == ["é", "ab", "last"]
    assert list(iter_lines([b"", b"x\n"])) == ["x"]


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_exit_code_propagates(code):
    result, _ = run(["bash", "-c", f"exit {code}"])
    assert result.exit_code == code
    assert result.seconds >= 0


def test_killed_by_signal_is_a_negative_exit_code():
    result, _ = run(["bash", "-c", "kill -KILL $$"])
    assert result.exit_code == -signal.SIGKILL


def test_cwd_and_mount_checks(tmp_path):
    work = tmp_path / "tree"
    work.mkdir()
    result, lines = run(["pwd"], cwd=work, mounts=[Mount(path=tmp_path)])
    assert (result.exit_code, lines) == (0, [str(work)])
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        run(["true"], cwd=work, mounts=[Mount(path=tmp_path), Mount(path=tmp_path / "missing")])
    with pytest.raises(ValueError, match="not inside any mount"):
        run(["true"], cwd=Path("/"), mounts=[Mount(path=work)])


def _wait_dead(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_exception_from_on_line_kills_the_whole_process_group(tmp_path):
    # The shell starts a grandchild that ignores SIGTERM, then keeps talking: both must die.
    pidfile = tmp_path / "grandchild.pid"
    script = (f"(trap '' TERM; sleep 300) & echo $! > {pidfile}; "
              "echo ready; while true; do echo tick; sleep 0.1; done")

    class Stop(Exception):
        pass

    def on_line(line: str) -> None:
        if line == "tick":
            raise Stop

    start = time.monotonic()
    with pytest.raises(Stop):
        run(["bash", "-c", script], on_line=on_line)
    grandchild = int(pidfile.read_text())
    assert _wait_dead(grandchild), "a grandchild survived the interrupt"
    assert time.monotonic() - start < HostExecutor.grace_seconds + 3


def test_keyboard_interrupt_kills_the_child_and_propagates(tmp_path, ctrl_c):
    pidfile = tmp_path / "child.pid"
    script = f"echo $$ > {pidfile}; echo started; exec sleep 300"

    def on_line(line: str) -> None:
        # Deliver a real SIGINT to this process, as Ctrl-C would, once the child runs.
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        run(["bash", "-c", script], on_line=on_line)
    assert _wait_dead(int(pidfile.read_text())), "the child survived Ctrl-C"


def test_registry_and_choose_host(tmp_path):
    assert set(ex.EXECUTORS) == {"host", "docker"}
    opts = load_options(None, env={"GOPATCH_BUILD_EXECUTOR": "host"}, cwd=tmp_path)
    notices: list[str] = []
    chosen = choose_executor(opts, notices.append)
    assert isinstance(chosen, HostExecutor)
    assert chosen.describe()["executor"] == "host"
    assert notices == []


def test_auto_without_a_daemon_falls_back_to_host_with_one_notice(tmp_path, monkeypatch):
    # Point the SDK at a socket nobody listens on: the fault injected is "no daemon".
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    opts = load_options(None, env={"GOPATCH_BUILD_EXECUTOR": "auto"}, cwd=tmp_path)
    notices: list[str] = []
    start = time.monotonic()
    chosen = choose_executor(opts, notices.append)
    assert isinstance(chosen, HostExecutor)
    assert len(notices) == 1 and "\n" not in notices[0] and "host" in notices[0]
    assert time.monotonic() - start < ex.AUTO_PING_TIMEOUT + 2


def test_docker_required_without_a_daemon_is_exit_3_with_the_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    opts = load_options(None, env={"GOPATCH_BUILD_EXECUTOR": "docker"}, cwd=tmp_path)
    with pytest.raises(EnvironmentProblem) as info:
        choose_executor(opts, lambda _m: None)
    assert info.value.exit_code == 3
    assert "dockerd --iptables=false --ip6tables=false --bridge=none" in info.value.render()


def test_cancel_from_another_thread_stops_every_running_step(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    executor = HostExecutor()
    started = threading.Barrier(3)

    def step(i: int):
        def on_line(line: str) -> None:
            if line == "up":
                started.wait(timeout=10)

        return executor.run(["bash", "-c", f"echo up; sleep 300; touch {tmp_path}/done{i}"], cwd=Path("/"),
                            env=ENV, mounts=[], on_line=on_line)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(step, i) for i in range(2)]
        started.wait(timeout=10)  # both steps are running
        begin = time.monotonic()
        executor.cancel()
        for f in futures:
            with pytest.raises(ex.StepCancelled):
                f.result(timeout=15)
    assert time.monotonic() - begin < HostExecutor.grace_seconds + 3
    assert not list(tmp_path.glob("done*"))
    assert issubclass(ex.StepCancelled, KeyboardInterrupt)  # one `except` handles both
    with pytest.raises(ex.StepCancelled):  # a cancelled executor starts nothing new
        executor.run(["true"], cwd=Path("/"), env=ENV, mounts=[], on_line=lambda _l: None)
