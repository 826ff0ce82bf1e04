"""What every command shares: the global State, loading Options, printing results and errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..config import Options, Target, host_target, load_options, parse_targets
from ..errors import GopatchError, UsageError


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


def targets(
    target: Sequence[str],
    *,
    goos: Sequence[str] = (),
    goarch: Sequence[str] = (),
    all_: bool = False,
    configured: Iterable[Target] = (),
    command: str = "build",
) -> tuple[Target, ...]:
    """The targets a command's --target/-t (repeatable, each also a comma or space separated
    list), --goos/--goarch pairs and --all (the configured matrix) name, in that order, duplicates
    dropped; this machine's target when none is named. Every command with -t parses it here.

    A pair Go does not support is a UsageError (exit 2) with a "did you mean"."""
    if len(goos) != len(goarch):
        raise UsageError(f"--goos and --goarch come in pairs; got {len(goos)} --goos and {len(goarch)} --goarch.",
                         hint=f"gopatch {command} --goos linux --goarch arm64, or --target linux/arm64")
    words = [f"{o}/{a}" for o, a in zip(goos, goarch, strict=True)] + list(target)
    if all_:
        words += [str(t) for t in configured]
    if not words:
        return (host_target(),)
    try:
        return parse_targets(" ".join(words))
    except ValueError as exc:
        flags = "--target/--goos/--goarch" if goos or goarch else "--target"
        raise UsageError(f"{flags}: {exc}") from None


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
