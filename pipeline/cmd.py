"""Every host command goes through ``run``: it echoes ``+ cmd``, checks the program exists and
fails loudly with the command's own last words (the habit of cibuildwheel's util/cmd.py).

The one exception is git, which goes through ``pipeline.git`` and nowhere else: git needs bytes
on stdin and stdout (file contents, ``-z`` listings), long-running pipes (``fast-import``,
``cat-file --batch``) and a sanitised environment, which a text-mode one-shot runner does not
give; pipeline/git.py keeps this module's conventions (a missing program or a failing command is
an EnvironmentProblem naming the command and its stderr)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

from .errors import EnvironmentProblem, GopatchError

# Where the CPU seconds of each finished command go: a callable set in the caller's context (see
# pipeline/verify/cpumeter.py). Work that runs side by side in one process (verify's layers) cannot
# tell its share from the process-wide RUSAGE_CHILDREN; each child's own rusage, taken when it is
# reaped, can be told apart. It includes the grandchildren the child waited for (go build's compiles).
child_cpu_sink: ContextVar[Callable[[float], None] | None] = ContextVar("child_cpu_sink", default=None)


class _MeteredPopen(subprocess.Popen):
    """Popen that reaps its child with wait4 and hands the child's CPU seconds to child_cpu_sink.

    _try_wait is the one place Popen reaps (CPython 3.3+); overriding it keeps Popen's own timeout,
    lock and return-code handling. tests/unit/test_verify_cpumeter.py fails if that ever changes."""

    def _try_wait(self, wait_flags):  # type: ignore[no-untyped-def]
        try:
            pid, sts, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:  # SIGCHLD ignored: the child is gone and so is its status (as Popen)
            return self.pid, 0
        if pid == self.pid:
            sink = child_cpu_sink.get()
            if sink is not None:
                sink(usage.ru_utime + usage.ru_stime)
        return pid, sts


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    check: bool = True,
    capture: bool = True,
    error: type[GopatchError] = EnvironmentProblem,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    args = [str(c) for c in cmd]
    program = args[0]
    if shutil.which(program, path=(env or {}).get("PATH")) is None and not Path(program).is_file():
        raise EnvironmentProblem(f"required program {program!r} was not found on PATH.")
    if log:
        log("+ " + shlex.join(args))
    pipe = subprocess.PIPE if capture else None
    # subprocess.run's own steps, with the metered Popen.
    with _MeteredPopen(args, cwd=cwd, env=dict(env) if env is not None else None, text=True,
                       stdout=pipe, stderr=pipe, errors="replace") as p:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()  # communicate already put the output so far into the exception
            raise
        except BaseException:
            p.kill()
            raise
        proc = subprocess.CompletedProcess(args, p.poll(), stdout, stderr)
    if check and proc.returncode != 0:
        tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-20:])
        raise error(f"command failed (exit {proc.returncode}): {shlex.join(args)}\n{tail}")
    return proc
