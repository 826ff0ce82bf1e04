"""The tree in memory: what a file is (``FileState``), where it is read from (the work tree
through a ``PathGuard``, or a commit), and the ``Overlay`` that holds the tree as the patches
applied so far would leave it. ``apply_files`` applies the sections of one diff to an overlay
with git apply's rules; nothing here writes anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import git
from ..errors import PatchDoesNotApply
from ..git import FileState, Reader, State
from . import hunks
from .hunks import FileDiff, Misfit


class Repository(Protocol):
    """What the git plumbing here needs of a repository: its path. A GoTree is one; so is a
    ``GitPath`` naming a bare repository (the cached imports, a scratch repository)."""

    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class GitPath:
    """Any git repository, bare or not, known only by its path (see ``Repository``)."""

    path: Path


# --------------------------------------------------------------------------------------------
# Reading the tree safely
# --------------------------------------------------------------------------------------------


class PathGuard:
    """Refuses a path that goes through (or is) a symlink: it could lead outside the tree, and
    gopatch never reads or writes through one. Directories already checked are remembered, so a
    2,700-file diff costs a few hundred lstat calls rather than thousands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: set[str] = set()

    def check(self, rel: str) -> None:
        parts = rel.split("/")
        prefix = ""
        for i, part in enumerate(parts):
            prefix = f"{prefix}/{part}" if prefix else part
            last = i == len(parts) - 1
            if not last and prefix in self.dirs:
                continue
            try:
                st = os.lstat(self.root / prefix)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode):
                raise PatchDoesNotApply(
                    f"refusing {rel}: {prefix} is a symlink in the tree (to {os.readlink(self.root / prefix)!r}); "
                    "gopatch never reads or writes through a symlink.")
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    raise PatchDoesNotApply(f"{rel}: {prefix} is a file in the tree, not a directory.")
                self.dirs.add(prefix)



def worktree_reader(root: Path, guard: PathGuard | None = None) -> Reader:
    guard = guard or PathGuard(root)

    def read(rel: str) -> State:
        guard.check(rel)
        p = root / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise PatchDoesNotApply(f"{rel} is not a regular file in the tree.")
        mode = "100755" if st.st_mode & 0o111 else "100644"
        with open(p, "rb") as f:
            return FileState(f.read(), mode)

    return read


class CommitReader:
    """Files as they are in one commit: modes from one `git ls-tree`, contents from one
    `git cat-file --batch` process that ``close()`` ends (GitPython's own persistent cat-file
    processes would outlive the command)."""

    def __init__(self, tree: Repository, sha: str) -> None:
        self.tree = tree
        self.sha = sha
        self._entries: dict[str, tuple[str, str]] | None = None
        self._cat = git.CatFile(tree.path)

    def _listing(self) -> dict[str, tuple[str, str]]:
        if self._entries is None:
            self._entries = git.ls_tree(self.tree.path, self.sha)
        return self._entries

    def __call__(self, rel: str) -> State:
        entry = self._listing().get(rel)
        if entry is None:
            return None
        mode, blob = entry
        if mode not in hunks.REGULAR_MODES:
            raise PatchDoesNotApply(f"{rel} is not a regular file in commit {self.sha[:12]} (mode {mode}).")
        return FileState(self._cat.read(blob), "100755" if mode == "100755" else "100644")

    def close(self) -> None:
        self._cat.close()

    def __enter__(self) -> CommitReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def commit_reader(tree: Repository, sha: str) -> CommitReader:
    return CommitReader(tree, sha)


