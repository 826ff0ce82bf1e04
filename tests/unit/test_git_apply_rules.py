"""The rules of `git apply` that gopatch follows, each checked against git itself on one small case.

Every case writes a tree and a diff, runs real `git apply` (no options) on one copy and gopatch's
engine (``hunks.parse_diff`` + ``patches.apply_files``, what `gopatch apply` uses) on the same
files, and compares: both refuse, or both accept with the same files, bytes and exec bits.
The broad, generated comparison is tests/unit/test_apply_differential.py; these name the rules.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import PatchFormatError
from pipeline.patches.hunks import Misfit, parse_diff
from pipeline.patches.overlay import FileState, Overlay, apply_files

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull}


def git_apply(root: Path, tree: dict[str, bytes | tuple[bytes, bool]], diff: bytes) -> dict | None:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True, env={**os.environ, **GIT_ENV})
    for rel, data in tree.items():
        body, exe = data if isinstance(data, tuple) else (data, False)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
        p.chmod(0o755 if exe else 0o644)
    (root / ".p.diff").write_bytes(diff)
    proc = subprocess.run(["git", "apply", ".p.diff"], cwd=root, capture_output=True, env={**os.environ, **GIT_ENV})
    (root / ".p.diff").unlink()
    if proc.returncode != 0:
        return None
    out = {}
    for p in sorted(root.rglob("*")):
        if ".git" in p.relative_to(root).parts or not p.is_file():
            continue
        out[p.relative_to(root).as_posix()] = FileState(p.read_bytes(),
                                                         "100755" if p.stat().st_mode & stat.S_IXUSR else "100644")
    return out


def gopatch_apply(tree: dict[str, bytes | tuple[bytes, bool]], diff: bytes) -> dict | None:
    files = {rel: FileState(*(d if isinstance(d, tuple) else (d, False))) for rel, d in tree.items()}
    files = {rel: FileState(s.data, "100755" if s.mode is True else "100644") for rel, s in files.items()}
    try:
        changes, _ = apply_files(Overlay(files.get), parse_diff(diff))
    except (Misfit, PatchFormatError):
        return None
    result = {**files, **changes}
    return {k: v for k, v in sorted(result.items()) if v is not None}


def same(tmp_path: Path, tree, diff: bytes):
    want = git_apply(tmp_path / "git", tree, diff)
    got = gopatch_apply(tree, diff)
    assert got == want
    return got


LINES = b"".join(b"%d\n" % i for i in range(1, 21))
BLOCK = b"a\nb\nc\nd\ne\nf\ng\n"


def test_a_tie_is_broken_forwards(tmp_path):
    # The header points at line 5; the context block is at lines 3 and 7, two away either way.
    tree = {"f": b"x\nx\na\nb\nc\ny\na\nb\nc\nz\n"}
    diff = b"--- a/f\n+++ b/f\n@@ -5,3 +5,3 @@\n a\n-b\n+B\n c\n"
    got = same(tmp_path, tree, diff)
    assert got["f"].data == b"x\nx\na\nb\nc\ny\na\nB\nc\nz\n"


def test_each_hunk_starts_from_its_own_header(tmp_path):
    # The first hunk lands 3 lines late; the second is found where its own header says.
    tree = {"f": b"p\n" * 3 + LINES + LINES}
    diff = (b"--- a/f\n+++ b/f\n@@ -2,3 +2,3 @@\n 2\n-3\n+three\n 4\n"
            b"@@ -22,3 +22,3 @@\n 2\n-3\n+THREE\n 4\n")
    same(tmp_path, tree, diff)


def test_lines_written_by_a_hunk_are_not_matched_again(tmp_path):
    tree = {"f": b"a\nb\nc\nd\n"}
    diff = (b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+X\n c\n"
            b"@@ -1,3 +1,3 @@\n a\n-X\n+Y\n c\n")
    assert same(tmp_path, tree, diff) is None


def test_rename_lines_name_the_files_not_the_diff_git_line(tmp_path):
    tree = {"src/x.go": b"x\n", "src/y.go": b"y\n"}
    diff = (b"diff --git a/src/x.go b/src/x.go\nsimilarity index 90%\nrename from src/x.go\nrename to src/z.go\n"
            b"--- a/src/x.go\n+++ b/src/z.go\n@@ -1 +1 @@\n-x\n+z\n")
    assert same(tmp_path, tree, diff)["src/z.go"].data == b"z\n"


def test_an_index_line_mode_is_not_a_mode_change(tmp_path):
    tree = {"run.bash": (b"echo\n", True)}
    diff = b"diff --git a/run.bash b/run.bash\nindex 1111111..2222222 100644\n--- a/run.bash\n+++ b/run.bash\n" \
           b"@@ -1 +1 @@\n-echo\n+echo hi\n"
    assert same(tmp_path, tree, diff)["run.bash"].mode == "100755"


def test_mode_lines_after_garbage_do_not_attach_to_the_previous_file(tmp_path):
    tree = {"a": b"a\n", "b": b"b\n"}
    diff = (b"diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-a\n+A\n"
            b"some garbage\nold mode 100644\nnew mode 100755\n")
    assert same(tmp_path, tree, diff)["a"].mode == "100644"


def test_a_mode_change_alone(tmp_path):
    tree = {"a": b"a\n"}
    assert same(tmp_path, tree, b"diff --git a/a b/a\nold mode 100644\nnew mode 100755\n")["a"].mode == "100755"


def test_create_then_edit_in_one_diff(tmp_path):
    diff = (b"diff --git a/n b/n\nnew file mode 100644\n--- /dev/null\n+++ b/n\n@@ -0,0 +1,2 @@\n+1\n+2\n"
            b"diff --git a/n b/n\n--- a/n\n+++ b/n\n@@ -1,2 +1,3 @@\n 1\n 2\n+3\n")
    assert same(tmp_path, {"keep": b"k\n"}, diff)["n"].data == b"1\n2\n3\n"


def test_delete_then_recreate_in_one_diff(tmp_path):
    diff = (b"diff --git a/f b/f\ndeleted file mode 100644\n--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n"
            b"diff --git a/f b/f\nnew file mode 100755\n--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+new\n")
    assert same(tmp_path, {"f": b"old\n"}, diff)["f"] == FileState(b"new\n", "100755")


def test_swap_two_files_by_renames(tmp_path):
    diff = (b"diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n"
            b"diff --git a/y b/x\nsimilarity index 100%\nrename from y\nrename to x\n")
    got = same(tmp_path, {"x": b"X\n", "y": b"Y\n"}, diff)
    assert got["x"].data == b"Y\n" and got["y"].data == b"X\n"


def test_a_copy_reads_the_tree_as_it_was(tmp_path):
    diff = (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-1\n+2\n"
            b"diff --git a/x b/c\nsimilarity index 100%\ncopy from x\ncopy to c\n")
    assert same(tmp_path, {"x": b"1\n"}, diff)["c"].data == b"1\n"


@pytest.mark.parametrize("diff", [
    b"diff --git a/f b/f\nindex 1..2 100644\n--- a/f\n+++ b/f\n",  # cut after +++
    b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-1\n+one\n",  # hunk cut short
    b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-1\n+one",  # last line without newline
    b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,x +1 @@\n-1\n+one\n",  # nonsense count
    b"@@ -1 +1 @@\n-1\n+one\n",  # a fragment without a header
    b"diff --git a/f b/f\n--- a/f\n+++ b/g\n@@ -1 +1 @@\n-1\n+one\n",  # +++ disagrees with the header
    b"garbage only\n",
])
def test_what_git_refuses_is_refused(tmp_path, diff):
    assert same(tmp_path, {"f": LINES}, diff) is None


def test_garbage_before_between_and_after_sections_is_skipped(tmp_path):
    diff = (b"From: x\nSubject: y\n\nsome text\n---\n f | 2 +-\n\n"
            b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n"
            b"-- \n2.39.5\n\n")
    assert same(tmp_path, {"f": LINES}, diff)["f"].data.startswith(b"1\ntwo\n3\n")


def test_traditional_diff_with_timestamps_and_without_prefix(tmp_path):
    diff = (b"--- f\t2024-01-01 10:00:00.000000000 +0100\n+++ f\t2024-01-02 10:00:00.000000000 +0100\n"
            b"@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n")
    same(tmp_path, {"f": LINES}, diff)


def test_traditional_creation_with_an_epoch_date(tmp_path):
    diff = (b"--- a/new\t1970-01-01 00:00:00.000000000 +0000\n+++ b/new\t2024-01-02 10:00:00.000000000 +0100\n"
            b"@@ -0,0 +1 @@\n+hello\n")
    assert same(tmp_path, {"f": LINES}, diff)["new"].data == b"hello\n"


def git_binary_diff(tmp_path: Path, old: bytes | None, new: bytes | None) -> bytes:
    repo = tmp_path / "mk"
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env={**os.environ, **GIT_ENV})
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@b"}
    if old is not None:
        (repo / "bin.dat").write_bytes(old)
    (repo / "keep").write_bytes(b"k\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "old"], check=True, env=env)
    if new is None:
        (repo / "bin.dat").unlink()
    else:
        (repo / "bin.dat").write_bytes(new)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    return subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--binary"], check=True, env=env,
                          capture_output=True).stdout


BIN = bytes(range(256)) * 40


@pytest.mark.parametrize(("old", "new"), [
    (None, BIN),  # literal, new file
    (BIN, BIN[:5000] + b"\0changed\0" + BIN[5000:]),  # a small edit: git writes a delta
    (BIN, os.urandom(3000)),  # a rewrite: literal
    (BIN, None),  # deletion
])
def test_git_binary_patches_literal_and_delta(tmp_path, old, new):
    diff = git_binary_diff(tmp_path, old, new)
    assert b"GIT binary patch" in diff
    tree = {"keep": b"k\n", **({"bin.dat": old} if old is not None else {})}
    got = same(tmp_path, tree, diff)
    assert got is not None
    assert (got.get("bin.dat").data if new is not None else None) == new
    # The wrong old bytes: refused, as git does.
    if old is not None:
        assert same(tmp_path / "wrong", {**tree, "bin.dat": old + b"x"}, diff) is None


def test_a_mode_without_type_bits_is_the_wrong_type(tmp_path):
    diff = b"diff --git a/a b/b\nsimilarity index 100%\nrename from a\nrename to b\nold mode 644\nnew mode 100755\n"
    assert same(tmp_path, {"a": b"a\n"}, diff) is None


def test_a_hunk_header_before_any_file_header_is_refused(tmp_path):
    from pipeline.patches.series import parse_patch_bytes

    data = (b"Subject: x\n\n@@ -1,3 +1,3 @@ in the message\n---\n"
            b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n")
    assert git_apply(tmp_path / "git", {"f": LINES}, data) is None
    with pytest.raises(PatchFormatError, match=r"x\.patch:3: patch fragment without header"):
        parse_patch_bytes(data, path=tmp_path / "x.patch", name="x", strict=False)


def test_a_creation_that_keeps_an_old_name_is_refused_where_git_aborts(tmp_path):
    # git 2.39 dies on `assert(patch->is_new <= 0)` in check_preimage for this input.
    diff = (b"diff --git a/src/new.go b/src/new.go\nGIT binary patch\nnew mode 100644\n--- /dev/null\n"
            b"+++ b/src/new.go\n@@ -0,0 +1 @@\n+package x\n")
    assert same(tmp_path, {"f": b"f\n"}, diff) is None
