"""Writing the work tree, the index and HEAD, all or nothing, and the checks that come before:
which paths have local changes, and whether a command may go on with them.

Every command first computes the new content of every file it touches in memory (an
``Overlay``), then writes the commits into the object store (unreferenced objects are
invisible), then ``write_tree`` writes the files (temp file + rename each), updates the index and
finally moves HEAD with a compare-and-swap. A failure before HEAD moves puts the original bytes
back, so the tree, the index and HEAD are what they were.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import git, journal
from ..errors import EnvironmentProblem, GopatchError, TreeNotClean
from ..git import GoTree
from . import commits
from .overlay import FileState, PathGuard, Reader, State


def _write_file(path: Path, st: FileState) -> None:
    """Write next to the target, then rename over it: a reader sees the old or the new bytes."""
    tmp = path.with_name(f".{path.name}.gopatch-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if st.mode == "100755" else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(st.data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _restore(root: Path, rel: str, st: State, created_dirs: list[Path]) -> None:
    """Put one path back; plain writes, so it works even when rename is what failed."""
    p = root / rel
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(p)  # a new inode, never an in-place write: the file may be a hard link
    if st is None:
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "xb") as f:
        f.write(st.data)
    os.chmod(p, 0o755 if st.mode == "100755" else 0o644)


def write_tree(tree: GoTree, changes: dict[str, State], original: dict[str, State], *,
               new_head: str | Callable[[], str], old_head: str, reflog: str, op: str = "apply") -> None:
    """Write ``changes`` into the work tree, refresh the index for those paths and move HEAD
    from ``old_head`` to ``new_head``; on any failure restore every path and the index.

    A journal (pipeline/journal.py) covers what no exception handler can: a kill -9 between the
    first write and the move of HEAD. It is written before the first file, learns ``new_head``
    before HEAD moves and is removed last; the next command that opens the tree finishes or
    undoes the operation from it."""
    root = tree.path
    git_dir = commits.git_dir(tree)
    guard = PathGuard(root)
    done: list[str] = []
    created_dirs: list[Path] = []
    known_dirs: set[Path] = set()
    paths = sorted(changes)
    for rel in paths:
        guard.check(rel)
    record = journal.begin(git_dir, op=op, old_head=old_head, paths=paths,
                           new_dirs=_dirs_to_create(root, changes),
                           new_head=new_head if isinstance(new_head, str) else None)
    try:
        for rel in paths:
            target = root / rel
            st = changes[rel]
            done.append(rel)
            if st is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
                _prune_empty_dirs(root, target.parent)
                known_dirs.clear()  # pruning may have removed some
                continue
            parent = target.parent
            if parent not in known_dirs:
                missing = []
                d = parent
                while not d.is_dir():
                    missing.append(d)
                    d = d.parent
                for m in reversed(missing):
                    m.mkdir()
                    created_dirs.append(m)
                known_dirs.add(parent)
            _write_file(target, st)
        _update_index(tree, paths)
        head = new_head() if callable(new_head) else new_head
        journal.set_new_head(git_dir, record, head)
        git.out(tree.path, "update-ref", "-m", reflog, "HEAD", head, old_head)
    except BaseException as exc:
        restored = True
        for rel in reversed(done):
            try:
                _restore(root, rel, original.get(rel), created_dirs)
            except OSError:
                restored = False
        for d in reversed(created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()
        try:
            _update_index(tree, paths)
        except GopatchError:
            restored = False
        if restored:
            journal.end(git_dir)  # else the next command rolls back from the journal
        if isinstance(exc, GopatchError):
            raise
        if isinstance(exc, OSError):
            raise EnvironmentProblem(
                f"writing the tree failed ({exc}); every file was restored to its previous bytes.") from None
        raise
    journal.end(git_dir)


def _dirs_to_create(root: Path, changes: dict[str, State]) -> list[str]:
    """The directories that writing ``changes`` will create (recovery from a roll-back prunes
    them again); a few hundred stat calls for a release-sized diff."""
    exists: dict[Path, bool] = {root: True}
    new: set[str] = set()
    for rel, st in changes.items():
        if st is None:
            continue
        d = (root / rel).parent
        chain_: list[Path] = []
        while d not in exists:
            chain_.append(d)
            d = d.parent
        for m in chain_:  # innermost first; an existing directory's parents exist too
            exists[m] = m.is_dir()
        for m in chain_:
            if not exists[m]:
                new.add(m.relative_to(root).as_posix())
    return sorted(new)


def _prune_empty_dirs(root: Path, d: Path) -> None:
    while d != root and d.is_dir() and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def _update_index(tree: GoTree, paths: Iterable[str]) -> None:
    data = b"".join(os.fsencode(p) + b"\0" for p in paths)
    if data:
        git.out(tree.path, "update-index", "--add", "--remove", "-z", "--stdin", input=data)


def dirty_paths(tree: GoTree) -> set[str]:
    # --no-optional-locks: git status would otherwise rewrite the index (to refresh its stat
    # data) under index.lock, which a kill -9 at that moment leaves behind for every later git.
    out = git.out(tree.path, "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
               "--no-renames")
    return {os.fsdecode(rec[3:]) for rec in out.split(b"\0") if len(rec) > 3}


def refusing(reader: Reader, dirty: set[str], tree: GoTree) -> Reader:
    """A reader that stops at a file with local changes: with --force, gopatch patches around
    uncommitted work but never reads it into a commit or overwrites it."""
    if not dirty:
        return reader

    def read(rel: str) -> State:
        if rel in dirty:
            raise TreeNotClean(f"{tree.path}: {rel} has uncommitted changes and the patches change it; "
                               "even with --force gopatch will not overwrite it.",
                               hint="commit or stash that file first")
        return reader(rel)

    return read


def check_clean(tree: GoTree, dirty: set[str], touched: Iterable[str], *, force: bool) -> None:
    if not dirty:
        return
    if not force:
        shown = ", ".join(sorted(dirty)[:5]) + (" ..." if len(dirty) > 5 else "")
        raise TreeNotClean(f"{tree.path} has uncommitted changes ({len(dirty)} path(s): {shown}).",
                           hint="commit or stash them, or pass --force to patch anyway (files with local "
                                "changes are never touched)")
    hit = sorted(set(touched) & dirty)
    if hit:
        raise TreeNotClean(f"{tree.path}: uncommitted changes in file(s) the patches change: {', '.join(hit[:10])}; "
                           "even with --force gopatch will not overwrite them.")
