"""Series and patch file parsing: fields, trailers, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError, PatchFormatError, UsageError
from pipeline.patches.series import (
    load_series,
    parse_patch_bytes,
    parse_patch_file,
    render_patch,
    select,
    slug,
)

DIFF = (b"diff --git a/src/runtime/proc.go b/src/runtime/proc.go\n--- a/src/runtime/proc.go\n"
        b"+++ b/src/runtime/proc.go\n@@ -1 +1 @@\n-a\n+b\n")

FULL = (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        b"From: Jane Doe <jane@example.com>\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"Subject: [PATCH 2/3] runtime: count handoffp outcomes and\n print them in schedtrace\n"
        b"\n"
        b"The problem, the change.\n\nHow to observe it.\n"
        b"\n"
        b"Touches: runtime.handoffp, runtime.schedtrace\n"
        b"Touches: runtime.(*p).init\n"
        b"Helpers: runtime.countHandoff\n"
        b"API: runtime.HandoffStats\n"
        b"Probe: probes/handoffp\n"
        b"Signed-off-by: Jane Doe <jane@example.com>\n"
        b"---\n"
        b" src/runtime/proc.go | 2 +-\n 1 file changed\n\n" + DIFF + b"-- \n2.43.0\n\n")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_full_patch_file(tmp_path):
    p = parse_patch_file(write(tmp_path, "handoffp.patch", FULL))
    assert p.name == "handoffp"
    assert p.subject == "runtime: count handoffp outcomes and print them in schedtrace"
    assert p.author == "Jane Doe <jane@example.com>"
    assert p.description == "The problem, the change.\n\nHow to observe it."
    assert p.touches == ("runtime.handoffp", "runtime.schedtrace", "runtime.(*p).init")
    assert p.helpers == ("runtime.countHandoff",) and p.api == ("runtime.HandoffStats",)
    assert p.probe == "probes/handoffp"
    assert p.diff.startswith(b"diff --git ") and p.diff_line == 21
    assert ("Signed-off-by", "Jane Doe <jane@example.com>") in p.trailers
    assert p.message.endswith("Signed-off-by: Jane Doe <jane@example.com>\nGopatch-Patch: handoffp\n")


def test_render_then_parse_round_trips(tmp_path):
    p = parse_patch_file(write(tmp_path, "x.patch", FULL))
    body = p.message.split("\n", 1)[1].replace("Gopatch-Patch: x\n", "")
    again = parse_patch_bytes(render_patch(author=p.author, subject=p.subject, body=body, diff=p.diff),
                              path=tmp_path / "x.patch", name="x")
    assert (again.subject, again.description, again.trailers, again.diff, again.message) == \
        (p.subject, p.description, p.trailers, p.diff, p.message)


def test_non_utf8_and_cr_in_the_diff_are_kept_as_bytes(tmp_path):
    diff = DIFF.replace(b"+b\n", b"+caf\xe9 a\rb\n")
    p = parse_patch_file(write(tmp_path, "x.patch", b"Subject: s\n\nTouches: a.b\n---\n" + diff))
    assert p.diff == diff


@pytest.mark.parametrize(("data", "line", "needle"), [
    (b"From: x <y>\nSubject: s\n\nNo trailers here.\n---\n" + DIFF, 4, "Touches: trailer is missing"),
    (b"From: x <y>\n\nbody\n\nTouches: a.b\n---\n" + DIFF, 1, "Subject: header is missing"),
    (b"Subject: s\nthis is not a header\n\nTouches: a.b\n---\n" + DIFF, 2, "malformed header line"),
    (b"Subject: s\n\nTouches: a.b\n", 3, "no diff found"),
    (b"Subject: s\n\nTouches: a.b\n---\njust text\n", 4, "no diff follows"),
    (b"Subject: s\n\nTouches: not a function\n---\n" + DIFF, 3, "package-qualified"),
    (b"Subject: s\n\nTouches: a.b\nProbe: /etc\n---\n" + DIFF, 4, "must be a relative path"),  # the trailer line
])
def test_malformed_patch_names_file_and_line(tmp_path, data, line, needle):
    path = write(tmp_path, "bad.patch", data)
    with pytest.raises(PatchFormatError) as exc:
        parse_patch_file(path)
    assert exc.value.exit_code == 2
    assert f"{path}:{line}:" in exc.value.message and needle in exc.value.message


def test_bare_diff_is_accepted_only_when_not_strict(tmp_path):
    path = write(tmp_path, "upstream.patch", DIFF)
    p = parse_patch_file(path, strict=False)
    assert p.subject == "Apply upstream.patch" and p.touches == () and p.diff == DIFF
    with pytest.raises(PatchFormatError, match="Subject"):
        parse_patch_file(path)


def series_dir(tmp_path: Path, series: str, files: dict[str, bytes]) -> Path:
    d = tmp_path / "go1.27"
    d.mkdir()
    (d / "series").write_text(series)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def ok(subject: str) -> bytes:
    return f"Subject: {subject}\n\nTouches: runtime.f\n---\n".encode() + DIFF


def test_series_order_is_the_files_order_and_comments_are_ignored(tmp_path):
    d = series_dir(tmp_path, "# comment\n\nzeta.patch  # first\nalpha.patch\n",
                   {"zeta.patch": ok("z"), "alpha.patch": ok("a"), "unlisted.patch": ok("u")})
    assert [p.name for p in load_series(d)] == ["zeta", "alpha"]


@pytest.mark.parametrize(("series", "line", "needle"), [
    ("a.patch\nmissing.patch\n", 2, "does not exist"),
    ("a.patch\n\na.patch\n", 3, "listed twice (first on line 1)"),
    ("a.patch extra\n", 1, "not a patch file name"),
    ("../a.patch\n", 1, "not a patch file name"),
])
def test_bad_series_entries_name_series_file_and_line(tmp_path, series, line, needle):
    d = series_dir(tmp_path, series, {"a.patch": ok("a")})
    with pytest.raises(PatchFormatError) as exc:
        load_series(d)
    assert f"{d / 'series'}:{line}:" in exc.value.message and needle in exc.value.message


def test_a_malformed_patch_in_the_series_fails_the_whole_load(tmp_path):
    d = series_dir(tmp_path, "a.patch\nb.patch\n", {"a.patch": ok("a"), "b.patch": b"Subject: b\n\n---\n" + DIFF})
    with pytest.raises(PatchFormatError, match=r"b\.patch:3: the Touches"):
        load_series(d)


def test_missing_series_dir_and_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_series(tmp_path / "nope")
    with pytest.raises(PatchFormatError, match="missing"):
        load_series(tmp_path)


def test_select_keeps_series_order_and_suggests_names(tmp_path):
    d = series_dir(tmp_path, "handoffp.patch\nother.patch\n", {"handoffp.patch": ok("h"), "other.patch": ok("o")})
    patches = load_series(d)
    assert [p.name for p in select(patches, ["other", "handoffp.patch"], series_dir=d)] == ["handoffp", "other"]
    with pytest.raises(UsageError, match="did you mean handoffp"):
        select(patches, ["handofp"], series_dir=d)


def test_slug():
    assert slug("runtime: count handoffp outcomes!") == "runtime-count-handoffp-outcomes"
    assert slug("???") == "patch"
