"""Rendering a verify Report: a text summary for the terminal, JSON for CI, HTML for a person."""

from __future__ import annotations

import difflib
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


def text(report: Report, *, diffs: bool = True) -> str:
    """What a person reads in the terminal: the verdict table, problems, per-function asm diffs."""
    out = [f"gopatch verify: {report.version} for {report.target}",
           f"  toolchain {report.toolchain}", f"  vanilla   {report.vanilla}",
           f"  patches   {', '.join(report.patches) or '(none)'}", ""]
    width = max((len(layer.layer) for layer in report.layers), default=5)
    for layer in report.layers:
        out.append(f"  {layer.layer:<{width}}  {layer.status.upper():<4}  {layer.seconds:6.1f}s  {layer.summary}")
    for layer in report.layers:
        for p in layer.problems:
            out.append(f"{layer.layer}: {p}")
    if diffs:
        for layer in report.layers:
            if layer.layer != "asm":
                continue
            for fn in layer.details.get("functions", []):
                if fn["diff"]:
                    out += ["", f"# {fn['name']} ({fn['status']})", *fn["diff"]]
    out += ["", "PASS" if report.passed else "FAIL"]
    return "\n".join(out)


def html(report: Report) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["side_by_side"] = side_by_side
    return env.get_template("verify.html.j2").render(report=report, layers={x.layer: x for x in report.layers})
