"""Where build commands run: the ``Executor`` protocol, its two implementations and its registry.

Both executors bind the *same absolute paths* they are given (the Go tree, the bootstrap GOROOT,
the cache, the output directory), so a build step is written once with host paths and runs
unchanged on the host or inside a container.

Implementations: ``HostExecutor`` (subprocess) and ``DockerExecutor`` (docker SDK), chosen by
``[build] executor`` through ``EXECUTORS`` / ``choose_executor`` (a registry dict, like nox's
``ALL_VENVS``).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import platform
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..config import BuildUser
from ..errors import EnvironmentProblem
from .dockerclient import docker_client
from .ownership import Loan, build_user, caller_ids

if TYPE_CHECKING:
    from ..config import Options
    from .image import ImageInfo

Log = Callable[[str], None]

# Every container gopatch starts carries this label, so a test (or a user) can list them and
# prove that none is left behind: `docker ps -a --filter label=gopatch.executor`.
CONTAINER_LABEL = "gopatch.executor"

@dataclass(frozen=True, kw_only=True)
class Mount:
    path: Path  # mounted at the same absolute path inside a container
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class StepResult:
    exit_code: int
    seconds: float


class StepCancelled(KeyboardInterrupt):
    """``run`` was stopped by ``cancel()`` from another thread.

    A KeyboardInterrupt because that is what it stands for: parallel builds run steps in worker
    threads, which never see Ctrl-C; the main thread catches it, calls ``cancel()``, and every
    worker's ``run`` ends with this, so one ``except KeyboardInterrupt`` handles both.
    """


class Executor(Protocol):
    name: str  # "host" or "docker"

    def describe(self) -> dict[str, str]:
        """What to record in build.json (image id, digest, base, limits...)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        on_line: Callable[[str], None],
    ) -> StepResult:
        """Run argv with exactly ``env`` (nothing inherited), stream each output line to on_line.

        KeyboardInterrupt (or any exception raised by on_line) must stop the process/container,
        clean it up, and propagate.
        """
        ...

    def cancel(self) -> None:
        """Stop every running step (each ``run`` raises StepCancelled) and refuse new ones.

        Safe to call from any thread, e.g. the main thread on Ctrl-C while workers build.
        """
        ...


# --------------------------------------------------------------------------------------------
# Output: bytes -> lines
# --------------------------------------------------------------------------------------------


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Split a byte stream into text lines without their line ending.

    Chunks cut lines (and UTF-8 sequences) anywhere, so both are reassembled here; bytes that are
    not UTF-8 become U+FFFD rather than ending a build with a decode error. A last line without a
    newline is still delivered.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line.removesuffix("\r")
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending.removesuffix("\r")


def _check_mounts(cwd: Path, mounts: Sequence[Mount]) -> None:
    """The same checks on both executors, so a plan that works on the host works in Docker."""
    for m in mounts:
        if not m.path.is_absolute():
            raise ValueError(f"mount path {m.path} is not absolute")
        if not m.path.exists():
            # Docker would silently create a missing bind source as root; fail instead.
            raise EnvironmentProblem(f"{m.path} does not exist, so it cannot be made available to the build.")
    if not cwd.is_absolute():
        raise ValueError(f"working directory {cwd} is not absolute")
    if mounts and not any(cwd == m.path or m.path in cwd.parents for m in mounts):
        raise ValueError(f"working directory {cwd} is not inside any mount: {[str(m.path) for m in mounts]}")


# --------------------------------------------------------------------------------------------
# Host
# --------------------------------------------------------------------------------------------


