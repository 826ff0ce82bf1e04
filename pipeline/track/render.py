"""The table for people: ``text`` (a terminal, with a legend) and ``markdown`` (a CI job summary).
JSON is ``Table.to_json``; HTML is pipeline/track/html.py, made from that JSON."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence

from ..patches.rebase import CLEAN, CONFLICT, OFFSET, PRESENT, HunkConflict
from .table import FUZZ, STATES, Cell, Table

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def cell_code(c: Cell) -> str:
    """The compact code of a cell (the legend explains it)."""
    if c.state == CLEAN:
        code = "ok"
    elif c.state == OFFSET:
        code = f"{c.offset:+d}"
    elif c.state == FUZZ:
        code = f"~{c.fuzz}"
    elif c.state == PRESENT:
        code = "in"
    else:
        code = "X"
    if c.probe is not None and c.probe.status in ("pass", "fail"):
        code += " P" if c.probe.status == "pass" else " F"
    return code if c.own else f"({code})"


LEGEND = ("ok clean   +N/-N offset: the hunk that moved most, by N lines   ~N fuzz: N context lines dropped   "
          "in already upstream (the reverse applies)   X conflict   P probe passed (patched PASS, vanilla PASS)   "
          "F probe failed   (..) another minor's series: shown, not counted")


def _abbrev(names: Sequence[str], width: int) -> list[str]:
    out = []
    for n in names:
        out.append(n if len(n) <= width else n[: width - 1] + ".")
    return out


def _wrap(text: str, width: int, indent: str = "") -> list[str]:

    return textwrap.wrap(text, width=max(width, 40), subsequent_indent=indent) or [""]


def text(table: Table, *, width: int | None = None) -> str:
    """The table for a terminal: rows are releases, one column group per series; it fits
    ``width`` (default: the terminal's) by narrowing the patch names, then the legend, the
    conflicts (each distinct one once, with the releases it is on), the probes and the verdict."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    rel_w = max([len(r) for r in table.releases] + [len("release")])
    groups = [(s.name, [p.name for p in s.patches]) for s in table.series]
    ncols = sum(len(p) for _, p in groups) or 1
    codes = [cell_code(c) for c in table.cells()]
    code_w = max([len(x) for x in codes] + [3])
    longest = max((len(p) for _, ps in groups for p in ps), default=5)
    gaps = len(groups) * 3  # before each group
    room = (width - rel_w - gaps) // ncols - 1
    col_w = max(code_w, min(longest, room), 4)
    out = _wrap(f"gopatch track: {len(table.rows)} release(s)"
                + (f" {table.releases[0]}..{table.releases[-1]}" if table.rows else "")
                + f", series {', '.join(s.name for s in table.series)}, probe {table.probe_mode}", width, "  ")
    head1 = f"{'':<{rel_w}}"
    head2 = f"{'release':<{rel_w}}"
    for name, patches in groups:
        span = len(patches) * (col_w + 1) - 1
        head1 += "   " + f"{name:<{span}}"
        head2 += "   " + " ".join(f"{n:<{col_w}}" for n in _abbrev(patches, col_w))
    out += [head1.rstrip(), head2.rstrip()]
    for r in table.rows:
        if r.status != "checked":
            out.append(f"{r.release:<{rel_w}}   unavailable: {r.reason}"[:max(width, 40)])
            continue
        line = f"{r.release:<{rel_w}}"
        for name, patches in groups:
            line += "   " + " ".join(f"{cell_code(r.cell(name, p)) if r.cell(name, p) else '?':<{col_w}}"
                                     for p in patches)
        out.append(line.rstrip())
    if any(len(p) > col_w for _, ps in groups for p in ps):
        pairs = {a: p for _, ps in groups for a, p in zip(_abbrev(ps, col_w), ps, strict=True) if a != p}
        out += _wrap("columns: " + ", ".join(f"{a} {p}" for a, p in pairs.items()), width, "  ")
    out += _wrap("legend: " + LEGEND, width, "  ")
    out += details(table)
    out.append(summary(table))
    return "\n".join(out)


def _grouped_conflicts(table: Table) -> list[tuple[str, str, list[str], list[HunkConflict]]]:
    """(series, patch, releases, conflicts) for each distinct counted conflict."""
    seen: dict[tuple[str, str, str], tuple[list[str], list[HunkConflict]]] = {}
    for c in table.cells():
        if c.own and c.state == CONFLICT:
            key = (c.series, c.patch, "\n".join(x.describe() for x in c.conflicts))
            seen.setdefault(key, ([], c.conflicts))[0].append(c.release)
    return [(s, p, rels, confl) for (s, p, _), (rels, confl) in seen.items()]


def _releases_text(rels: Sequence[str]) -> str:
    return ", ".join(rels) if len(rels) <= 4 else f"{rels[0]} .. {rels[-1]} ({len(rels)} releases)"


def details(table: Table) -> list[str]:
    out: list[str] = []
    for series, patch, rels, conflicts in _grouped_conflicts(table):
        out += ["", f"{series}/{patch} conflicts on {_releases_text(rels)}:"]
        out += ["  " + line for x in conflicts for line in x.describe().splitlines()]
    for r in table.rows:
        for p in r.probes:
            verdict = "PASS" if p.passed else "FAIL"
            out.append("")
            out.append(f"probe {p.series} on {r.release}: {verdict} in {p.seconds:.1f}s "
                       f"({len(p.patches)} patch(es), {len(p.files)} patched file(s) in src/)")
            for c in r.cells:
                if c.series == p.series and c.probe is not None and c.probe.status in ("pass", "fail"):
                    out.append(f"  {c.patch}: {c.probe.detail}")
            out += [f"  problem: {x}" for x in p.problems]
    return [x for i, x in enumerate(out) if x or (i + 1 < len(out) and out[i + 1])]


def summary(table: Table) -> str:
    n = table.counts()
    parts = [f"{n[s]} {s}" for s in STATES if n[s]]
    probes = f"; probes: {n['probes_run']} run, {n['probes_failed']} failed" if n["probes_run"] else ""
    unavailable = f"; {n['unavailable']} release(s) unavailable" if n["unavailable"] else ""
    verdict = "OK" if table.exit_code == 0 else "BROKEN" if not table.ok else "INCOMPLETE"
    s = table.seconds
    secs = (f" ({s.get('total', 0):.1f}s: download {s.get('download', 0):.1f}s, read {s.get('read', 0):.1f}s, "
            f"probe {s.get('probe', 0):.1f}s)") if s else ""
    return f"\n{verdict}: counted cells: {', '.join(parts) or 'none'}{probes}{unavailable}{secs}"


_MD_STATE = {CLEAN: "clean", OFFSET: "offset", FUZZ: "fuzz", PRESENT: "present", CONFLICT: "**CONFLICT**"}


def _md_cell(c: Cell | None) -> str:
    if c is None:
        return ""
    word = _MD_STATE[c.state]
    if c.state == OFFSET:
        word += f" {c.offset:+d}"
    elif c.state == FUZZ:
        word += f" {c.fuzz}"
    if c.probe is not None and c.probe.status in ("pass", "fail"):
        word += " · probe ✅" if c.probe.status == "pass" else " · probe ❌"
    return word if c.own else f"_({word.replace('**', '')})_"


def markdown(table: Table) -> str:
    """For a CI job summary ($GITHUB_STEP_SUMMARY): the verdict, the table, the conflicts in
    collapsible blocks, the probes."""
    verdict = ("✅ every release is covered" if table.exit_code == 0 else
               "❌ the series is broken on some release" if not table.ok else "⚠️ the table is incomplete")
    out = [f"## gopatch track: {verdict}", "",
           f"{len(table.rows)} release(s)" + (f" {table.releases[0]} … {table.releases[-1]}" if table.rows else "")
           + f", probe `{table.probe_mode}`. {summary(table).strip()}", ""]
    cols = [(s.name, p.name) for s in table.series for p in s.patches]
    out.append("| release | " + " | ".join(f"{s}/{p}" for s, p in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for r in table.rows:
        if r.status != "checked":
            out.append(f"| {r.release} | unavailable: {r.reason} |" + " |" * (len(cols) - 1))
            continue
        out.append(f"| {r.release} | " + " | ".join(_md_cell(r.cell(s, p)) for s, p in cols) + " |")
    out += ["", "_(italics)_: another minor's series, shown but not counted. offset ±N: the hunk that moved most; "
            "fuzz N: context lines dropped; present: already upstream."]
    for series, patch, rels, conflicts in _grouped_conflicts(table):
        out += ["", f"<details><summary>{series}/{patch} conflicts on {_releases_text(rels)}</summary>", "",
                "```", *[line for x in conflicts for line in x.describe().splitlines()], "```", "</details>"]
    probes = [(r, p) for r in table.rows for p in r.probes]
    if probes:
        out += ["", "| probe | release | verdict | seconds | problems |", "|---|---|---|---|---|"]
        out += [f"| {p.series} | {r.release} | {'PASS' if p.passed else '**FAIL**'} | {p.seconds:.1f} | "
                f"{'; '.join(p.problems).replace('|', '/') or '-'} |" for r, p in probes]
    return "\n".join(out) + "\n"
