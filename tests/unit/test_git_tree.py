"""pipeline.git: GoTree records its base, explains what is missing, sees untracked files; and the
git-tree helpers the patch tests build on make clean, exact trees."""

from __future__ import annotations

from pathlib import Path

import git
import pytest
from gittrees import BASE_FILES, diff_of, make_tree

from pipeline.errors import EnvironmentProblem
from pipeline.journal import open_tree


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


def test_helpers_make_a_clean_exact_tree(tmp_path):
    tree = make_tree(tmp_path / "t")
    assert not tree.is_dirty()
    assert (tmp_path / "t" / "src" / "runtime" / "crlf.go").read_bytes() == BASE_FILES["src/runtime/crlf.go"]
    d = diff_of(tree.path, {"src/runtime/nonl.go": b"package runtime\n\nvar x = 2"})
    assert b"\\ No newline at end of file" in d
    assert not tree.is_dirty()
