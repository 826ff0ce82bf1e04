"""Running a Go toolchain for verification with an environment that nothing on the host leaks into.

A user's GOFLAGS, GOAMD64, GOEXPERIMENT or go.work would change the compiled code of one side of a
comparison and not the other; so every GO* variable of the caller is dropped and the build-affecting
ones are set explicitly, identically for the vanilla and the patched toolchain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config import Target, host_target


def runs_here(goroot: Path) -> bool:
    """A GOROOT whose go command and tools are built for this machine (a cross artifact is not)."""
    return (goroot / "bin" / "go").is_file() and (goroot / "pkg" / "tool" / host_target().slug).is_dir()


def go_env(
    goroot: Path,
    *,
    cache_dir: Path,
    target: Target | None = None,
    extra: Sequence[tuple[str, str]] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update({
        "GOROOT": str(goroot),
        "PATH": f"{goroot / 'bin'}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
        "GOTOOLCHAIN": "local",  # never let go.mod switch to a downloaded toolchain
        "GOENV": "off",
        "GOWORK": "off",
        "GOFLAGS": "",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
        # One build cache for every toolchain is safe (keys include the compiler and the sources)
        # and it replays a cached compile's -S output, which makes a warm asm layer take seconds.
        "GOCACHE": str(cache_dir / "verify" / "gocache"),
        "GOPATH": str(cache_dir / "verify" / "gopath"),
        "HOME": base.get("HOME", str(cache_dir)),
    })
    if target is not None:
        env["GOOS"], env["GOARCH"] = target.goos, target.goarch
    env.update(dict(extra))
    return env
