"""CPU seconds of one verify layer while other layers run in the same process at the same time.

The process-wide counters (getrusage RUSAGE_SELF / RUSAGE_CHILDREN) mix every layer that runs side
by side, so a layer's figure is the sum of what its own threads used (``time.thread_time`` around
each piece of work) and of each command it ran (``pipeline.cmd.child_cpu_sink``: the child's own
rusage from wait4, grandchildren it waited for included). The meter travels in a ``contextvars``
context: work a layer hands to a thread pool must go through ``submit`` to stay on its meter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import ContextVar, copy_context
from typing import Any, TypeVar

from ..cmd import child_cpu_sink

T = TypeVar("T")


class Meter:
    """Thread-safe sum of the CPU seconds of one layer's threads and commands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.own = 0.0  # gopatch's threads (parsing listings, hashing the distribution)
        self.children = 0.0  # go build, go test, probes

    def add_own(self, seconds: float) -> None:
        with self._lock:
            self.own += seconds

    def add_child(self, seconds: float) -> None:
        with self._lock:
            self.children += seconds

    @property
    def seconds(self) -> float:
        with self._lock:
            return self.own + self.children


_meter: ContextVar[Meter | None] = ContextVar("verify_cpu_meter", default=None)


def _timed(meter: Meter | None, fn: Callable[..., T], *args: Any) -> T:
    t0 = time.thread_time()
    try:
        return fn(*args)
    finally:
        if meter is not None:
            meter.add_own(time.thread_time() - t0)


def metered(meter: Meter, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh context whose commands and threads count on ``meter``."""
    ctx = copy_context()

    def enter() -> T:
        _meter.set(meter)
        child_cpu_sink.set(meter.add_child)
        return _timed(meter, fn)

    return ctx.run(enter)


def submit(pool: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
    """``pool.submit`` that keeps the caller's meter (a pool thread does not inherit the context)."""
    ctx = copy_context()
    return pool.submit(ctx.run, _timed, _meter.get(), fn, *args)
