"""Version stamping: deterministic, accepted by Go's version syntax, VERSION's time line kept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.build.stamp import check_label, stamped_version, write_version_file
from pipeline.errors import ConfigError

TREE = "37933d3b5f0e1c2a9b8d7e6f5a4b3c2d1e0f9a8b"


def test_shape_and_determinism():
    v = stamped_version("go1.27.3", label="gopatch", patches=3, tree_hash=TREE)
    assert v == "go1.27.3-gopatch.3-37933d3b"
    assert v == stamped_version("go1.27.3", label="gopatch", patches=3, tree_hash=TREE)
    assert stamped_version("go1.27.3", label="", patches=3, tree_hash=TREE) == "go1.27.3"


@pytest.mark.parametrize("label", ["go patch", "x+y", "a_b", "-x", "X:nodwarf5", "ünï"])
def test_labels_that_break_go_tools_are_config_errors(label):
    with pytest.raises(ConfigError):
        check_label(label)


def test_release_must_be_a_go_release():
    with pytest.raises(ConfigError, match="devel"):
        stamped_version("devel +abc", label="gopatch", patches=1, tree_hash=TREE)


# What go/version.IsValid and a module version (distpack's v0.0.1-<version>.<goos>-<goarch>) need.
_GO_VERSION = re.compile(r"^go1\.\d+(\.\d+)?-[A-Za-z0-9.-]+$")
_SEMVER_PRERELEASE = re.compile(r"^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$")


@given(label=st.from_regex(r"\A[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?\Z"), n=st.integers(0, 500),
       tree=st.from_regex(r"\A[0-9a-f]{40}\Z"))
def test_every_accepted_label_gives_a_valid_go_and_module_version(label, n, tree):
    v = stamped_version("go1.27.3", label=label, patches=n, tree_hash=tree)
    assert _GO_VERSION.match(v)
    assert _SEMVER_PRERELEASE.match(f"{v}.linux-amd64")
    assert "+" not in v and "_" not in v


def test_write_version_keeps_time_line(tmp_path):
    p = tmp_path / "VERSION"
    p.write_text("go1.27.3\ntime 2026-10-19T22:20:36Z")
    write_version_file(p, "go1.27.3-gopatch.1-abcdef12")
    assert p.read_text() == "go1.27.3-gopatch.1-abcdef12\ntime 2026-10-19T22:20:36Z"
    empty = tmp_path / "EMPTY"
    empty.write_text("")
    with pytest.raises(ConfigError):
        write_version_file(empty, "x")
