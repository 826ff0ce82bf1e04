"""The `gopatch` console script and `python -m pipeline`.

The start-up signal handlers go in before anything heavy is imported (``pipeline.startup``), then
the CLI is imported and run. A module of its own so that ``startup`` imports nothing of gopatch
and ``cli`` (which calls ``startup.restore``) is imported by nobody it imports.
"""

from __future__ import annotations

from . import startup


def main() -> None:
    startup.install()
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