class HostExecutor:
    """Steps as subprocesses on this machine, for machines without Docker.

    Mounts are only checked (they are already where they are); isolation is limited to the
    environment: the child gets exactly ``env``.
    """

    name = "host"
    # After SIGTERM to the process group, how long the children get before SIGKILL.
    grace_seconds = 3.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    @classmethod
    def from_options(cls, opts: Options, log: Log) -> HostExecutor:
        return cls()

    def describe(self) -> dict[str, str]:
        return {
            "executor": self.name,
            "platform": platform.platform(),
            "machine": platform.machine(),
        }

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        on_line: Callable[[str], None],
    ) -> StepResult:
        _check_mounts(cwd, mounts)
        start = time.monotonic()
        if self._cancelled:
            raise StepCancelled
        try:
            # With env given, Popen looks argv[0] up on env's PATH, not ours: same as in Docker.
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                # Own process group: make.bash forks go, go forks compile/link; an interrupt must
                # reach all of them, not only the shell.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise EnvironmentProblem(
                f"cannot run {shlex.join(argv)}: {exc.strerror}: {exc.filename or argv[0]} "
                f"(PATH={env.get('PATH', '')!r}, cwd={cwd})."
            ) from None
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot run {shlex.join(argv)}: {exc.strerror}.") from None
        assert proc.stdout is not None
        with self._lock:
            self._running.add(proc)
            cancelled = self._cancelled
        try:
            if cancelled:  # cancel() ran between the check above and the registration
                raise StepCancelled
            for line in iter_lines(iter(lambda: proc.stdout.read1(65536), b"")):  # type: ignore[union-attr]
                on_line(line)
            code = proc.wait()
            if self._cancelled:
                raise StepCancelled
        except BaseException:
            # KeyboardInterrupt or an exception from on_line: nothing of the step may outlive us.
            self._kill_group(proc)
            raise
        finally:
            proc.stdout.close()
            with self._lock:
                self._running.discard(proc)
        return StepResult(exit_code=code, seconds=time.monotonic() - start)

    def _kill_group(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=self.grace_seconds)
        # Grandchildren may ignore SIGTERM or outlive the leader: SIGKILL the group regardless.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------------------------
# Docker
# --------------------------------------------------------------------------------------------


def run_shielded(fn: Callable[[], None], name: str) -> None:
    """Run ``fn`` to the end even if Ctrl-C arrives meanwhile; then re-raise what ``fn`` raised.

    Cleanup (removing a container, handing files back) is done in a non-daemon thread that the
    caller waits for, ignoring further KeyboardInterrupts: a half-done cleanup is how containers
    and trees owned by the build user get left behind.
    """
    done = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            fn()
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=work, name=name, daemon=False)
    worker.start()
    while not done.is_set():
        try:
            worker.join()
        except KeyboardInterrupt:
            continue
    if failure:
        raise failure[0]


