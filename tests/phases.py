"""Wall time per phase of a test session, for CI's closing table (importable as `phases`, like
prereq).

CI's budget is spent in a few places: the unit suite, each real build of the e2e suite and the
e2e tests around them. pytest's --durations lists tests, but a session-scoped build is charged to
whichever test happens to set it up first; so each build fixture records itself here, and the root
conftest records the unit and e2e totals. Lines are "<phase>\\t<seconds>", appended to the file
named by $GOPATCH_TEST_PHASES when it is set (.ci/run sets it and prints the file at the end) and
shown in pytest's terminal summary either way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "GOPATCH_TEST_PHASES"
BUILD_PREFIX = "e2e build: "  # a build fixture's wall time: build_seconds() adds these up
STEP_PREFIX = "  of which gopatch build: "  # one target of it, as gopatch measured it
RECORDED: list[tuple[str, float]] = []


def record(phase: str, seconds: float) -> None:
    RECORDED.append((phase, seconds))
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{phase}\t{seconds:.1f}\n")


@contextmanager
def timed(phase: str) -> Iterator[None]:
    """Record the wall time of the block, also when it fails (a failed build still cost it)."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        record(phase, time.monotonic() - t0)


def build_seconds() -> float:
    return sum(s for p, s in RECORDED if p.startswith(BUILD_PREFIX))