class Overlay:
    """The tree as the patches applied so far would leave it, held in memory."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self.original: dict[str, State] = {}
        self.changes: dict[str, State] = {}

    def get(self, path: str) -> State:
        if path in self.changes:
            return self.changes[path]
        if path not in self.original:
            self.original[path] = self._reader(path)
        return self.original[path]

    def update(self, changes: dict[str, State]) -> None:
        for path in changes:
            self.get(path)  # remember the original first
        self.changes.update(changes)

    def effective_changes(self) -> dict[str, State]:
        return {p: s for p, s in self.changes.items() if s != self.original.get(p)}


_GONE = "gone"  # apply.c's PATH_WAS_DELETED: an earlier section deleted or renamed the path away
_GOING = "going"  # PATH_TO_BE_DELETED: a later section deletes or renames it away


def apply_files(overlay: Overlay, files: Sequence[FileDiff], *, fuzz: int = 0,
                allow_offset: bool = True, moves: list[tuple[str, str, int, int]] | None = None,
                ) -> tuple[dict[str, State], list[str]]:
    """All sections of one diff against ``overlay`` -> (changes, notes). Raises Misfit;
    ``overlay`` itself is not touched, so a misfit in the last file leaves no trace of the first.

    The sections are checked and combined as apply.c's ``check_patch_list`` and
    ``write_out_results`` do: a section for a path that an earlier section of the same diff
    changed starts from that section's result; renames and copies read the tree as it was
    before the diff; a path may be created where a section of the same diff deletes or renames
    a file away; and the tree is written in two phases, every removal before every write.
    ``moves``, when given, receives (file, hunk header, offset, fuzz) of every hunk that did not
    fit exactly at its recorded line (for reports that need the numbers, not the sentences)."""
    table: dict[str, object] = {}
    for fd in files:
        if fd.old_path is not None and (fd.new_path is None or fd.is_rename):
            table[fd.old_path] = _GOING
    results: list[tuple[FileDiff, bytes, str]] = []
    notes: list[str] = []
    for fd in files:
        old_path = fd.old_path
        is_new = fd.is_new
        data: bytes | None = None
        st_mode = None
        if old_path is not None:
            previous = None if (fd.is_copy or fd.is_rename) else table.get(old_path)
            if previous is _GONE:
                raise Misfit(old_path, "was renamed or deleted by an earlier section of the same diff")
            if isinstance(previous, tuple):  # (data, mode) written by an earlier section
                data, st_mode = previous
            else:
                state = overlay.get(old_path)
                if state is None:
                    if is_new is None:  # a traditional diff of an empty file: it creates one
                        is_new, old_path = True, None
                    else:
                        raise Misfit(old_path, "changes a file that does not exist in the tree")
                else:
                    data, st_mode = state.data, state.mode
        if st_mode is not None and fd.old_mode is not None and int(fd.old_mode, 8) & 0o170000 != 0o100000:
            # git's check_preimage: the type bits must agree with the file's ("wrong type").
            raise Misfit(fd.old_path or "", f"wrong type: the patch says mode {fd.old_mode}, the tree has a "
                         "regular file")
        if (st_mode is not None and fd.new_path is not None and fd.new_mode is not None
                and int(fd.new_mode, 8) & 0o170000 != 0o100000):
            raise Misfit(fd.new_path, f"new mode {fd.new_mode} does not match the old mode {st_mode}")
        new_path = fd.new_path
        ok_if_exists = table.get(new_path) in (_GONE, _GOING) if new_path else False
        creates = new_path is not None and (is_new or fd.is_rename or fd.is_copy)
        if creates and not ok_if_exists and overlay.get(new_path) is not None:  # type: ignore[arg-type]
            raise Misfit(new_path, "creates a file that already exists in the tree")
        new_mode = fd.new_mode or (st_mode if not is_new else None) or "100644"
        effective = fd if old_path is not None or fd.old_path is None else FileDiff(
            None, fd.new_path, None, fd.new_mode, fd.hunks, fd.line_no, is_new=True, is_delete=False)
        result = hunks.apply_file(effective, data if old_path is not None else None, fuzz=fuzz,
                                  allow_offset=allow_offset)
        for header, delta in result.offsets:
            notes.append(f"{fd.path}: hunk {header} applied at offset {delta:+d} line(s)")
        for header, f in result.fuzzed:
            notes.append(f"{fd.path}: hunk {header} applied with fuzz {f}")
        if moves is not None:
            fuzzed = dict(result.fuzzed)
            offsets = dict(result.offsets)
            for h in fd.hunks:
                if h.header in offsets or h.header in fuzzed:
                    moves.append((fd.path, h.header, offsets.get(h.header, 0), fuzzed.get(h.header, 0)))
        mode = "100755" if int(new_mode, 8) & 0o100 else "100644"
        results.append((fd if old_path is not None or fd.old_path is None else effective, result.data, mode))
        if new_path is not None:
            table[new_path] = (result.data, mode)
        if old_path is not None and (new_path is None or fd.is_rename):
            table[old_path] = _GONE
    # write_out_results: phase 0 removes (deletions, the old side of renames and of changes),
    # phase 1 writes (creations, copies, renames, changes), each in diff order.
    local: dict[str, State] = {}
    for fd, _, _ in results:
        if fd.old_path is not None and not fd.is_copy:
            local[fd.old_path] = None
    for fd, data, mode in results:
        if fd.new_path is not None:
            local[fd.new_path] = FileState(data, mode)
    return local, notes


def reverse(files: Sequence[FileDiff]) -> list[FileDiff]:
    return [fd.reversed() for fd in reversed(files)]
