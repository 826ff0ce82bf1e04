"""Rendering a verify Report: a text summary for the terminal, JSON for CI, HTML for a person."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from .model import Report


def side_by_side(before: list[str], after: list[str], context: int = 3) -> list[dict[str, Any]]:
    """Rows for a two-column diff: {'kind': equal|replace|delete|insert|skip, 'left', 'right'}.
    Runs of unchanged lines longer than 2*context are folded into one 'skip' row."""
    rows: list[dict[str, Any]] = []
    sm = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            n = i2 - i1
            if n > 2 * context + 1:  # folding a single line would save nothing
                rows += [{"kind": "equal", "left": before[i1 + k], "right": after[j1 + k]} for k in range(context)]
                rows.append({"kind": "skip", "left": f"… {n - 2 * context} unchanged lines …", "right": ""})
                rows += [{"kind": "equal", "left": before[i2 - context + k], "right": after[j2 - context + k]}
                         for k in range(context)]
            else:
                rows += [{"kind": "equal", "left": before[i1 + k], "right": after[j1 + k]} for k in range(n)]
            continue
        left, right = before[i1:i2], after[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append({"kind": tag, "left": left[k] if k < len(left) else None,
                         "right": right[k] if k < len(right) else None})
    return rows


def to_json(report: Report) -> dict[str, Any]:
    return report.to_dict()


def to_json_all(reports: Sequence[Report]) -> dict[str, Any] | list[dict[str, Any]]:
    """`verify --json`: one target gives its report object (the shape scripts already read);
    several give a list of those objects in the order the targets were given, each naming its
    ``target`` and carrying its own ``passed``."""
    if len(reports) == 1:
        return to_json(reports[0])
    return [to_json(r) for r in reports]


def _diff_size(diff: list[str]) -> str:
    """'+3 -1': lines added and removed in a unified diff (its ---/+++ header lines excluded)."""
    plus = sum(1 for x in diff if x.startswith("+") and not x.startswith("+++"))
    minus = sum(1 for x in diff if x.startswith("-") and not x.startswith("---"))
    return f"+{plus} -{minus}"


def function_rows(report: Report) -> list[dict[str, str]]:
    """One row per function that changed (or that a patch claims): its machine code (asm layer)
    and its source (ast layer) against vanilla, merged by name, in name order."""
    rows: dict[str, dict[str, str]] = {}

    def row(name: str) -> dict[str, str]:
        return rows.setdefault(name, {"name": name, "asm": "", "ast": "", "claimed_by": "", "file": ""})

    for layer in report.layers:
        if layer.layer == "asm":
            for fn in layer.details.get("functions", []):
                r = row(fn["name"])
                size = f" {_diff_size(fn['diff'])}" if fn.get("diff") else ""
                r["asm"] = f"{fn['status']}{size}"
                r["claimed_by"] = ", ".join(fn.get("claimed_by") or [])
                r["file"] = r["file"] or fn.get("file", "")
        elif layer.layer == "ast":
            for pkg in layer.details.get("packages", []):
                for change in pkg.get("changed", []):
                    r = row(change["name"])
                    r["ast"] = change["kind"]
                    r["file"] = r["file"] or change.get("file", "")
    return [rows[name] for name in sorted(rows)]


def _body(report: Report, *, diffs: bool) -> list[str]:
    out = [f"gopatch verify: {report.version} for {report.target}",
           f"  toolchain {report.toolchain}", f"  vanilla   {report.vanilla}",
           f"  patches   {', '.join(report.patches) or '(none)'}", ""]
    width = max((len(layer.layer) for layer in report.layers), default=5)
    for layer in report.layers:
        out.append(f"  {layer.layer:<{width}}  {layer.status.upper():<4}  {layer.seconds:6.1f}s  {layer.summary}")
    rows = function_rows(report)
    if rows:
        # Columns sized to their widest cell: names such as net/http.(*Server).Serve vary a lot.
        cols = [("name", "function"), ("asm", "asm"), ("ast", "ast"), ("claimed_by", "claimed by"), ("file", "file")]
        widths = {key: max(len(title), *(len(r[key]) for r in rows)) for key, title in cols}
        def line(cells: dict[str, str]) -> str:
            return ("  " + "  ".join(f"{cells[key] or '-':<{widths[key]}}" for key, _ in cols)).rstrip()
        out += ["", line({key: title for key, title in cols}), *(line(r) for r in rows)]
        if not diffs and any(fn.get("diff") for x in report.layers if x.layer == "asm"
                             for fn in x.details.get("functions", [])):
            out.append("  (the assembly diffs: gopatch verify --diff, or the --html / --json report)")
    problems = [f"  {layer.layer}: {p}" for layer in report.layers for p in layer.problems]
    if problems:
        out += ["", "problems:", *problems]
    if diffs:
        for layer in report.layers:
            if layer.layer != "asm":
                continue
            for fn in layer.details.get("functions", []):
                if fn["diff"]:
                    out += ["", f"# {fn['name']} ({fn['status']})", *fn["diff"]]
    return out


def text(report: Report, *, diffs: bool = False) -> str:
    """What a person reads in the terminal: a line per layer, a line per changed function, the
    problems, the verdict last. ``diffs``: also every function's assembly diff (`--diff`); they
    run to thousands of lines for a real series, so by default they stay in the HTML and JSON."""
    return "\n".join([*_body(report, diffs=diffs), "", verdict_word(report.passed)])


def text_all(reports: Sequence[Report], *, diffs: bool = False) -> str:
    """Several targets: each report as ``text`` renders it, then one line per target and the
    verdict of them all (the worst) last. One report renders exactly as ``text``."""
    if len(reports) == 1:
        return text(reports[0], diffs=diffs)
    out: list[str] = []
    for r in reports:
        out += [*_body(r, diffs=diffs), ""]
    out += [f"{r.target}: {verdict_word(r.passed)}" for r in reports]
    out += ["", verdict_word(all(r.passed for r in reports))]
    return "\n".join(out)


def verdict_word(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def html(report: Report) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["side_by_side"] = side_by_side
    return env.get_template("verify.html.j2").render(report=report, layers={x.layer: x for x in report.layers})


def html_paths(path: Path, reports: Sequence[Report]) -> list[Path]:
    """Where `verify --html PATH` writes each report: PATH itself for one target; for several,
    verify.html -> verify.linux_amd64.html, verify.linux_arm64.html, ... (one page per target)."""
    if len(reports) == 1:
        return [path]
    return [path.with_name(f"{path.stem}.{r.target.replace('/', '_')}{path.suffix}") for r in reports]
