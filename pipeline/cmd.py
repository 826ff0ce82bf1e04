"""Every host command goes through ``run``: it echoes ``+ cmd``, checks the program exists and
fails loudly with the command's own last words (the habit of cibuildwheel's util/cmd.py).

The one exception is git, which goes through ``pipeline.git`` and nowhere else: git needs bytes
on stdin and stdout (file contents, ``-z`` listings), long-running pipes (``fast-import``,
``cat-file --batch``) and a sanitised environment, which a text-mode one-shot runner does not
give; pipeline/git.py keeps this module's conventions (a missing program or a failing command is
an EnvironmentProblem naming the command and its stderr)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import EnvironmentProblem, GopatchError


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
    proc = subprocess.run(
        args, cwd=cwd, env=dict(env) if env is not None else None, text=True,
        capture_output=capture, timeout=timeout, errors="replace",
    )
    if check and proc.returncode != 0:
        tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-20:])
        raise error(f"command failed (exit {proc.returncode}): {shlex.join(args)}\n{tail}")
    return proc
