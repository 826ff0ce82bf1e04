"""Atomic writes: a file, and a directory swapped into place, so a reader sees all or nothing.

A module of its own (not part of ``pipeline.records``) because the writers are in every stage:
source/ (the checkout's tree), tryout/ (patched files), verify/ (its vanilla cache, reports) and
release/ as well as the records. Importing the whole stage contract for a file write would make
``source`` depend on ``records``, which depends on the later stages' shapes.

Both work by building next to the destination (same directory, so the same file system) and
one ``os.replace``, which POSIX makes atomic. A crash leaves at most a hidden ``.<name>.*``
sibling; :func:`swap_dir` removes such leftovers of earlier runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def write_file_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write ``data`` (str: UTF-8) to ``path`` through a temporary sibling and a rename.

    ``mode``: the file's permission bits; default 0o666 minus the umask, as ``open()`` would give
    (mkstemp creates 0600, and a report or record is for others to read too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, _umask_mode(0o666) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def staging_dir(dest: Path, tag: str = "new") -> Path:
    """A fresh hidden directory beside ``dest`` (``.<name>.<tag>-*``) to assemble it in; leftovers
    of earlier runs with the same tag are removed first (call with whatever lock guards ``dest``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.{tag}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}-", dir=dest.parent))


def swap_dir(staged: Path, dest: Path) -> None:
    """Put the finished directory ``staged`` (a sibling of ``dest``) in the place of ``dest``.

    ``dest`` is at every moment either the old complete directory or the new one, except for the
    instant between two renames, when it is absent (POSIX cannot exchange two directories in one
    call); if the second rename fails the old one is put back. The old directory is deleted last.
    """
    staged, dest = Path(staged), Path(dest)
    if not dest.exists():
        os.replace(staged, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.replace(dest, old / "previous")
    try:
        os.replace(staged, dest)
    except BaseException:
        if not dest.exists():
            os.replace(old / "previous", dest)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build_dir_atomic(dest: Path, fill: Callable[[Path], None], *, tag: str = "new") -> None:
    """Assemble ``dest`` with ``fill(staged)`` in a staging directory, then swap it into place;
    on any failure the staging directory is removed and ``dest`` is untouched."""
    staged = staging_dir(dest, tag)
    try:
        fill(staged)
        swap_dir(staged, dest)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def publish_dir(staged: Path, dest: Path) -> bool:
    """Rename the finished directory ``staged`` to ``dest`` unless ``dest`` already exists; then
    ``staged`` is removed instead. For content-addressed entries, where whoever finishes first
    wrote the same bytes. True when this call put its directory in place."""
    staged, dest = Path(staged), Path(dest)
    try:
        os.rename(staged, dest)  # fails on an existing non-empty directory (POSIX), never merges
        return True
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(staged, ignore_errors=True)
        return False
