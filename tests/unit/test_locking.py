"""pipeline.locking: a second holder waits and is told who holds the lock."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from pipeline.locking import file_lock


def _hold_lock(path: str, seconds: float) -> None:
    with file_lock(Path(path)):
        time.sleep(seconds)


def test_file_lock_makes_the_second_holder_wait_and_names_the_first(tmp_path):
    lock = tmp_path / "k.lock"
    proc = multiprocessing.get_context("spawn").Process(target=_hold_lock, args=(str(lock), 1.5))
    proc.start()
    deadline = time.time() + 10
    while (not lock.exists() or not lock.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    waited_for = []
    start = time.monotonic()
    with file_lock(lock, on_wait=waited_for.append):
        elapsed = time.monotonic() - start
    proc.join()
    assert waited_for == [f"pid {proc.pid}"]
    assert elapsed > 0.5
