"""gopatch matrix (and, later, gopatch release)."""

from __future__ import annotations

import typer

from .. import matrix as matrix_mod
from ..errors import UsageError
from . import common


def register(app: typer.Typer) -> None:
    @app.command("matrix")
    def matrix(
        ctx: typer.Context,
        fmt: str = typer.Option("github", "--format", "-f", help=f"One of: {', '.join(matrix_mod.FORMATS)}."),
        target: list[str] = typer.Option(None, "--target", "-t", metavar="GOOS/GOARCH",
                                         help="Override [build] targets (repeatable)."),
    ) -> None:
        """Print the build matrix for CI, one entry per GOOS/GOARCH target.

        Example (GitHub Actions): echo "matrix=$(gopatch matrix --format github)" >> "$GITHUB_OUTPUT",
        then `strategy: {matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}}`.
        """
        if fmt not in matrix_mod.FORMATS:
            raise UsageError(f"--format {fmt!r} is not one of: {', '.join(matrix_mod.FORMATS)}.")
        override = common.flag(" ".join(target), "--target") if target else None
        opts = common.load(ctx, build__targets=override)
        typer.echo(matrix_mod.render(opts.build.targets, fmt))

