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
    out = report.text(sample(), diffs=True)  # `verify --diff`
    assert re.search(r"^  asm +FAIL ", out, re.M) and "patch handoffp" in out and "# runtime.handoffp (changed)" in out
    assert out.endswith("FAIL")


def two_layer_sample() -> Report:
    """asm and ast both ran: a claimed function changed in both, an undeclared one only in its
    machine code (inlining), a claimed one unchanged, and one changed only in its source."""
    r = Report(target="linux/amd64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3-gopatch.2",
               patches=["handoffp", "startm"])
    fn = {"file": "src/runtime/proc.go", "vanilla": [], "patched": []}
    r.layers = [
        LayerResult(layer="asm", status="fail", summary="2 function(s) changed", seconds=12.34,
                    problems=["patch startm: runtime.startm has the same machine code as vanilla: ..."],
                    details={"functions": [
                        {**fn, "name": "runtime.handoffp", "status": "changed", "claimed_by": ["handoffp"],
                         "diff": ["--- vanilla/runtime.handoffp", "+++ patched/runtime.handoffp", "@@ -1,2 +1,3 @@",
                                  " PUSHQ BP", "+LOCK", "+XADDL", "-MOVQ SP, BP"]},
                        {**fn, "name": "runtime.schedule", "status": "undeclared", "claimed_by": [],
                         "diff": ["--- a", "+++ b", "@@ -1 +1 @@", "-CALL x", "+CALL y"]},
                        {**fn, "name": "runtime.startm", "status": "unchanged", "claimed_by": ["startm"], "diff": []},
                    ]}),
        LayerResult(layer="ast", status="pass", summary="2 function(s) changed in 1 package(s)", seconds=1.0,
                    details={"packages": [{"package": "runtime", "changed": [
                        {"name": "runtime.handoffp", "kind": "body", "file": "src/runtime/proc.go"},
                        {"name": "runtime.wakep", "kind": "signature", "file": "src/runtime/proc.go"}]}]}),
    ]
    return r


def test_terminal_text_is_a_line_per_layer_and_per_function_with_the_verdict_last():
    assert report.text(two_layer_sample()).splitlines() == [
        "gopatch verify: go1.27.3-gopatch.2 for linux/amd64",
        "  toolchain /t/go",
        "  vanilla   /v/go",
        "  patches   handoffp, startm",
        "",
        "  asm  FAIL    12.3s  2 function(s) changed",
        "  ast  PASS     1.0s  2 function(s) changed in 1 package(s)",
        "",
        "  function          asm               ast        claimed by  file",
        "  runtime.handoffp  changed +2 -1     body       handoffp    src/runtime/proc.go",
        "  runtime.schedule  undeclared +1 -1  -          -           src/runtime/proc.go",
        "  runtime.startm    unchanged         -          startm      src/runtime/proc.go",
        "  runtime.wakep     -                 signature  -           src/runtime/proc.go",
        "  (the assembly diffs: gopatch verify --diff, or the --html / --json report)",
        "",
        "problems:",
        "  asm: patch startm: runtime.startm has the same machine code as vanilla: ...",
        "",
        "FAIL",
    ]


def test_diff_adds_every_changed_functions_assembly_before_the_verdict():
    plain, full = report.text(two_layer_sample()), report.text(two_layer_sample(), diffs=True)
    assert "+LOCK" not in plain and "+XADDL" not in plain
    lines = full.splitlines()
    at = lines.index("# runtime.handoffp (changed)")
    assert lines[at + 1:at + 8] == ["--- vanilla/runtime.handoffp", "+++ patched/runtime.handoffp", "@@ -1,2 +1,3 @@",
                                    " PUSHQ BP", "+LOCK", "+XADDL", "-MOVQ SP, BP"]
    assert "# runtime.schedule (undeclared)" in lines and "# runtime.startm (unchanged)" not in lines
    assert lines[-1] == "FAIL" and "--diff" not in full  # no hint to ask for what is shown
    assert full.startswith(plain.rsplit("\nFAIL", 1)[0].replace(
        "\n  (the assembly diffs: gopatch verify --diff, or the --html / --json report)", ""))


def test_a_passing_report_without_functions_ends_in_pass():
    r = Report(target="linux/arm64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3", patches=[])
    r.layers = [LayerResult(layer="version", status="pass", summary="go1.27.3 for linux/arm64", seconds=0.25)]
    assert report.text(r).splitlines()[-3:] == ["  version  PASS     0.2s  go1.27.3 for linux/arm64", "", "PASS"]


def test_several_targets_end_with_one_line_each_and_the_worst_verdict():
    ok = Report(target="linux/arm64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3", patches=[])
    ok.layers = [LayerResult(layer="version", status="pass", summary="fine")]
    bad = two_layer_sample()
    out = report.text_all([ok, bad])
    assert out.splitlines()[-4:] == ["linux/arm64: PASS", "linux/amd64: FAIL", "", "FAIL"]
    assert out.count("gopatch verify: ") == 2 and "runtime.wakep" in out
    assert report.text_all([ok, ok]).endswith("\nPASS")
    assert report.text_all([bad]) == report.text(bad)  # one target: exactly the single report


def test_json_of_one_target_is_its_report_and_of_several_a_list():
    ok = Report(target="linux/arm64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3", patches=[])
    assert report.to_json_all([ok]) == report.to_json(ok)
    many = json.loads(json.dumps(report.to_json_all([ok, two_layer_sample()])))
    assert [(x["target"], x["passed"]) for x in many] == [("linux/arm64", True), ("linux/amd64", False)]


def test_html_paths_name_one_page_per_target(tmp_path):
    ok = Report(target="linux/arm64", toolchain="/t/go", vanilla="/v/go", version="go1.27.3", patches=[])
    assert report.html_paths(tmp_path / "verify.html", [ok]) == [tmp_path / "verify.html"]
    assert report.html_paths(tmp_path / "verify.html", [ok, two_layer_sample()]) == [
        tmp_path / "verify.linux_arm64.html", tmp_path / "verify.linux_amd64.html"]


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