class DockerExecutor:
    """Steps inside throw-away containers of the builder image (see ``pipeline.build.image``).

    Each step gets a fresh container: no network, every capability dropped, no privilege
    escalation, never root: the invoking user's uid:gid, or an unprivileged uid when gopatch runs
    as root (``pipeline.build.ownership``; the writable mounts are lent to it for the step and handed
    back afterwards, so the files belong to the caller either way), CPU/memory limits from
    ``[docker]``. Mounts appear at the same absolute paths, so argv and env need no translation.
    The environment is exactly ``env`` plus ``HOME=/tmp`` when env names no HOME (the host's home
    is not mounted); see ``wrap``. The image needs /usr/bin/env and /bin/sh, which the scratch
    rootfs and every distro base have.
    """

    name = "docker"

    def __init__(
        self,
        client: Any,
        image: ImageInfo,
        *,
        cpus: float = 0.0,
        memory: str = "",
        user: tuple[int, int] | None = None,
    ) -> None:
        self.client = client
        self.image = image
        self.cpus = cpus
        self.memory = memory
        self.caller = caller_ids()
        self.user = user if user is not None else build_user(BuildUser(), caller=self.caller)
        if self.user[0] == 0:
            raise ValueError("a build container never runs as uid 0")
        # Only root can lend a tree to another uid; a non-root caller builds as itself.
        self._lends = self.caller[0] == 0 and self.user != self.caller
        self._lock = threading.Lock()
        self._running: set[Container] = set()
        self._cancelled = False
        # Writable mount -> (steps using it, its loan): two concurrent steps on one tree share a
        # loan, and the tree goes back to its owners when the last of them ends.
        self._loan_lock = threading.Lock()
        self._loans: dict[Path, tuple[int, Loan]] = {}

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for container in running:
            container.kill()  # its output stream ends; its own ``with`` block removes it

    @classmethod
    def from_options(cls, opts: Options, log: Log) -> DockerExecutor:
        user = build_user(opts.docker.user)  # a config error first; the image's /etc/passwd names it
        client = docker_client()  # no daemon must fail fast with the hint, before any work
        from .image import ensure_image  # needs the SDK; host-only runs never import it

        image = ensure_image(opts, log, client=client)
        return cls(client, image, cpus=opts.docker.cpus, memory=opts.docker.memory, user=user)

    def describe(self) -> dict[str, str]:
        return {
            "executor": self.name,
            "image": self.image.tag,
            "image_id": self.image.id,
            "image_base": self.image.base,
            "image_content_sha256": self.image.content_sha256,
            "image_dockerfile_sha256": self.image.dockerfile_sha256,
            "user": f"{self.user[0]}:{self.user[1]}",
            "cpus": str(self.cpus) if self.cpus else "unlimited",
            "memory": self.memory or "unlimited",
            "network": "none",
            "capabilities": "none",
        }

    @staticmethod
    def wrap(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """The container's command: ``argv`` with exactly ``env`` and stderr merged into stdout.

        ``2>&1`` inside the container because Docker carries stdout and stderr on two pipes and
        the log interleaves them out of order; one pipe keeps lines in the order they were
        written, as on the host. Then ``env -i`` (after the shell, which would add PWD and SHLVL)
        because Docker's own environment is not ours to keep: the image's ENV lines (a golang
        base sets GOPATH, GOLANG_VERSION, PATH...) and HOSTNAME would leak into make.bash.
        argv[0] is looked up on env's PATH, as on the host.
        """
        for key in env:
            if not key or "=" in key:
                raise ValueError(f"environment variable name {key!r} is not valid")
        return ["/bin/sh", "-c", 'exec 2>&1; exec /usr/bin/env -i "$@"', "gopatch-step",
                *(f"{k}={v}" for k, v in env.items()), *argv]

    def container_config(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                         mounts: Sequence[Mount]) -> dict[str, Any]:
        """Keyword arguments for ``containers.create``: the whole security posture in one place."""
        environment = dict(env)
        environment.setdefault("HOME", "/tmp")
        config: dict[str, Any] = {
            "image": self.image.id,
            "entrypoint": [],
            "command": self.wrap(argv, environment),
            "working_dir": str(cwd),
            "user": f"{self.user[0]}:{self.user[1]}",
            "volumes": {str(m.path): {"bind": str(m.path), "mode": "ro" if m.read_only else "rw"}
                        for m in mounts},
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "labels": {CONTAINER_LABEL: "1", "gopatch.pid": str(os.getpid())},
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }
        if not any(m.path == Path("/tmp") for m in mounts):
            # A fresh /tmp (HOME by default) per step, writable by any uid, gone with the container.
            config["tmpfs"] = {"/tmp": "rw,exec,mode=1777"}
        if self.cpus:
            config["nano_cpus"] = int(self.cpus * 1e9)
        if self.memory:
            config["mem_limit"] = self.memory
            config["memswap_limit"] = self.memory  # no swap beyond the limit: fail, don't crawl
        return config

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        on_line: Callable[[str], None],
    ) -> StepResult:
        _check_mounts(cwd, mounts)
        config = self.container_config(argv, cwd=cwd, env=env, mounts=mounts)
        start = time.monotonic()
        if self._cancelled:
            raise StepCancelled
        with self._lent(mounts), Container(self.client, config) as container:
            with self._lock:
                self._running.add(container)
                if self._cancelled:
                    container.kill()
            # make.bash can be silent for minutes; the SDK lifts the read timeout on attached
            # streams (checked: a 6 s silence through a client with timeout=3 streams fine).
            try:
                for line in iter_lines(container.output):
                    on_line(line)
            finally:
                _close_stream(container.output)
                with self._lock:
                    self._running.discard(container)
            status = container.wait()
            if self._cancelled:
                raise StepCancelled
        return StepResult(exit_code=int(status.get("StatusCode", -1)), seconds=time.monotonic() - start)

    @contextlib.contextmanager
    def _lent(self, mounts: Sequence[Mount]) -> Iterator[None]:
        """The writable mounts belong to the build user while the step runs (root callers only).

        Handed back after the container is gone, however the step ended (exit code, exception
        from on_line, Ctrl-C, cancel), shielded from a second Ctrl-C. Read-only mounts are never
        touched, also where one is nested inside a writable one.
        """
        if not self._lends:
            yield
            return
        read_only = [m.path for m in mounts if m.read_only]
        taken: list[Path] = []
        try:
            for m in mounts:
                if m.read_only:
                    continue
                with self._loan_lock:
                    taken.append(m.path)  # first: an interrupt below still gives it back
                    count, loan = self._loans.get(m.path, (0, None))
                    if loan is None:
                        loan = Loan(m.path, user=self.user, caller=self.caller, skip=read_only)
                    self._loans[m.path] = (count + 1, loan)
                    if count == 0:
                        loan.take()
            yield
        finally:
            run_shielded(lambda: self._give_back(taken), "gopatch-give-back")

    def _give_back(self, paths: Sequence[Path]) -> None:
        with self._loan_lock:
            for path in paths:
                entry = self._loans.pop(path, None)
                if entry is None:
                    continue
                count, loan = entry
                if count > 1:
                    self._loans[path] = (count - 1, loan)
                else:
                    loan.give_back()


