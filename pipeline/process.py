"""Processes by pid: is one still running, and stopping the ones a killed command left behind.

One module because three places need the same answers (the apply journal, ``gopatch try``'s
throw-away directories, the artifact store's leftovers of a killed build) and had three copies
that disagreed about zombies.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Is ``pid`` a running process? A zombie (killed, not yet reaped by its parent) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) said it exists
    return state not in (b"Z", b"X")


def kill_processes_in(directory: Path, *, wait: float = 10.0) -> list[int]:
    """SIGKILL every process whose working directory or executable is inside ``directory``
    (Linux /proc; elsewhere nothing is found), and wait until they are gone. Returns their pids."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    root = os.path.realpath(directory)
    victims = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for link in ("cwd", "exe"):
            try:
                target = os.readlink(f"/proc/{entry.name}/{link}")
            except OSError:
                continue
            if target == root or target.startswith(root + "/"):
                victims.append(int(entry.name))
                break
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
    deadline = time.monotonic() + wait
    running = list(victims)
    while running and time.monotonic() < deadline:
        running = [pid for pid in running if alive(pid)]
        if running:
            time.sleep(0.05)
    return victims
