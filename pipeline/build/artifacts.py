"""The content-addressed store of built toolchains, and their copies in ``out/``.

Layout (``<cache>`` = ``[cache] dir``)::

    <cache>/builds/<key>/            one complete artifact, never modified once there
        go/                          the target's GOROOT (its distpack archive, extracted)
        distpack/                    make.bash -distpack / go tool distpack archives, kept for release
        build.json                   inputs, environment, steps, durations, hashes, executor
        build.log                    everything make.bash and the cross steps printed
    <cache>/builds/.tmp/<key16>-*/   work in progress: a build tree, then the artifact being assembled
    <cache>/builds/.locks/<key>.lock one flock per key: one build of a key at a time
    <cache>/builds/logs/             logs of failed builds (their work trees are deleted)

An artifact appears by one ``rename`` of a finished directory, so after a crash or kill -9 at any
moment ``builds/`` holds only complete artifacts; the leftovers in ``.tmp`` are removed by the
next build of the same key (which holds that key's lock, so nobody is using them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..atomic import staging_dir, swap_dir
from ..locking import file_lock
from ..process import kill_processes_in
from ..records import BUILD_JSON, BuildRecord

BUILD_LOG = "build.log"


@dataclass(frozen=True, kw_only=True)
class Artifact:
    key: str
    path: Path  # <cache>/builds/<key>
    record: BuildRecord  # its build.json

    @property
    def goroot(self) -> Path:
        return self.path / "go"

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def target(self) -> str:
        return self.record.target

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())


class ArtifactStore:
    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "builds"

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Artifact | None:
        """The complete artifact of ``key``, or None. A directory there is complete by construction;
        one whose build.json an older gopatch wrote is a miss (``BuildRecord.load_cached`` says why)."""
        path = self.path(key)
        record = BuildRecord.load_cached(path / BUILD_JSON)
        return None if record is None else Artifact(key=key, path=path, record=record)

    @contextlib.contextmanager
    def lock(self, key: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        with file_lock(self.root / ".locks" / f"{key}.lock", on_wait=on_wait):
            yield

    def workdir(self, key: str) -> Path:
        """A fresh work directory for ``key``; call with the key's lock held.

        Leftovers of an earlier build of the same key (killed, crashed) are removed first: the
        lock proves that no gopatch is using them. Its steps may still be running, though: a
        host step runs in a session of its own (so that it can be stopped as a group), and a
        gopatch killed with -9 cannot take it along. Such orphans go on compiling into the
        directory, and Go's tools recreate $HOME/.config under it after it was removed. So
        they are stopped first.
        """
        tmp = self.root / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for old in tmp.glob(f"{key[:16]}-*"):
            kill_processes_in(old)
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{key[:16]}-", dir=tmp))

    def publish(self, staged: Path, key: str) -> Artifact:
        """Move the finished artifact directory ``staged`` into place with one rename."""
        dest = self.path(key)
        if self.get(key) is not None:  # the same key built elsewhere meanwhile: content-addressed, keep it
            shutil.rmtree(staged, ignore_errors=True)
        else:  # absent, or an entry an older gopatch left (a miss): replaced
            swap_dir(staged, dest)
        artifact = self.get(key)
        assert artifact is not None, f"{dest} has no {BUILD_JSON}"
        return artifact

    def failed_log(self, key: str, log: Path) -> Path:
        """Keep the log of a failed build where the user can read it after the work tree is gone."""
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        dest = logs / f"{time.strftime('%Y%m%dT%H%M%S')}-{key[:16]}.log"
        shutil.copyfile(log, dest)
        return dest

    def entries(self) -> list[Artifact]:
        """Every complete artifact, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or path.name == "logs" or not path.is_dir():
                continue
            artifact = self.get(path.name)
            if artifact is not None:
                found.append(artifact)
        return sorted(found, key=lambda a: (a.path / BUILD_JSON).stat().st_mtime, reverse=True)

    def prune_candidates(self, *, keep: int | None) -> list[Artifact]:
        """What ``prune`` would delete: everything (keep=None) or all but the newest ``keep``."""
        entries = self.entries()
        return entries if keep is None else entries[keep:]

    def outdated(self) -> list[Path]:
        """Entries whose build.json an older gopatch wrote: never used by this one (a cache miss,
        see ``BuildRecord.load_cached``), so ``prune`` deletes them with the rest."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if not p.name.startswith(".") and p.name != "logs" and (p / BUILD_JSON).is_file()
                      and self.get(p.name) is None)

    def remove(self, artifact: Artifact | Path) -> None:
        """Delete one entry: renamed out of sight first, so no reader sees it half-deleted."""
        path = artifact.path if isinstance(artifact, Artifact) else Path(artifact)
        doomed = self.root / ".tmp" / f"prune-{path.name[:16]}-{os.getpid()}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        with self.lock(path.name):
            if not path.exists():
                return
            os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard links make out/ free in time and space; a copy where links cannot cross file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def materialize(artifact: Artifact, dest: Path) -> bool:
    """Make ``dest`` (out/<version>/<goos>_<goarch>) hold ``artifact``; False if it already does.

    The copy is assembled beside ``dest`` and renamed into place, so ``dest`` is always either the
    old complete artifact or the new one (a hidden ``.<name>.*`` leftover after a crash is cleaned
    up on the next run).
    """
    current = BuildRecord.load_cached(dest / BUILD_JSON)
    if current is not None and current.key == artifact.key:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    staged = staging_dir(dest)
    try:
        shutil.copytree(artifact.path, staged, symlinks=True, copy_function=_link_or_copy, dirs_exist_ok=True)
        swap_dir(staged, dest)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return True
