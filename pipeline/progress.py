"""Live progress of a build: one line per target with make.bash's current stage and elapsed time.

make.bash announces each stage on a line of its own ("Building Go cmd/dist using ...",
"Building Go toolchain1 using ...", ..., "Building packages and commands for linux/amd64.");
``stage_of`` picks those out. On a terminal a rich display redraws one row per target; with
--json or when stderr is not a TTY each stage change is one plain line, so logs stay readable.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

# make.bash's own stage lines, in the order it prints them; the short label is what we display.
_STAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Building Go cmd/dist\b"), "cmd/dist"),
    (re.compile(r"^Building Go toolchain1\b"), "toolchain1"),
    (re.compile(r"^Building Go bootstrap cmd/go\b"), "go_bootstrap"),
    (re.compile(r"^Building Go toolchain2\b"), "toolchain2"),
    (re.compile(r"^Building Go toolchain3\b"), "toolchain3"),
    (re.compile(r"^Building packages and commands\b"), "packages and commands"),
    (re.compile(r"^Packaging archives\b"), "distpack"),
    (re.compile(r"^Installed Go for\b"), "installed"),
)


def stage_of(line: str) -> str | None:
    """The make.bash stage a log line announces, or None for any other line."""
    for pattern, label in _STAGES:
        if pattern.match(line):
            return label
    return None


class Progress(Protocol):
    def stage(self, target: str, label: str) -> None: ...
    def finish(self, target: str, status: str) -> None: ...
    def __enter__(self) -> Progress: ...
    def __exit__(self, *exc: object) -> None: ...


class PlainProgress:
    """One line per stage change: '[linux/amd64 0:42] toolchain2'."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._start: dict[str, float] = {}
        self._lock = threading.Lock()

    def _elapsed(self, target: str) -> str:
        seconds = int(time.monotonic() - self._start.setdefault(target, time.monotonic()))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def stage(self, target: str, label: str) -> None:
        with self._lock:
            self._write(f"[{target} {self._elapsed(target)}] {label}")

    def finish(self, target: str, status: str) -> None:
        with self._lock:
            self._write(f"[{target} {self._elapsed(target)}] {status}")

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RichProgress:
    """A rich Progress with one spinner row per target (stage + elapsed time)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import Progress as _Progress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = _Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[target]:<14}"), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=Console(file=stream), transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _task(self, target: str) -> Any:
        with self._lock:
            if target not in self._tasks:
                self._tasks[target] = self._progress.add_task("starting", total=None, target=target)
            return self._tasks[target]

    def stage(self, target: str, label: str) -> None:
        self._progress.update(self._task(target), description=label)

    def finish(self, target: str, status: str) -> None:
        task = self._task(target)
        self._progress.update(task, description=status, total=1, completed=1)
        self._progress.stop_task(task)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def make_progress(*, plain: bool, write: Callable[[str], None], stream: TextIO | None = None) -> Progress:
    """Rich on a terminal, plain lines otherwise (or when ``plain``: --json, --verbose logs)."""
    stream = stream or sys.stderr
    if not plain and stream.isatty():
        return RichProgress(stream)
    return PlainProgress(write)
