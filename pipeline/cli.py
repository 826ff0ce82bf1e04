"""The typer app: parse flags, build Options, call a stage, render results, map errors to exit codes.

No pipeline logic lives here or in ``pipeline/commands/``: those modules translate between the
command line and the stage functions. ``main`` is the only place that catches ``GopatchError``.
"""

from __future__ import annotations

import sys

from . import startup

if __name__ == "__main__":  # python -m pipeline.cli (the console script enters via startup.main)
    startup.install()

# The heavy imports come after the start-up signal handlers, on purpose.
import typer

from . import __version__
from .commands import build as build_cmds
from .commands import common
from .commands import config as config_cmds
from .commands import patch as patch_cmds
from .commands import rebase as rebase_cmds
from .commands import release as release_cmds
from .commands import source as source_cmds
from .commands import track as track_cmds
from .commands import tryout as try_cmds
from .commands import verify as verify_cmds
from .errors import GopatchError

EXIT_CODES_HELP = """\
Exit codes: 0 success; 1 a patch does not apply, a build or a verification failed;
2 usage or configuration error; 3 environment problem (missing tool, source, daemon or tree).
"""

app = typer.Typer(
    name="gopatch",
    help=(
        "Build, verify and release a patched Go toolchain.\n\n"
        "Typical flow: gopatch checkout -> gopatch apply --all -> gopatch build -> gopatch verify "
        "-> gopatch release. Settings come from build.cfg, GOPATCH_<SECTION>_<KEY> variables and "
        "flags (flags win); `gopatch config show` prints each effective value and its origin.\n\n"
        + EXIT_CODES_HELP
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    # Help texts name config settings as "[build] executor"; rich markup would eat the brackets.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"gopatch {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: str = typer.Option(
        None, "--config", "-c", metavar="PATH",
        help="build.cfg to read (default: $GOPATCH_CONFIG, else the nearest build.cfg at or above the current directory).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Echo every command and environment gopatch uses."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print gopatch's version and exit."),
) -> None:
    ctx.obj = common.State(config=config, verbose=verbose)


config_cmds.register(app)
source_cmds.register(app)
patch_cmds.register(app)
try_cmds.register(app)
rebase_cmds.register(app)
track_cmds.register(app)
build_cmds.register(app)
verify_cmds.register(app)
release_cmds.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one place that turns GopatchError into an exit code."""
    startup.restore()
    try:
        app(args=argv, prog_name="gopatch", standalone_mode=True)
    except GopatchError as exc:
        common.print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        common.print_error(GopatchError("interrupted; nothing was left half-written."))
        sys.exit(130)


if __name__ == "__main__":
    main()
