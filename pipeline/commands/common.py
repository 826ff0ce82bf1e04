"""What every command shares: the global State, loading Options, printing results and errors."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..config import Options, load_options
from ..errors import GopatchError


@dataclass
class State:
    """Global flags given before the command name (gopatch --config X -v <command>)."""

    config: str | None = None
    verbose: bool = False


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def load(ctx: typer.Context, **overrides: tuple[Any, str] | None) -> Options:
    """Options for this command. ``overrides`` maps 'section__key' (dots are not valid keyword
    names) to (value, '--flag') for each flag the user gave; None values are dropped."""
    st = state(ctx)
    given = {name.replace("__", "."): v for name, v in overrides.items() if v is not None and v[0] is not None}
    return load_options(Path(st.config) if st.config else None, env=os.environ, overrides=given)


def flag(value: Any, spelling: str) -> tuple[Any, str] | None:
    """Helper: (value, '--flag') when the flag was given, else None."""
    return None if value is None else (value, spelling)


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on stdout when --json is given."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def info(message: str) -> None:
    """Progress and notices go to stderr so that stdout stays clean for --json and pipes."""
    typer.echo(message, err=True)


def print_error(exc: GopatchError) -> None:
    text = exc.render()
    prefix = "gopatch: error: "
    print(prefix + text.replace("\n", "\n" + " " * 4), file=sys.stderr)
