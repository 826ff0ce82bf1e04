"""Report rendering (text, JSON, HTML via the real jinja2 template) and the side-by-side diff."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from pipeline.atomic import write_file_atomic
from pipeline.verify import report
from pipeline.verify.model import LayerResult, Report


def sample() -> Report:
    r = Report(target="linux/amd64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3-gopatch.1",
               patches=["handoffp"])
    r.layers = [
        LayerResult(layer="version", status="pass", summary="ok", details={"facts": {"VERSION": "go1.27.3"}}),
        LayerResult(layer="asm", status="fail", summary="1 missing", problems=["patch handoffp: <runtime.handoffp> unchanged"],
                    details={"patches": [{"patch": "handoffp", "subject": "s", "touches": {"runtime.handoffp": "unchanged"}}],
                             "missing": {"handoffp": ["runtime.handoffp"]}, "unexpected": [], "undeclared": [],
                             "must_not_change": "other functions", "compared": 3,
                             "functions": [{"name": "runtime.handoffp", "file": "src/runtime/proc.go",
                                            "status": "changed", "claimed_by": ["handoffp"], "diff": ["-a", "+b"],
                                            "vanilla": ["PUSHQ\tBP", "MOVQ\tSP, BP"],
                                            "patched": ["PUSHQ\tBP", "LOCK", "MOVQ\tSP, BP"]}]}),
        LayerResult(layer="stability", status="skip", summary="not run"),
    ]
    return r


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.in_verdict = False
        self.cells: list[str] = []
        self._td = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("id", "verdict") in attrs:
            self.in_verdict = True
        self._td = self.in_verdict and tag == "td"

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_verdict = False
        if tag == "td":
            self._td = False

    def handle_data(self, data):
        if self._td and data.strip():
            self.cells.append(data.strip())


def test_html_has_the_verdict_table_and_escapes_text():
    page = report.html(sample())
    parser = _Cells()
    parser.feed(page)
    assert parser.cells[:2] == ["version", "PASS"] and "FAIL" in parser.cells and "SKIP" in parser.cells
    assert "&lt;runtime.handoffp&gt;" in page  # problems are escaped, never raw HTML
    assert '<tr class="insert"><td class="l"></td><td class="r">LOCK</td></tr>' in page


def test_json_round_trips_and_carries_the_overall_verdict():
    data = json.loads(json.dumps(report.to_json(sample())))
    assert data["passed"] is False
    assert [x["layer"] for x in data["layers"]] == ["version", "asm", "stability"]


def test_text_lists_verdicts_problems_and_diffs():
    out = report.text(sample())
    assert re.search(r"^  asm +FAIL ", out, re.M) and "patch handoffp" in out and "# runtime.handoffp (changed)" in out
    assert out.endswith("FAIL")


def test_side_by_side_folds_long_unchanged_runs():
    before = [f"I{i}" for i in range(20)]
    after = [*before[:10], "NEW", *before[10:]]
    rows = report.side_by_side(before, after, context=2)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("skip") == 2 and {"kind": "insert", "left": None, "right": "NEW"} in rows


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "r" / "verify.html"
    write_file_atomic(target, "one")
    write_file_atomic(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["verify.html"]
