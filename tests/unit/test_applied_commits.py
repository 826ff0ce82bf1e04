"""Which patches a tree carries has one answer (pipeline.patches.commits.applied), which status,
build and release share; and the one fast-import writer of pipeline/git.py takes any path."""

from __future__ import annotations

from pathlib import Path

import pytest
from gittrees import diff_of, git, make_tree, patch_text, write_series

from pipeline import git as gitlayer
from pipeline.build.run import source_info
from pipeline.config import host_target
from pipeline.errors import EnvironmentProblem
from pipeline.patches import operations as engine
from pipeline.patches.commits import NewCommit, write_commits
from pipeline.patches.overlay import FileState, GitPath
from pipeline.patches.series import load_series
from pipeline.release import inputs


def test_a_commit_made_by_hand_is_the_same_patch_for_status_build_and_release(tmp_path, make_opts):
    """A commit made by hand (``git apply`` + ``git commit`` with the patch's message, as ``git am``
    of the series file would) carries no ``Gopatch-Patch`` trailer. Status has always named it
    by its message; release used to read the trailer alone and refused the commit as "not a
    patch of the series"."""
    tree = make_tree(tmp_path / "go")
    tree.record(base=git(tree.path, "rev-parse", "HEAD").decode().strip())
    proc = (tree.path / "src/runtime/proc.go").read_bytes()
    diff = diff_of(tree.path, {"src/runtime/proc.go": proc.replace(b"line 20\n", b"line twenty\n")})
    series = write_series(tmp_path / "series", {"twenty": patch_text(diff, subject="runtime: twenty")})
    (patch,) = load_series(series)
    git(tree.path, "apply", "--index", str(patch.path))
    by_hand = patch.message.replace(f"Gopatch-Patch: {patch.name}\n", "")
    assert "Gopatch-Patch" not in by_hand
    git(tree.path, "commit", "-q", "-F", "-", input=by_hand.encode())
    sha = git(tree.path, "rev-parse", "HEAD").decode().strip()

    rows, extra = engine.status(tree, load_series(series))
    assert [(r.name, r.state, r.commit) for r in rows] == [("twenty", "applied", sha)] and extra == []
    assert source_info(tree, load_series(series)).patches == ((sha, "runtime: twenty", "twenty"),)

    # release: past the naming of the commits, it stops only because nothing was built.
    opts = make_opts(tmp_path / "cache", tmp_path, source__dir=str(tree.path), patches__series=str(series),
                     build__out=str(tmp_path / "out"))
    with pytest.raises(EnvironmentProblem) as exc:
        inputs.collect(opts, (host_target(),), skip_verify=True)
    assert "holds no build" in exc.value.message and "not patches of the series" not in exc.value.message


@pytest.mark.parametrize("path", ['say "hi".txt', '"leading-quote', "back\\slash", "new\nline", "plain name.go"])
def test_the_one_fast_import_writer_keeps_any_path(tmp_path, path):
    repo = tmp_path / "scratch.git"
    gitlayer.init(repo, bare=True)
    data = b"bytes\r\n\xff\n"
    (sha,) = write_commits(GitPath(repo), None, [
        NewCommit("one\n", "A <a@x>", "1700000000 +0000", "A <a@x>", "1700000000 +0000",
                  {path: FileState(data, "100755")})])
    listing = gitlayer.ls_tree(repo, sha)
    assert list(listing) == [path] and listing[path][0] == "100755"
    with gitlayer.CatFile(repo) as cat:
        assert cat.read(listing[path][1]) == data


def test_a_failing_git_command_names_itself_and_says_why(tmp_path: Path):
    with pytest.raises(gitlayer.GitError) as exc:
        gitlayer.out(tmp_path, "rev-parse", "--verify", "no-such-ref")
    assert "git -C" in exc.value.message and "rev-parse" in exc.value.message and "no-such-ref" in exc.value.message
