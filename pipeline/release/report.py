"""Rendering a release check: text for the terminal, JSON for CI, HTML (jinja2) for a person."""

from __future__ import annotations

import jinja2

from .check import CheckReport


def text(report: CheckReport) -> str:
    out = [f"gopatch release verify: {report.dir} ({report.version or 'no version'})"]
    width = max((len(c.file) for c in report.checks), default=10)
    for c in report.checks:
        out.append(f"  {'ok  ' if c.ok else 'FAIL'}  {c.name:12} {c.file:{width}}  {c.detail}")
    for r in report.rebuild:
        for d in r["differences"]:
            out.append(f"  rebuild differs: {r['archive']}: {d['member']}: {d['what']}")
    failed = [c for c in report.checks if not c.ok]
    out += ["", "PASS" if report.passed else f"FAIL ({len(failed)} check(s) failed)"]
    return "\n".join(out)


def html(report: CheckReport) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("pipeline", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("release.html.j2").render(report=report)
