"""gopatch build, gopatch cache ls, gopatch cache prune."""

from __future__ import annotations

import typer

from ..build import run as build_stage
from ..build.artifacts import ArtifactStore
from ..errors import UsageError
from ..progress import make_progress
from . import common


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        ctx: typer.Context,
        goos: list[str] = typer.Option([], "--goos", metavar="GOOS", help="Target OS; pair with --goarch (repeatable)."),
        goarch: list[str] = typer.Option([], "--goarch", metavar="GOARCH", help="Target architecture (repeatable)."),
        target: list[str] = typer.Option([], "--target", "-t", metavar="GOOS/GOARCH", help="Target such as linux/arm64 (repeatable; or a comma-separated list)."),
        all_: bool = typer.Option(False, "--all", help="Build the configured matrix ([build] targets)."),
        executor: str = typer.Option(None, "--executor", metavar="auto|docker|host", help="Where make.bash runs. Default: [build] executor."),
        jobs: str = typer.Option(None, "--jobs", "-j", metavar="N", help="Targets built in parallel. Default: [build] jobs."),
        bootstrap: str = typer.Option(None, "--bootstrap", metavar="VERSION|GOROOT|auto", help="Bootstrap Go. Default: [bootstrap] go."),
        dir: str = typer.Option(None, "--dir", metavar="DIR", help="The Go tree to build. Default: [source] dir."),
        force: bool = typer.Option(False, "--force", help="Build the committed HEAD even if the tree has uncommitted changes."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list of results on stdout; progress stays on stderr."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Resolve everything (bootstrap, builder image, cache keys) and print "
                                     "the steps each target would run; run none of them."),
    ) -> None:
        """Build the committed HEAD of the Go tree into a stamped toolchain per target.

        The host target gets one full `make.bash -distpack` with the bootstrap Go; every further
        target is produced from it (cross-compiling the ten distributed commands, then
        `go tool distpack`), at about a quarter of a make.bash each. Results land in
        out/<version>/<goos>_<goarch>/go (a GOROOT for that target) with build.json, build.log and
        the distpack archives. Builds are cached by content: the same tree, bootstrap, target,
        settings and executor do no work the second time. Default target: this machine.
        Use the global --verbose (gopatch -v build) to print each step's exact environment.

        Examples:

          gopatch build                                     # this machine's target

          gopatch build --goos linux --goarch arm64 --target windows/amd64 --jobs 2

          gopatch build --all --executor docker --json

          gopatch build --all --dry-run                     # the plan, the keys, what is cached
        """
        st = common.state(ctx)
        opts = common.load(
            ctx,
            build__executor=common.flag(executor, "--executor"),
            build__jobs=common.flag(jobs, "--jobs"),
            bootstrap__go=common.flag(bootstrap, "--bootstrap"),
            source__dir=common.flag(dir, "--dir"),
        )
        targets = common.targets(target, goos=goos, goarch=goarch, all_=all_, configured=opts.build.targets)
        if dry_run:
            planned = build_stage.build_from_options(opts, targets=targets, force=force, log=common.info,
                                                     verbose=st.verbose, dry_run=True)
            if as_json:
                common.emit_json([p.to_json() for p in planned])
                return
            for p in planned:
                typer.echo(f"{p.target}: {'cached' if p.cached else 'would build'} -> {p.out / 'go'} (key {p.key[:16]})")
                for step in p.plan.steps:
                    typer.echo(f"    {step.name}: {' '.join(step.argv)}")
            return
        progress = make_progress(plain=as_json or st.verbose, write=common.info)
        with progress:
            results = build_stage.build_from_options(opts, targets=targets, force=force, log=common.info,
                                                     progress=progress, verbose=st.verbose)
        if as_json:
            common.emit_json([r.to_json() for r in results])
            return
        for r in results:
            how = "cached" if r.cached else f"built in {r.seconds:.0f}s"
            typer.echo(f"{r.target}: {r.out / 'go'} ({r.artifact.version}, {how})")

    cache_app = typer.Typer(help="Inspect and prune the content-addressed cache of built toolchains.", rich_markup_mode=None,
                            no_args_is_help=True)
    app.add_typer(cache_app, name="cache")

    @cache_app.command("ls")
    def cache_ls(ctx: typer.Context,
                 as_json: bool = typer.Option(False, "--json", help="JSON list on stdout.")) -> None:
        """List built toolchains in the cache, newest first.

        Example: gopatch cache ls --json
        """
        opts = common.load(ctx)
        entries = ArtifactStore(opts.cache.dir).entries()
        rows = [{"key": a.key, "version": a.version, "target": a.target, "path": str(a.path),
                 "created": a.record.created, "executor": a.record.executor.get("executor", "")}
                for a in entries]
        if as_json:
            common.emit_json(rows)
            return
        if not rows:
            common.info(f"no built toolchains in {ArtifactStore(opts.cache.dir).root}")
        for r in rows:
            typer.echo(f"{r['key'][:16]}  {r['created']}  {r['target']:<14} {r['version']:<34} {r['executor']}")

    @cache_app.command("prune")
    def cache_prune(
        ctx: typer.Context,
        all_: bool = typer.Option(False, "--all", help="Delete every built toolchain."),
        keep: int = typer.Option(None, "--keep", min=0, metavar="N", help="Keep the N newest, delete the rest."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be deleted."),
        as_json: bool = typer.Option(False, "--json", help="JSON list of (would-be) deleted entries on stdout."),
    ) -> None:
        """Delete built toolchains from the cache (out/ copies stay); entries of an older gopatch always go.

        Examples: gopatch cache prune --keep 4 --dry-run; gopatch cache prune --all
        """
        if all_ == (keep is not None):
            raise UsageError("say what to prune: --all, or --keep N (the N newest stay).")
        opts = common.load(ctx)
        store = ArtifactStore(opts.cache.dir)
        doomed = store.prune_candidates(keep=None if all_ else keep)
        for a in doomed:
            if not dry_run:
                store.remove(a)
            common.info(f"{'would delete' if dry_run else 'deleted'} {a.path} ({a.target} {a.version})")
        outdated = store.outdated()
        for path in outdated:
            if not dry_run:
                store.remove(path)
            common.info(f"{'would delete' if dry_run else 'deleted'} {path} (built by an older gopatch, never used)")
        if as_json:
            common.emit_json([{"key": a.key, "target": a.target, "version": a.version, "path": str(a.path),
                               "deleted": not dry_run} for a in doomed]
                             + [{"key": p.name, "target": "?", "version": "?", "path": str(p), "deleted": not dry_run}
                                for p in outdated])
