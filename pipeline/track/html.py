"""``gopatch track --html``: the release x patch table as one self-contained page.

The input is exactly what ``gopatch track --json`` prints (schema ``gopatch-track/1``, documented
in pipeline/track/__init__.py), so a page can be made again later from a saved JSON report. The page has
no script and no external resource (inline CSS only): it opens from a CI artifact as it is.
It holds the table (rows: releases; columns: the patches, grouped by series), a legend, every
conflicting hunk with the lines it expects and the lines at the closest place (identical conflicts
on several releases are shown once, naming the releases), every probe's verdict and facts, and
the time spent per release. Everything from the report is escaped (jinja2 autoescape): patch
hunks are Go source and may hold ``<``, ``&`` or anything else.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import jinja2

# state -> (code shown in the cell, CSS class, legend text)
STATES: dict[str, tuple[str, str]] = {
    "clean": ("ok", "every hunk fits at the line its header names"),
    "offset": ("±N", "every hunk fits; the one that moved most moved N lines"),
    "fuzz": ("~N", "fits only with N context lines dropped ([patches] fuzz)"),
    "present": ("in", "the change is already upstream (the patch's reverse applies)"),
    "conflict": ("X", "a hunk fits nowhere: see Conflicts below"),
}
PROBES: dict[str, tuple[str, str]] = {
    "pass": ("P", "probe passed: patched PASS and vanilla PASS"),
    "fail": ("F", "probe failed: see Probes below"),
}


def _id(*parts: str) -> str:
    """An HTML id from report names (which may hold any character)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts))


def _minor(release: str) -> str:
    return ".".join(release.split(".")[:2])


def _code(cell: dict[str, Any]) -> str:
    state = cell.get("state", "?")
    if state == "offset":
        code = f"{cell.get('offset', 0):+d}"
    elif state == "fuzz":
        code = f"~{cell.get('fuzz', 0)}"
    else:
        code = STATES.get(state, (state, ""))[0]
    probe = (cell.get("probe") or {}).get("status")
    if probe in PROBES:
        code += " " + PROBES[probe][0]
    return code


def _title(cell: dict[str, Any]) -> str:
    """The cell's tooltip: what the code abbreviates."""
    lines = [f"{cell.get('series')}/{cell.get('patch')} on {cell.get('release')}: {cell.get('state')}"
             + ("" if cell.get("own", True) else " (another minor's series: not counted)")]
    for m in cell.get("moves") or []:
        lines.append(f"{m.get('file')}: hunk {m.get('hunk')} at {m.get('offset', 0):+d} line(s)"
                     + (f" with fuzz {m['fuzz']}" if m.get("fuzz") else ""))
    for c in cell.get("conflicts") or []:
        lines.append(f"{c.get('file')}: " + (f"hunk {c['hunk']} " if c.get("hunk") else "") + str(c.get("reason", "")))
    probe = cell.get("probe")
    if probe:
        lines.append(f"probe: {probe.get('status')}" + (f": {probe['detail']}" if probe.get("detail") else ""))
    return "\n".join(lines)


def _diff_rows(expected: list[str], actual: list[str]) -> list[tuple[str, str]]:
    """The lines the hunk expects (-) against the release's lines at the closest place (+), as a
    line diff: where they differ is what a person adapting the patch needs to see."""
    rows: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, expected, actual, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [("same", f"  {x}") for x in expected[i1:i2]]
            continue
        rows += [("expected", f"- {x}") for x in expected[i1:i2]]
        rows += [("actual", f"+ {x}") for x in actual[j1:j2]]
    return rows


def _side_facts(side: dict[str, Any] | None) -> dict[str, str]:
    """A probe side's facts: its own JSON facts first, then the outcome."""
    if not side:
        return {}
    out = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (side.get("facts") or {}).items()}
    for key in ("ok", "exit", "error", "seconds", "cached"):
        if side.get(key) is not None:
            out[key] = str(side[key])
    return out


