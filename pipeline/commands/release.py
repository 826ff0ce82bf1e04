"""gopatch matrix, gopatch release, gopatch release verify, gopatch release gather, gopatch release serve."""

from __future__ import annotations

from pathlib import Path

import typer

from ..atomic import write_file_atomic
from ..build import matrix as matrix_mod
from ..errors import UsageError, VerificationFailed
from ..release import create, rebuild, signing
from ..release import report as report_mod
from ..release import serve as serve_mod
from ..release.check import check_release, series_dir_of
from ..release.checksums import MANIFEST
from . import common


def _sign_key(value: str | None, configured: Path | None) -> Path | None:
    key = Path(value) if value else configured
    if key is not None and not key.is_file():
        raise UsageError(f"sign key {key} does not exist ({'--sign-key' if value else '[release] sign_key'}).")
    return key


def register(app: typer.Typer) -> None:
    @app.command("matrix")
    def matrix(
        ctx: typer.Context,
        fmt: str = typer.Option("github", "--format", "-f", help=f"One of: {', '.join(matrix_mod.FORMATS)}."),
        target: list[str] = typer.Option(None, "--target", "-t", metavar="GOOS/GOARCH",
                                         help="Override [build] targets (repeatable, or a comma-separated list)."),
    ) -> None:
        """Print the build matrix for CI, one entry per GOOS/GOARCH target.

        Example (GitHub Actions): echo "matrix=$(gopatch matrix --format github)" >> "$GITHUB_OUTPUT",
        then `strategy: {matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}}`.
        """
        if fmt not in matrix_mod.FORMATS:
            raise UsageError(f"--format {fmt!r} is not one of: {', '.join(matrix_mod.FORMATS)}.")
        override = None
        if target:  # parsed as every -t is; the canonical list then overrides [build] targets
            override = common.flag(" ".join(map(str, common.targets(target, command="matrix"))), "--target")
        opts = common.load(ctx, build__targets=override)
        typer.echo(matrix_mod.render(opts.build.targets, fmt))

    # No help= here: the callback's docstring is the help of `gopatch release`.
    release_app = typer.Typer(rich_markup_mode=None, invoke_without_command=True)
    app.add_typer(release_app, name="release")

    @release_app.callback()
    def release(
        ctx: typer.Context,
        target: list[str] = typer.Option([], "--target", "-t", metavar="GOOS/GOARCH",
                                         help="Target to release (repeatable, or a comma-separated list). Default: this machine's."),
        all_: bool = typer.Option(False, "--all", help="Release the configured matrix ([build] targets)."),
        out: str = typer.Option(None, "--out", "-o", metavar="DIR", help="Release directory. Default: [release] out."),
        series: str = typer.Option(None, "--series", metavar="DIR", help="Patch series the checkout was patched from."),
        force: bool = typer.Option(False, "--force", help="Replace a directory that holds another release."),
        skip_verify: bool = typer.Option(False, "--skip-verify",
                                         help="Release without a passing `gopatch verify` (recorded in the manifest)."),
        sign_key: str = typer.Option(None, "--sign-key", metavar="PATH",
                                     help="SSH private key: sign SHA256SUMS (ssh-keygen -Y sign). Default: [release] sign_key."),
        image: bool = typer.Option(None, "--image/--no-image",
                                   help="Also write an OCI image tarball per linux target. Default: [release] image."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check everything and print what would be published."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Publish the built, verified toolchains of the checkout's HEAD into one directory.

        Per target the `make.bash -distpack` archive the build already made (upstream's names:
        <version>.<goos>-<goarch>.tar.gz, .zip for windows), copied byte for byte, plus
        <version>.src.tar.gz; per archive a .sha256 and an in-toto/SLSA provenance statement
        (.intoto.json); proxy/golang.org/toolchain/@v/ with each target's golang.org/toolchain
        module (a GOPROXY for GOTOOLCHAIN=<version>); with --image an OCI image tarball per
        linux target (<archive>.oci.tar, `docker load` takes it); manifest.json (source, patches with sha256, bootstrap, builder, env,
        archives, verify summary); SHA256SUMS over all of it (`sha256sum -c SHA256SUMS`), and
        SHA256SUMS.sig with --sign-key. Release never builds: run `gopatch build` and
        `gopatch verify` for each target first. The directory appears complete or not at all,
        and never mixes two releases (--force replaces one).

        Exit 0 on success, 1 when a target is not verified, 2 for bad flags, 3 when a build is missing.

        Examples:

          gopatch release                                   # this machine's target, into dist/

          gopatch release --target linux/amd64 --target linux/arm64 --out dist --sign-key ~/.ssh/id_ed25519

          gopatch release --image && docker load -i dist/<version>.linux-amd64.oci.tar

          gopatch release verify dist --rebuild --html rebuild.html
        """
        if ctx.invoked_subcommand is not None:
            return
        opts = common.load(ctx, patches__series=common.flag(series, "--series"),
                           release__image=common.flag(image, "--image" if image else "--no-image"))
        targets = common.targets(target, all_=all_, configured=opts.build.targets, command="release")
        dest = Path(out) if out else opts.release.out
        result = create.release(opts, targets=targets, out=dest, force=force, skip_verify=skip_verify,
                                sign_key=_sign_key(sign_key, opts.release.sign_key), dry_run=dry_run,
                                image=opts.release.image, log=common.info)
        _print(result, as_json)

    @release_app.command("verify")
    def release_verify(
        ctx: typer.Context,
        dir: Path = typer.Argument(..., metavar="DIR", help="A release directory made by `gopatch release`."),
        rebuild_: bool = typer.Option(False, "--rebuild", help="Rebuild every archive from the manifest's inputs and "
                                                                "compare bit for bit (takes a make.bash)."),
        executor: str = typer.Option(None, "--executor", metavar="auto|docker|host", help="Where the rebuild runs."),
        cache: str = typer.Option(None, "--cache", metavar="DIR",
                                  help="Build cache for the rebuild (default: a fresh temporary one)."),
        series: str = typer.Option(None, "--series", metavar="DIR",
                                   help="Series directory with the patch files (default: [patches] dir/<manifest series>)."),
        public_key: str = typer.Option(None, "--public-key", metavar="FILE",
                                       help="Require a signature by this SSH public key."),
        keep: bool = typer.Option(False, "--keep", help="Keep the rebuild's work directory."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
        html_out: str = typer.Option(None, "--html", metavar="PATH", help="Also write an HTML report here."),
    ) -> None:
        """Check a release directory: checksums, manifest, provenance, patch files, signature.

        Every file must be listed in SHA256SUMS with its digest; the manifest's archives must be
        exactly those its version and targets imply, with their sizes and digests; each
        provenance statement must be the one the manifest implies; every patch the manifest
        names must exist in the series with the same sha256. --rebuild then checks the source out
        again, applies the same patches, builds every target in a separate cache and compares
        each archive with the published one, member by member.

        Exit 0 when every check passes, 1 when one fails (the report names the file and the check).

        Examples: gopatch release verify dist; gopatch release verify dist --rebuild --executor host --json
        """
        opts = common.load(ctx, build__executor=common.flag(executor, "--executor"))
        series_dir, why = (Path(series), "") if series else series_dir_of(dir, opts.patches.dir)
        if series_dir is None:
            common.info(f"release verify: the patch files are not checked{' and --rebuild is skipped' if rebuild_ else ''}: {why}")
        pub = None
        if public_key:
            try:
                pub = Path(public_key).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise UsageError(f"--public-key {public_key}: {e.strerror}.") from None
        result = check_release(dir, series_dir=series_dir, public_key=pub)
        if rebuild_ and series_dir is not None and (dir / MANIFEST).is_file():
            rebuild.rebuild(dir, opts, result, series_dir=series_dir, executor=executor,
                            cache=Path(cache) if cache else None, keep=keep, log=common.info)
        if html_out:
            write_file_atomic(Path(html_out), report_mod.html(result))
            common.info(f"release verify: HTML report written to {html_out}")
        if as_json:
            common.emit_json(result.to_json())
        else:
            typer.echo(report_mod.text(result))
        if not result.passed:
            bad = [f"{c.file} ({c.name})" for c in result.checks if not c.ok]
            raise VerificationFailed(f"release {dir} failed {len(bad)} check(s): {', '.join(bad[:8])}"
                                     + (" …" if len(bad) > 8 else "") + ".")

    @release_app.command("gather")
    def release_gather(
        ctx: typer.Context,
        dirs: list[Path] = typer.Argument(..., metavar="DIR...", help="Per-target release directories (searched recursively)."),
        out: str = typer.Option(None, "--out", "-o", metavar="DIR", help="Release directory. Default: [release] out."),
        force: bool = typer.Option(False, "--force", help="Replace a directory that holds another release."),
        sign_key: str = typer.Option(None, "--sign-key", metavar="PATH", help="SSH private key to sign SHA256SUMS."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Merge per-target releases (one per CI runner) into one release directory.

        Each part must pass `release verify` by itself and all parts must be of the same release
        (version, source, patches, bootstrap); the merged manifest lists every target, and
        SHA256SUMS and the provenance are written anew over the merged set.

        Example: gopatch release gather parts/ --out dist
        """
        opts = common.load(ctx)
        result = create.gather(dirs, out=Path(out) if out else opts.release.out, force=force,
                               sign_key=_sign_key(sign_key, opts.release.sign_key), log=common.info)
        _print(result, as_json)


    @release_app.command("serve")
    def release_serve(
        dir: Path = typer.Argument(..., metavar="DIR", help="A release directory made by `gopatch release`."),
        addr: str = typer.Option("127.0.0.1:8080", "--addr", metavar="HOST:PORT",
                                 help="Where to listen (port 0 = any free port)."),
    ) -> None:
        """Serve a release directory over plain HTTP (files only, until Ctrl-C).

        Prints the GOPROXY value (http://HOST:PORT/proxy) once it listens. The go command takes a
        toolchain module over HTTP only when a checksum database (GOSUMDB) vouches for it; without
        one, use the release's proxy/ as GOPROXY=file:///…/proxy with GONOSUMDB=golang.org/toolchain
        (README: "Use the patched toolchain from any Go").

        Example: gopatch release serve dist --addr 127.0.0.1:8080
        """
        serve_mod.serve(dir, addr=addr, log=common.info)


def _print(result: create.ReleaseResult, as_json: bool) -> None:
    if as_json:
        common.emit_json(result.to_json())
        return
    data = result.to_json()
    head = "would publish" if result.dry_run else "published"
    typer.echo(f"release {result.version}: {head} {result.out} ({result.seconds:.1f}s)")
    for a in data["archives"]:
        typer.echo(f"  {a['name']:55} {a['size'] / 1e6:8.1f} MB  {a['sha256']}")
    for mod in data["modules"]:
        typer.echo(f"  proxy: golang.org/toolchain@{mod['version']}  {mod['h1']}")
    for img in data["images"]:
        typer.echo(f"  image: {img['file']}  {img['ref']}@{img['manifest_digest']}")
    if result.manifest.skip_verify:
        typer.echo("  WARNING: released with --skip-verify (recorded in manifest.json)")
    if result.manifest.signing:
        typer.echo(f"  signed by {result.manifest.signing['fingerprint']} ({signing.NAMESPACE})")
    if not result.dry_run:
        typer.echo(f"check it: (cd {result.out} && sha256sum -c SHA256SUMS) && gopatch release verify {result.out}")
