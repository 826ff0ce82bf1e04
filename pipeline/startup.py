"""Signals during start-up: a Ctrl-C (or SIGTERM) while Python is still importing gopatch's
modules (typer, GitPython, docker...: a few hundred milliseconds) exits 130 without a traceback.

Nothing has been read or written at that point, so leaving at once is safe. ``install`` runs
before the heavy imports, and only when gopatch runs as a program (the console script enters
through ``pipeline.__main__.main``; ``python -m pipeline.cli`` calls ``install`` when run as __main__), never
when a test or another program imports ``pipeline.cli``. ``restore`` puts the normal handlers
back as soon as the command itself starts: from then on SIGINT is KeyboardInterrupt, which the
CLI turns into exit 130 after the command has put everything back.

This module imports nothing but the standard library's os and signal, on purpose.
"""

from __future__ import annotations

import os
import signal

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_saved: dict[int, object] = {}


def _leave(signum: int, frame: object) -> None:
    os.write(2, b"gopatch: interrupted\n")
    os._exit(130)


def install() -> None:
    """Exit 130 quietly on SIGINT/SIGTERM until ``restore``. A signal that was ignored when we
    started (a background job of a shell without job control) stays ignored."""
    for sig in _SIGNALS:
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN and sig not in _saved:
            _saved[sig] = old
            signal.signal(sig, _leave)


def restore() -> None:
    for sig, old in list(_saved.items()):
        if signal.getsignal(sig) is _leave:
            signal.signal(sig, old)  # type: ignore[arg-type]
        del _saved[sig]