def _facts(probe: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(fact, patched value, vanilla value) rows: the two toolchains side by side."""
    patched, vanilla = _side_facts(probe.get("patched")), _side_facts(probe.get("vanilla"))
    keys = list(dict.fromkeys([*patched, *vanilla]))
    return [(k, patched.get(k, ""), vanilla.get(k, "")) for k in keys]


def view(report: dict[str, Any]) -> dict[str, Any]:
    """The report arranged for the template: columns, rows of cells, grouped conflicts, probes."""
    series = report.get("series") or []
    columns = [(s["name"], p) for s in series for p in s.get("patches", [])]
    groups = [{"name": s["name"], "span": len(s.get("patches", [])), "release": s.get("release")}
              for s in series if s.get("patches")]
    cells = {(c["release"], c["series"], c["patch"]): c for c in report.get("cells", [])}
    rows_by_release = {r["release"]: r for r in report.get("rows", [])}

    # Identical conflicts of one patch on several releases: one block naming every release.
    conflict_groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    anchors: dict[tuple[str, str, str], str] = {}
    for c in report.get("cells", []):
        if c.get("state") != "conflict" or not c.get("conflicts"):
            continue
        key = (c["series"], c["patch"], json.dumps(c["conflicts"], sort_keys=True))
        group = conflict_groups.get(key)
        if group is None:
            group = conflict_groups[key] = {
                "id": f"conflict-{len(conflict_groups) + 1}", "series": c["series"], "patch": c["patch"],
                "own": False, "releases": [],
                "hunks": [{**h, "rows": _diff_rows(list(h.get("expected") or []), list(h.get("actual") or []))}
                          for h in c["conflicts"]]}
        group["releases"].append(c["release"])
        group["own"] = group["own"] or bool(c.get("own", True))
        anchors[(c["release"], c["series"], c["patch"])] = group["id"]

    rows = []
    minor = None
    for name in report.get("releases", []):
        r = rows_by_release.get(name, {"release": name, "status": "checked"})
        secs = r.get("seconds") or {}
        row = {"release": name, "status": r.get("status", "checked"), "reason": r.get("reason"),
               "probed": bool(r.get("probed")), "own_series": r.get("own_series"), "source": r.get("source") or "",
               "time": ", ".join(f"{k} {v:.2f} s" for k, v in secs.items()),
               "total": f"{sum(secs.values()):.2f} s" if secs else "", "cells": [],
               "newminor": minor is not None and _minor(name) != minor}
        minor = _minor(name)
        for s, p in columns:
            c = cells.get((name, s, p))
            if c is None:
                row["cells"].append(None)
                continue
            probe = c.get("probe") or {}
            row["cells"].append({
                "code": _code(c), "state": c.get("state", "?"), "own": bool(c.get("own", True)),
                "probe": probe.get("status"), "title": _title(c), "anchor": anchors.get((name, s, p)),
                "probe_anchor": _id("probe", name, s, p) if probe.get("status") in PROBES else None})
        rows.append(row)

    probes = []
    for r in report.get("rows", []):
        for run in r.get("probes") or []:
            entry = {"release": r["release"], **run, "cells": []}
            for c in report.get("cells", []):
                p = c.get("probe")
                if c["release"] == r["release"] and c["series"] == run.get("series") and p:
                    entry["cells"].append({
                        "id": _id("probe", c["release"], c["series"], c["patch"]), "patch": c["patch"],
                        "status": p.get("status"), "detail": p.get("detail") or "", "probe": p.get("probe") or "",
                        "facts": _facts(p),
                        "stderr": [(side, (p.get(side) or {}).get("stderr") or "") for side in ("patched", "vanilla")
                                   if (p.get(side) or {}).get("stderr")]})
            probes.append(entry)

    exit_code = report.get("exit_code", report.get("exit", 0))
    verdict = {0: ("OK", "ok"), 1: ("BROKEN", "bad")}.get(exit_code, ("INCOMPLETE", "warn"))
    return {"report": report, "columns": columns, "groups": groups, "rows": rows,
            "conflicts": sorted(conflict_groups.values(), key=lambda g: (not g["own"], g["series"], g["patch"])),
            "probes": probes, "verdict": verdict, "exit_code": exit_code,
            "states": STATES, "probe_codes": PROBES, "counts": report.get("counts") or {},
            "seconds": report.get("seconds") or {}, "write": report.get("write") or []}


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page of a ``gopatch track --json`` report."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    return env.get_template("track.html.j2").render(**view(report))
