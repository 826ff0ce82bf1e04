"""Pure hunk parsing and application (pipeline.patches.hunks), against diffs made by git itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import PatchFormatError
from pipeline.patches.hunks import Misfit, apply_file, parse_diff, unquote_path


def gitdiff(tmp: Path, old: bytes | None, new: bytes | None, rel: str = "src/x.go") -> bytes:
    """`git diff --no-index` of two versions of one file, with a/ b/ paths relative to GOROOT."""
    for side, data in (("a", old), ("b", new)):
        p = tmp / side / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists():
            p.unlink()
        if data is not None:
            p.write_bytes(data)
    args = [f"a/{rel}" if old is not None else "/dev/null", f"b/{rel}" if new is not None else "/dev/null"]
    proc = subprocess.run(["git", "diff", "--no-index", "--no-prefix", "--no-color", *args], cwd=tmp,
                          capture_output=True)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def one(diff: bytes):
    files = parse_diff(diff)
    assert len(files) == 1
    return files[0]


LINES = b"".join(b"line %d\n" % i for i in range(1, 31))


def test_exact_and_reverse(tmp_path):
    new = LINES.replace(b"line 10\n", b"line ten\n")
    fd = one(gitdiff(tmp_path, LINES, new))
    assert fd.old_path == fd.new_path == "src/x.go"
    r = apply_file(fd, LINES)
    assert r.data == new and r.offsets == ()
    assert apply_file(fd.reversed(), new).data == LINES


def test_offset_is_reported_and_the_nearest_place_wins(tmp_path):
    new = LINES.replace(b"line 20\n", b"line twenty\n")
    fd = one(gitdiff(tmp_path, LINES, new))
    shifted = b"x\n" * 5 + LINES
    r = apply_file(fd, shifted)
    assert r.data == b"x\n" * 5 + new
    assert [d for _, d in r.offsets] == [5]
    with pytest.raises(Misfit):
        apply_file(fd, shifted, allow_offset=False)


def test_a_second_hunk_follows_the_offset_of_the_first(tmp_path):
    new = LINES.replace(b"line 5\n", b"five\n").replace(b"line 25\n", b"twenty-five\n")
    fd = one(gitdiff(tmp_path, LINES, new))
    assert len(fd.hunks) == 2
    r = apply_file(fd, b"pre\n" * 2 + LINES)
    assert r.data == b"pre\n" * 2 + new and [d for _, d in r.offsets] == [2, 2]


def test_fuzz_drops_edge_context_only_when_allowed(tmp_path):
    new = LINES.replace(b"line 15\n", b"fifteen\n")
    fd = one(gitdiff(tmp_path, LINES, new))
    edited = LINES.replace(b"line 12\n", b"twelve\n")  # the first context line of the hunk
    with pytest.raises(Misfit):
        apply_file(fd, edited)
    r = apply_file(fd, edited, fuzz=1)
    assert r.data == edited.replace(b"line 15\n", b"fifteen\n") and r.fuzzed


@pytest.mark.parametrize(("old", "new"), [
    (b"a\nb", b"a\nb\n"),  # add the final newline
    (b"a\nb\n", b"a\nb"),  # remove it
    (b"a\nb", b"a\nc"),  # change a last line that has none
    (b"one\r\ntwo\r\n", b"one\r\ntwo\rthree\r\n"),  # CRLF and a lone CR inside a line
    (b"caf\xe9\n\xff\xfe\n", b"caf\xe9!\n\xff\xfe\n"),  # not UTF-8
    (b"", b"new\n"),
    (b"\n\n\n", b"\n\nx\n\n"),
])
def test_end_of_file_cr_and_bytes(tmp_path, old, new):
    fd = one(gitdiff(tmp_path, old, new))
    assert apply_file(fd, old).data == new
    assert apply_file(fd.reversed(), new).data == old


def test_new_and_deleted_files(tmp_path):
    add = one(gitdiff(tmp_path, None, b"hello\n"))
    assert add.old_path is None and add.new_path == "src/x.go" and add.new_mode == "100644"
    assert apply_file(add, None).data == b"hello\n"
    with pytest.raises(Misfit, match="already exists"):
        apply_file(add, b"hello\n")
    rm = one(gitdiff(tmp_path, b"bye\n", None))
    assert rm.new_path is None
    assert apply_file(rm, b"bye\n").data == b""
    with pytest.raises(Misfit, match="would remain"):
        apply_file(rm, b"bye\nmore\n")
    with pytest.raises(Misfit, match="does not exist"):
        apply_file(rm, None)


def test_a_hunk_without_context_is_refused_where_git_would_put_it_at_the_end():
    # `git diff -U0` hunk: plain `git apply` must match a hunk without trailing context at the
    # end of the file, so it would append "c" after the last line instead of after line 2.
    fd = one(b"--- a/src/x.go\n+++ b/src/x.go\n@@ -2,0 +3 @@\n+c\n")
    with pytest.raises(Misfit, match="no context lines") as exc:
        apply_file(fd, b"a\nb\nz\n")
    assert "-U3" in exc.value.describe()
    # Where the end of the file is what the header says, git places it right: so does gopatch.
    assert apply_file(fd, b"a\nb\n").data == b"a\nb\nc\n"
    last = one(b"--- a/src/x.go\n+++ b/src/x.go\n@@ -3 +3 @@\n-z\n+Z\n")
    assert apply_file(last, b"a\nb\nz\n").data == b"a\nb\nZ\n"
    # At the start of the file a context-free hunk is anchored at both ends: whole-file rewrite.
    fd = one(b"--- a/src/x.go\n+++ b/src/x.go\n@@ -1,2 +1 @@\n-a\n-b\n+c\n")
    assert apply_file(fd, b"a\nb\n").data == b"c\n"
    with pytest.raises(Misfit):
        apply_file(fd, b"a\nb\nmore\n")


def test_several_sections_for_one_file_apply_in_order():
    # golang-fips creates a file in one section and edits it in a later one of the same patch.
    from pipeline.patches.overlay import FileState, Overlay, apply_files

    diff = (b"diff --git a/src/n.go b/src/n.go\nnew file mode 100644\n--- /dev/null\n+++ b/src/n.go\n"
            b"@@ -0,0 +1,2 @@\n+package n\n+var a = 1\n"
            b"diff --git a/src/n.go b/src/n.go\n--- a/src/n.go\n+++ b/src/n.go\n@@ -1,2 +1,3 @@\n"
            b" package n\n var a = 1\n+var b = 2\n")
    files = parse_diff(diff)
    changes, _ = apply_files(Overlay(lambda rel: None), files)
    assert changes == {"src/n.go": FileState(b"package n\nvar a = 1\nvar b = 2\n", "100644")}


def test_copy_and_rename_headers_name_the_files():
    from pipeline.patches.overlay import FileState, Overlay, apply_files

    tree = {"src/x.go": FileState(b"x\n", "100755")}
    copy = parse_diff(b"diff --git a/src/x.go b/src/y.go\nsimilarity index 100%\ncopy from src/x.go\n"
                      b"copy to src/y.go\n")
    changes, _ = apply_files(Overlay(tree.get), copy)
    assert changes == {"src/y.go": FileState(b"x\n", "100755")}
    # The names come from rename from/to, not from the `diff --git` line.
    ren = parse_diff(b"diff --git a/src/x.go b/src/x.go\nsimilarity index 100%\nrename from src/x.go\n"
                     b"rename to src/z.go\n")
    changes, _ = apply_files(Overlay(tree.get), ren)
    assert changes == {"src/x.go": None, "src/z.go": FileState(b"x\n", "100755")}


def test_binary_change_without_data_is_a_misfit_that_says_how_to_regenerate():
    fd = one(b"diff --git a/bin/go b/bin/go\nindex 1..2 100755\nBinary files a/bin/go and b/bin/go differ\n")
    with pytest.raises(Misfit, match="--binary"):
        apply_file(fd, b"\x7fELF")


def test_absolute_traditional_name_is_taken_relative_as_git_does():
    fd = one(b"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n")
    assert fd.old_path == fd.new_path == "etc/passwd"


def test_misfit_points_at_the_closest_place(tmp_path):
    new = LINES.replace(b"line 10\n", b"ten\n")
    fd = one(gitdiff(tmp_path, LINES, new))
    tree = LINES.replace(b"line 9\n", b"nine\n")
    with pytest.raises(Misfit) as exc:
        apply_file(fd, tree)
    m = exc.value
    assert m.at == 6 and m.hunk is fd.hunks[0]
    text = m.describe()
    assert "src/x.go: hunk @@ -7,7 +7,7 @@" in text and "  - line 9" in text and "  + nine" in text


def test_several_files_mode_change_and_rename_headers():
    diff = (b"diff --git a/src/a.go b/src/a.go\nold mode 100644\nnew mode 100755\n"
            b"diff --git a/src/old.go b/src/new.go\nsimilarity index 100%\nrename from src/old.go\nrename to src/new.go\n"
            b"diff --git a/src/c.go b/src/c.go\nindex 1111111..2222222 100644\n--- a/src/c.go\n+++ b/src/c.go\n"
            b"@@ -1 +1 @@\n-c\n+C\n")
    a, ren, c = parse_diff(diff)
    assert (a.old_mode, a.new_mode, a.hunks) == ("100644", "100755", [])
    assert (ren.old_path, ren.new_path, ren.is_rename) == ("src/old.go", "src/new.go", True)
    assert apply_file(c, b"c\n").data == b"C\n"


def test_quoted_paths_are_unquoted():
    assert unquote_path('"a/caf\\303\\251 \\"x\\".go"') == 'a/café "x".go'
    diff = (b'diff --git "a/src/caf\\303\\251.go" "b/src/caf\\303\\251.go"\n--- "a/src/caf\\303\\251.go"\n'
            b'+++ "b/src/caf\\303\\251.go"\n@@ -1 +1 @@\n-a\n+b\n')
    assert parse_diff(diff)[0].path == "src/café.go"


BAD = [
    (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n", "shorter than expected"),
    (b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n", "wrong counts"),
    (b"--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "contains '..'"),
    (b"--- a//etc/passwd\n+++ b//etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "is absolute"),
    (b"--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n", "into .git"),
    (b"diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n", "symlink"),
    (b"just some text\n", "no diff found"),
    (b"diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n", "only garbage"),
    (b"--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n@@ -7 +7 @@\n", "corrupt patch"),
    (b"--- a/.GIT/config\n+++ b/.GIT/config\n@@ -1 +1 @@\n-a\n+b\n", "into .git"),
    (b"--- a/src/git~1/x\n+++ b/src/git~1/x\n@@ -1 +1 @@\n-a\n+b\n", "into .git"),
    (b"--- a/.git. /x\n+++ b/.git. /x\n@@ -1 +1 @@\n-a\n+b\n", "into .git"),
    (b"--- a/" + b"x" * 300 + b"\n+++ b/" + b"x" * 300 + b"\n@@ -1 +1 @@\n-a\n+b\n", "longer than 255"),
    (b"diff --git a/x b/x\nnew file mode 100644\ndeleted file mode 100644\n", "inconsistent header"),
    (b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n?garbage\n", "Hunk diff line expected"),
]


@pytest.mark.parametrize(("diff", "needle"), BAD)
def test_malformed_and_hostile_diffs_are_format_errors(diff, needle):
    with pytest.raises(PatchFormatError) as exc:
        parse_diff(diff, origin="p.patch", first_line=10)
    assert exc.value.exit_code == 2 and needle in exc.value.message
    assert exc.value.message.startswith("p.patch")


def test_parse_error_names_the_line():
    diff = b"--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n?b\n"
    with pytest.raises(PatchFormatError, match=r"^p\.patch:14: "):
        parse_diff(diff, origin="p.patch", first_line=10)


chunks = st.lists(st.sampled_from([b"a", b"b", b"c", b"\r", b"\xff", b"\xe9", b" ", b"\t"]), max_size=4)
lines = st.lists(chunks.map(b"".join), max_size=12)
content = st.tuples(lines, st.booleans()).map(
    lambda t: b"".join(x + b"\n" for x in t[0]) + (b"tail" if t[1] else b""))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=content, new=content)
def test_any_git_diff_applies_and_reverses_exactly(tmp_path, old, new):
    diff = gitdiff(tmp_path, old, new)
    if not diff:
        assert old == new
        return
    fd = one(diff)
    assert apply_file(fd, old).data == new
    assert apply_file(fd.reversed(), new).data == old