def _close_stream(stream: Any) -> None:
    """Close a docker SDK stream, also one abandoned mid-way (an interrupt); idempotent.

    ``CancellableStream.close`` shuts the socket down, but the HTTP response still holds a file
    object on it, so the socket is only released by the garbage collector (a ResourceWarning);
    closing the response releases it now.
    """
    with contextlib.suppress(Exception):
        stream.close()
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()


class Container:
    """One started container that is removed however its ``with`` block ends.

    Creating and starting happen in ``__enter__``; if starting fails (bad mount, bad user...) the
    created container is removed before the error propagates. ``__exit__`` always kills and
    removes it: on success, on an exception from the log consumer, on KeyboardInterrupt. The
    shape is cibuildwheel's ``OCIContainer``.
    """

    def __init__(self, client: Any, config: Mapping[str, Any]) -> None:
        self.client = client
        self.config = dict(config)
        self.id = ""
        self.output: Any = None  # the attached stdout+stderr byte stream, once entered
        self._container: Any = None

    def __enter__(self) -> Container:
        import docker.errors

        try:
            self._container = self.client.containers.create(**self.config)
            self.id = self._container.id
            # Attach before start, as `docker run` does: the attach stream carries the raw
            # stdio bytes from the first one to the last. A followed *log* stream can end before
            # the log driver flushed a final line without newline (seen here with docker 20.10).
            self.output = self.client.api.attach(self.id, stdout=True, stderr=True, stream=True, logs=True)
            self._container.start()
        except BaseException as exc:
            self._remove()
            if isinstance(exc, docker.errors.APIError):
                raise EnvironmentProblem(
                    f"Docker could not start a build container of {self.config.get('image')}: "
                    f"{exc.explanation or exc}."
                ) from None
            raise
        return self

    def wait(self) -> dict[str, Any]:
        return self._container.wait()

    def kill(self) -> None:
        """SIGKILL the container (any thread); removal stays with ``__exit__``."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.kill()

    def __exit__(self, *exc_info: object) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.output is not None:
            _close_stream(self.output)
        if self._container is None:
            return
        # Shielded from a second Ctrl-C: a half-done cleanup is how containers get left behind.
        def remove() -> None:
            with contextlib.suppress(Exception):
                self._container.remove(force=True)  # force = kill if still running

        run_shielded(remove, "gopatch-container-cleanup")
        self._container = None


# --------------------------------------------------------------------------------------------
# Registry and choice
# --------------------------------------------------------------------------------------------

EXECUTORS: dict[str, Any] = {
    "host": HostExecutor,
    "docker": DockerExecutor,
}

# How long `auto` waits for a daemon before settling for the host.
AUTO_PING_TIMEOUT = 3.0


def docker_available(timeout: float = AUTO_PING_TIMEOUT) -> tuple[bool, str]:
    """(True, "") when a Docker daemon answers within ``timeout``; else (False, why)."""
    try:
        docker_client(timeout=timeout).close()
    except EnvironmentProblem as exc:
        return False, exc.message
    return True, ""


def choose_executor(opts: Options, log: Log) -> Executor:
    """The executor ``[build] executor`` asks for.

    docker: the Docker executor (building the builder image if needed), or EnvironmentProblem
    (exit 3) with the hint how to start a daemon. host: subprocesses. auto: Docker when a daemon
    answers within a few seconds, otherwise the host with a one-line notice.
    """
    kind = opts.build.executor
    if kind == "auto":
        ok, why = docker_available()
        if not ok:
            log(f"notice: building on the host: {why.rstrip('.')} (set [build] executor = docker to require Docker).")
            kind = "host"
        else:
            kind = "docker"
    try:
        factory = EXECUTORS[kind]
    except KeyError:  # config.py validates the choice; this guards a registry/config mismatch
        raise EnvironmentProblem(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}") from None
    return factory.from_options(opts, log)
