"""Bad input in a series: one clear paragraph naming the file and line, exit code 2, nothing applied.

Each case runs `gopatch apply --all` as a user would, on a real git tree with a valid patch listed
*before* the bad one, so "nothing applied" means something: the valid patch is not applied either.
Hypothesis then throws malformed headers and series files at the parser: every failure must be a
PatchFormatError that names the file and a line inside it, never another exception.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gittrees import BASE_FILES, diff_of, make_tree, patch_text, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import PatchFormatError
from pipeline.patches.series import load_series, parse_patch_bytes

PROC = "src/runtime/proc.go"


def gopatch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def work(tmp_path):
    """./goroot (a committed git tree) and ./patches/go1.27 with a valid patch `good` and the
    text of a second valid patch `other` to break in each test."""
    tree = make_tree(tmp_path / "goroot")
    good = diff_of(tree.path, {PROC: BASE_FILES[PROC].replace(b"line 10\n", b"line 10 good\n")})
    other = diff_of(tree.path, {"src/os/file.go": BASE_FILES["src/os/file.go"] + b"// other\n"})
    series = tmp_path / "patches" / "go1.27"
    series.mkdir(parents=True)
    (series / "good.patch").write_bytes(patch_text(good, subject="runtime: good"))
    (series / "other.patch").write_bytes(patch_text(other, subject="os: other", touches="os.Other"))
    (series / "series").write_text("# release: go1.27.3\ngood.patch\nother.patch\n")
    return tmp_path


def fails_cleanly(work: Path, *needles: str) -> str:
    before = snapshot(work / "goroot")
    proc = gopatch(work, "apply", "--all")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("gopatch: error: ")
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].lstrip().startswith("hint: ")), proc.stderr  # one paragraph
    for n in needles:
        assert n in proc.stderr, proc.stderr
    assert snapshot(work / "goroot") == before  # nothing applied, not even good.patch
    return proc.stderr


def test_malformed_header(work):
    p = work / "patches/go1.27/other.patch"
    p.write_bytes(p.read_bytes().replace(b"Subject: [PATCH] os: other\n", b"Subject: [PATCH] os: other\nnot a header\n"))
    fails_cleanly(work, f"{p}:3:", "malformed header line 'not a header'")


def test_missing_touches_trailer(work):
    p = work / "patches/go1.27/other.patch"
    p.write_bytes(p.read_bytes().replace(b"Touches: os.Other\n", b""))
    fails_cleanly(work, f"{p}:4:", "Touches: trailer is missing")


def test_series_entry_naming_a_missing_file(work):
    s = work / "patches/go1.27/series"
    s.write_text("# release: go1.27.3\ngood.patch\nmissing.patch\nother.patch\n")
    fails_cleanly(work, f"{s}:3:", "missing.patch does not exist")


def test_duplicate_name(work):
    s = work / "patches/go1.27/series"
    s.write_text("# release: go1.27.3\ngood.patch\nother.patch\n\ngood.patch  # again\n")
    fails_cleanly(work, f"{s}:5:", "'good' is listed twice (first on line 2)")


@pytest.mark.parametrize(("data", "line", "needle"), [
    (b"Subject: [PATCH]  \n\nbody\n\nTouches: a.b\n---\n", 1, "Subject: header is empty"),
    (b"From: x <y>\nSubject: s\n\ncaf\xe9\n\nTouches: a.b\n---\n", 4, "description is not UTF-8"),
    (b"Subject: =?bogus-charset?q?x?=\n\nTouches: a.b\n---\n", 1, "cannot decode the Subject"),
])
def test_header_errors_name_their_line(work, data, line, needle):
    p = work / "patches/go1.27/other.patch"
    p.write_bytes(data + p.read_bytes().split(b"---\n", 1)[1])
    fails_cleanly(work, f"{p}:{line}:", needle)


def test_non_utf8_series_file_names_the_line(work):
    s = work / "patches/go1.27/series"
    s.write_bytes(b"good.patch\n# caf\xe9\nother.patch\n")
    fails_cleanly(work, f"{s}:2:", "not UTF-8")


# --------------------------------------------------------------------------------------------
# Hypothesis: malformed headers and series files
# --------------------------------------------------------------------------------------------

DIFF = (b"diff --git a/src/runtime/proc.go b/src/runtime/proc.go\n--- a/src/runtime/proc.go\n"
        b"+++ b/src/runtime/proc.go\n@@ -1 +1 @@\n-a\n+b\n")
HEADER_LINES = [b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001", b"From: Jane <j@x>",
                b"Subject: [PATCH] runtime: x", b"Subject:", b" folded", b"", b"Touches: runtime.f",
                b"Touches: not qualified", b"Probe: probes/x", b"Probe: ../up", b"Helpers: a.b, c",
                b"no colon here", b"---", b"Subject: =?utf-8?b?!!?=", b"Subject: =?utf-8?q?caf=C3=A9?=",
                b"\xff\xfe", b"Key: v\r", b"-- "]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.lists(st.one_of(st.sampled_from(HEADER_LINES), st.binary(max_size=30).filter(lambda b: b"\n" not in b)),
                     max_size=12),
       tail=st.sampled_from([DIFF, b"", b"---\n" + DIFF, b"just text\n"]))
def test_any_header_is_a_patch_or_an_error_naming_file_and_line(tmp_path, head, tail):
    data = b"\n".join(head) + (b"\n" if head else b"") + tail
    path = tmp_path / "x.patch"
    try:
        p = parse_patch_bytes(data, path=path, name="x")
    except PatchFormatError as exc:
        m = re.match(rf"^{re.escape(str(path))}:(\d+): ", exc.message)
        assert m, exc.message
        assert 1 <= int(m.group(1)) <= data.count(b"\n") + 1, exc.message
        assert "\n" not in exc.message  # one paragraph; any advice is in the hint
    else:
        assert p.touches and p.subject and p.diff.startswith((b"diff --git ", b"--- "))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.one_of(st.sampled_from([b"a.patch", b"b.patch", b"missing.patch", b"# c", b"",
                                                   b"a.patch # again", b"../a.patch", b"a b.patch", b"x.diff",
                                                   b"# release: go1.27.3", b"\xff.patch"]),
                                  st.binary(max_size=12).filter(lambda b: b"\n" not in b and b"\r" not in b)),
                        max_size=8))
def test_any_series_file_loads_or_names_its_line(tmp_path, entries):
    d = tmp_path / "go1.27"
    d.mkdir(exist_ok=True)
    ok = b"Subject: s\n\nTouches: runtime.f\n---\n" + DIFF
    (d / "a.patch").write_bytes(ok)
    (d / "b.patch").write_bytes(ok)
    (d / "series").write_bytes(b"\n".join(entries) + b"\n")
    try:
        patches = load_series(d)
    except PatchFormatError as exc:
        m = re.match(rf"^{re.escape(str(d / 'series'))}:(\d+): ", exc.message)
        assert m, exc.message
        assert 1 <= int(m.group(1)) <= len(entries)
    else:
        assert len({p.name for p in patches}) == len(patches)
