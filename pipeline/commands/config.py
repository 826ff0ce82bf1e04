"""gopatch config show: every effective setting and where it came from."""

from __future__ import annotations

import typer

from ..config import describe
from . import common


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True,
                            rich_markup_mode=None)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def show(
        ctx: typer.Context,
        json_out: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    ) -> None:
        """Print every setting's effective value and its origin (flag, env, build.cfg:LINE or default).

        Precedence: command-line flag > GOPATCH_<SECTION>_<KEY> environment variable > build.cfg >
        built-in default.
        """
        opts = common.load(ctx)
        rows = describe(opts)
        if json_out:
            common.emit_json({
                "config_file": str(opts.config_file) if opts.config_file else None,
                "settings": {r["name"]: {"value": r["value"], "origin": r["origin"], "env": r["env"]} for r in rows},
            })
            return
        typer.echo(f"# config file: {opts.config_file or '(none: built-in defaults)'}")
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            typer.echo(f"{r['name']:<{width}} = {r['value']}    # {r['origin']}")
