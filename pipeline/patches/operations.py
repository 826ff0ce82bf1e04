"""Patch series on a Go tree: atomic apply, revert, status and extract.

The tree model (git-go-patch's): each applied patch is one commit on top of the tree's recorded
base commit, carrying a ``Gopatch-Patch: <name>`` trailer. Everything else is derived from that:
status reads the commits and tries the rest of the series in memory, revert rebuilds the chain
without the named commits, extract turns commits back into patch files.

Atomicity is by construction: every command first computes the new content of every file it
touches in memory (``Overlay``), then writes the commits into the object store (unreferenced
objects are invisible), then writes the files (temp file + rename each), then updates the index
and finally moves HEAD with a compare-and-swap. A failure before HEAD moves puts the original
bytes back, so the tree, the index and HEAD are what they were.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import (
    EnvironmentProblem,
    GopatchError,
    PatchDoesNotApply,
    PatchFormatError,
    TreeNotClean,
    UsageError,
)
from ..git import GoTree
from ..locking import file_lock
from . import hunks, journal
from .hunks import FileDiff, Misfit
from .series import (
    NAME_TRAILER_RE,
    SERIES_FILE,
    Patch,
    parse_patch_bytes,
    read_series_entries,
    render_patch,
    slug,
    trailer_name,
)

Log = Callable[[str], None]
FALLBACK_IDENT = "gopatch <gopatch@localhost>"
_IDENT_RE = re.compile(r"^\s*([^<>]*?)\s*<([^<>\n]*)>\s*$")
_INDEX_LINE_RE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+( [0-7]+)?\n", re.MULTILINE)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class FileState:
    data: bytes
    mode: str  # 100644 or 100755


State = FileState | None
Reader = Callable[[str], State]


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


def check_no_symlink(root: Path, rel: str) -> None:
    PathGuard(root).check(rel)


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
        self._entries: dict[str, tuple[str, bytes]] | None = None
        self._cat: subprocess.Popen[bytes] | None = None

    def _listing(self) -> dict[str, tuple[str, bytes]]:
        if self._entries is None:
            out = _git(self.tree, "ls-tree", "-r", "-z", "--full-tree", self.sha)
            self._entries = {}
            for rec in out.split(b"\0"):
                if rec:
                    meta, _, path = rec.partition(b"\t")
                    mode, _kind, blob = meta.split()
                    self._entries[os.fsdecode(path)] = (mode.decode(), blob)
        return self._entries

    def __call__(self, rel: str) -> State:
        entry = self._listing().get(rel)
        if entry is None:
            return None
        mode, blob = entry
        if mode not in hunks.REGULAR_MODES:
            raise PatchDoesNotApply(f"{rel} is not a regular file in commit {self.sha[:12]} (mode {mode}).")
        if self._cat is None:
            self._cat = subprocess.Popen(["git", "-C", str(self.tree.path), "cat-file", "--batch"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._cat.stdin is not None and self._cat.stdout is not None
        self._cat.stdin.write(blob + b"\n")
        self._cat.stdin.flush()
        header = self._cat.stdout.readline().split()
        size = int(header[2])
        data = self._cat.stdout.read(size)
        self._cat.stdout.read(1)  # the newline after the contents
        return FileState(data, "100755" if mode == "100755" else "100644")

    def close(self) -> None:
        if self._cat is not None:
            for f in (self._cat.stdin, self._cat.stdout):
                with contextlib.suppress(OSError):
                    f.close()  # type: ignore[union-attr]
            self._cat.wait()
            self._cat = None

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


# --------------------------------------------------------------------------------------------
# The commit chain on top of the base
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainCommit:
    sha: str
    parent: str
    name: str | None  # from the Gopatch-Patch trailer
    author: str  # "Name <email>"
    author_date: str  # raw: "1700000000 +0000"
    committer: str
    committer_date: str
    message: str

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()


def _git(tree: Repository, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    cmd = ["git", "-C", str(tree.path), *args]
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True)
    except FileNotFoundError:
        raise EnvironmentProblem("required program 'git' was not found on PATH.") from None
    if check and proc.returncode != 0:
        raise EnvironmentProblem(f"command failed (exit {proc.returncode}): {' '.join(cmd[:6])}\n"
                                 + proc.stderr.decode(errors="replace").strip()[-2000:])
    return proc.stdout


def base_of(tree: GoTree, head: str) -> str:
    """GoTree.base_commit without GitPython's object database (which keeps a `git cat-file`
    process alive per Repo): the recorded base, or HEAD, recorded on first use."""
    base = tree.meta("base")
    if not base:
        base = head
        tree.record(base=head)
    return base


def chain(tree: GoTree) -> list[ChainCommit]:
    """The commits from the base to HEAD, oldest first; refuses merges and a HEAD off the base."""
    head = _git(tree, "rev-parse", "HEAD").decode().strip()
    base = base_of(tree, head)
    if head == base:
        return []
    ok = subprocess.run(["git", "-C", str(tree.path), "merge-base", "--is-ancestor", base, head],
                        capture_output=True).returncode == 0
    if not ok:
        raise EnvironmentProblem(
            f"HEAD ({head[:12]}) is not on top of the recorded base commit {base[:12]} of {tree.path}.",
            hint="reset the tree to its base (git reset --hard $(git config gopatch.base)) or record a "
                 "new one with git config gopatch.base <commit>")
    shas = _git(tree, "rev-list", "--reverse", "--parents", f"{base}..{head}").decode().split("\n")
    commits = []
    # Raw commit objects, read in one `git cat-file --batch`: no field separator that a message
    # or an author name could contain.
    listing = [line.split() for line in shas if line.strip()]
    raw = _git(tree, "cat-file", "--batch", input=b"".join(f"{x[0]}\n".encode() for x in listing))
    pos = 0
    for sha, *parents in listing:
        nl = raw.index(b"\n", pos)
        size = int(raw[pos:nl].split()[2])
        obj = raw[nl + 1:nl + 1 + size]
        pos = nl + 1 + size + 1
        if len(parents) != 1:
            raise EnvironmentProblem(f"commit {sha[:12]} on top of the base is a merge; gopatch needs a "
                                     "linear series of commits.")
        head_part, _, body = obj.partition(b"\n\n")
        fields = {}
        for line in head_part.split(b"\n"):
            key, _, value = line.partition(b" ")
            fields.setdefault(key, value)
        author, adate = _split_ident(fields.get(b"author", b""))
        committer, cdate = _split_ident(fields.get(b"committer", b""))
        message = body.decode("utf-8", "replace")
        commits.append(ChainCommit(sha, parents[0], trailer_name(message), author, adate,
                                   committer, cdate, message.rstrip("\n") + "\n"))
    return commits


def _split_ident(value: bytes) -> tuple[str, str]:
    """b"Jane <j@x> 1700000000 +0000" -> ("Jane <j@x>", "1700000000 +0000")."""
    ident, _, date = value.decode("utf-8", "replace").rpartition("> ")
    return ident + ">", date


def _strip_name_trailer(message: str) -> str:
    return NAME_TRAILER_RE.sub("", message).rstrip("\n")


def name_commits(commits: Sequence[ChainCommit], patches: Sequence[Patch]) -> dict[str, str]:
    """sha -> series patch name. A gopatch commit says its name in its trailer; a commit made by
    hand (and already extracted) is matched by its message, so it keeps its name run after run."""
    names = {c.sha: c.name for c in commits if c.name}
    free = {_strip_name_trailer(p.message): p.name for p in patches if p.name not in names.values()}
    for c in commits:
        if c.sha not in names:
            name = free.pop(_strip_name_trailer(c.message), None)
            if name is not None:
                names[c.sha] = name
    return names


@dataclass(frozen=True)
class NewCommit:
    message: str
    author: str
    author_date: str
    committer: str
    committer_date: str
    changes: dict[str, State]


def _ident(text: str) -> str:
    """A "Name <email>" that git accepts: control characters and angle brackets are dropped."""
    m = _IDENT_RE.match(text or "")
    if not m:
        return FALLBACK_IDENT
    name = re.sub(r"[\x00-\x1f\x7f<>]", "", m.group(1)).strip() or "unknown"
    email = re.sub(r"[\x00-\x1f\x7f<>]", "", m.group(2)).strip()
    return f"{name} <{email}>"


def _fi_path(path: str) -> bytes:
    raw = os.fsencode(path)
    if raw.startswith(b'"') or b"\n" in raw:
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'
    return raw


class CommitWriter:
    """Create commits as a chain on ``parent`` with one `git fast-import` running in the
    background (no ref, index or work tree is touched), so that packing the new blobs overlaps
    with writing the work tree; ``result()`` waits and returns the hashes."""

    def __init__(self, tree: Repository, parent: str | None, commits: Sequence[NewCommit]) -> None:
        self.tree = tree
        self.count = len(commits)
        self.ref = journal.IMPORT_REF.format(pid=os.getpid())
        # Inside the repository, not /tmp: after a kill -9 the next command finds and removes it
        # (pipeline/patches/journal.py), together with the ref and fast-import's crash report.
        self._tmp = journal.scratch_dir(_git_dir(tree))
        self.marks = self._tmp / "marks"
        self._err = open(self._tmp / "stderr", "w+b")  # noqa: SIM115 - closed in result()
        self._proc: subprocess.Popen[bytes] | None = None
        self._feed_error: BaseException | None = None
        self._cleaned = False
        if not commits:
            return
        chunks = self._stream(parent, commits)
        # No deltas and light compression: fast-import's defaults spend ~3 s of CPU packing the
        # 2,700 new blobs of a release-sized diff, ~1.3 s this way; `git gc` repacks later.
        cmd = ["git", "-C", str(tree.path), "-c", "pack.compression=1", "fast-import", "--quiet", "--done",
               "--depth=0", f"--export-marks={self.marks}"]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err)
        except FileNotFoundError:
            self._cleanup()
            raise EnvironmentProblem("required program 'git' was not found on PATH.") from None
        # Recovery waits for it and removes its crash report (.git/fast_import_crash_<pid>).
        (self._tmp / journal.FAST_IMPORT_PID).write_text(f"{self._proc.pid}\n")
        self._feeder = threading.Thread(target=self._feed, args=(chunks,), daemon=True)
        self._feeder.start()

    def _stream(self, parent: str | None, commits: Sequence[NewCommit]) -> list[bytes]:
        chunks: list[bytes] = []
        for i, c in enumerate(commits, 1):
            msg = c.message.encode()
            chunks.append(
                f"commit {self.ref}\nmark :{i}\nauthor {_ident(c.author)} {c.author_date}\n"
                f"committer {_ident(c.committer)} {c.committer_date}\n".encode()
                + b"data %d\n" % len(msg) + msg + b"\n"
                # No parent: the first commit is a root commit (a scratch repository's first).
                + (f"from :{i - 1}\n" if i > 1 else f"from {parent}\n" if parent else "").encode()
            )
            for path in sorted(c.changes):
                st = c.changes[path]
                if st is None:
                    chunks.append(b"D " + _fi_path(path) + b"\n")
                else:
                    chunks.append(b"M " + st.mode.encode() + b" inline " + _fi_path(path) + b"\n"
                                  + b"data %d\n" % len(st.data) + st.data + b"\n")
        chunks.append(b"done\n")
        return chunks

    def _feed(self, chunks: list[bytes]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            for chunk in chunks:
                self._proc.stdin.write(chunk)
            self._proc.stdin.close()
        except BaseException as exc:  # a broken pipe: fast-import died and says why on stderr
            self._feed_error = exc

    def result(self) -> list[str]:
        if self._proc is None:
            self._cleanup()
            return []
        try:
            self._feeder.join()
            rc = self._proc.wait()
            if rc != 0 or self._feed_error is not None:
                self._err.seek(0)
                raise EnvironmentProblem(f"git fast-import failed (exit {rc}) in {self.tree.path}:\n"
                                         + self._err.read().decode(errors="replace").strip()[-2000:])
            shas = dict(line.split() for line in self.marks.read_text().splitlines())
            return [shas[f":{i}"] for i in range(1, self.count + 1)]
        finally:
            self._cleanup()

    def abort(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        if self._proc is not None:
            _git(self.tree, "update-ref", "-d", self.ref, check=False)
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
        self._err.close()
        journal.drop_scratch(self._tmp)


def _git_dir(tree: Repository) -> Path:
    repo = getattr(tree, "repo", None)
    if repo is not None:
        return Path(repo.git_dir)
    return Path(_git(tree, "rev-parse", "--absolute-git-dir").decode().strip())


def write_commits(tree: Repository, parent: str | None, commits: Sequence[NewCommit]) -> list[str]:
    """Create ``commits`` as a chain on ``parent`` and return their hashes (see CommitWriter)."""
    return CommitWriter(tree, parent, commits).result()


def commit_date(tree: GoTree, sha: str) -> str:
    """The raw committer date of ``sha``: the fixed date of the commits gopatch makes on it, so
    that applying the same series to the same base gives the same commit hashes every time."""
    return _git(tree, "log", "-1", "--date=raw", "--format=%cd", sha).decode().strip()


# --------------------------------------------------------------------------------------------
# Writing the work tree, index and HEAD (all or nothing)
# --------------------------------------------------------------------------------------------


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

    A journal (pipeline/patches/journal.py) covers what no exception handler can: a kill -9 between the
    first write and the move of HEAD. It is written before the first file, learns ``new_head``
    before HEAD moves and is removed last; the next command that opens the tree finishes or
    undoes the operation from it."""
    root = tree.path
    git_dir = _git_dir(tree)
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
        _git(tree, "update-ref", "-m", reflog, "HEAD", head, old_head)
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
        _git(tree, "update-index", "--add", "--remove", "-z", "--stdin", input=data)


def dirty_paths(tree: GoTree) -> set[str]:
    # --no-optional-locks: git status would otherwise rewrite the index (to refresh its stat
    # data) under index.lock, which a kill -9 at that moment leaves behind for every later git.
    out = _git(tree, "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
               "--no-renames")
    return {os.fsdecode(rec[3:]) for rec in out.split(b"\0") if len(rec) > 3}


def _refusing(reader: Reader, dirty: set[str], tree: GoTree) -> Reader:
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


def _check_clean(tree: GoTree, dirty: set[str], touched: Iterable[str], *, force: bool) -> None:
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


# --------------------------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    action: str  # applied | already-applied | committed | would-apply
    notes: list[str] = field(default_factory=list)
    commit: str | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "notes": self.notes, "commit": self.commit,
                "files": self.files}


def parse_files(patch: Patch) -> list[FileDiff]:
    return hunks.parse_diff(patch.diff, origin=str(patch.path), first_line=patch.diff_line)


def _misfit_error(patch: Patch, misfit: Misfit, *, action: str = "apply") -> PatchDoesNotApply:
    return PatchDoesNotApply(
        f"patch {patch.name} ({patch.path}) does not {action}; nothing was changed.\n{misfit.describe()}",
        hint="update the patch for this tree, or set [patches] fuzz / GOPATCH_PATCHES_FUZZ if only context moved",
    )


def plan_patch(overlay: Overlay, patch: Patch, files: list[FileDiff], *, fuzz: int) -> tuple[str, dict[str, State], list[str]]:
    """Decide what one patch does to ``overlay``: ('applied', changes, notes) or
    ('already-applied', {}, notes). The order matters: an exact forward fit wins; else a patch
    whose reverse fits is already in the tree (never apply it twice); else offsets and fuzz."""
    try:
        changes, notes = apply_files(overlay, files, allow_offset=False)
        return "applied", changes, notes
    except Misfit as first:
        try:
            apply_files(overlay, reverse(files))
            return "already-applied", {}, [f"{patch.name} is already in the tree (its reverse applies); skipped"]
        except Misfit:
            pass
        try:
            changes, notes = apply_files(overlay, files, fuzz=fuzz)
            return "applied", changes, notes
        except Misfit:
            raise _misfit_error(patch, first) from None


def apply_patches(tree: GoTree, patches: Sequence[Patch], *, fuzz: int = 0, dry_run: bool = False,
                  force: bool = False, log: Log = _quiet) -> list[Outcome]:
    """Apply ``patches`` in order, one commit each, all or nothing."""
    with file_lock(Path(tree.repo.git_dir) / journal.LOCK):
        # open_tree recovered before we held the lock; a command killed since then is
        # recovered here (and a caller that did not use open_tree is covered too).
        journal.recover(tree.path, Path(tree.repo.git_dir), log=log, locked=True)
        commits = chain(tree)
        named = name_commits(commits, patches)
        committed = {named[c.sha]: c for c in commits if c.sha in named}
        dirty = dirty_paths(tree)
        _check_clean(tree, dirty, (), force=force)
        parsed = [(p, parse_files(p)) for p in patches]  # every patch is well-formed before anything else
        overlay = Overlay(_refusing(worktree_reader(tree.path), dirty, tree))
        outcomes: list[Outcome] = []
        steps: list[tuple[Patch, dict[str, State]]] = []
        for patch, files in parsed:
            if patch.name in committed:
                c = committed[patch.name]
                outcomes.append(Outcome(patch.name, "committed", [f"{patch.name} is already applied (commit {c.sha[:12]}); skipped"], c.sha))
                continue
            action, changes, notes = plan_patch(overlay, patch, files, fuzz=fuzz)
            overlay.update(changes)
            outcomes.append(Outcome(patch.name, action, notes, files=sorted(changes)))
            if action == "applied":
                steps.append((patch, changes))
        for o in outcomes:
            for note in o.notes:
                log(note)
        final = overlay.effective_changes()
        if not steps:
            return outcomes
        _check_clean(tree, dirty, overlay.original, force=force)
        if dry_run:
            for o in outcomes:
                if o.action == "applied":
                    o.action = "would-apply"
            return outcomes
        head = _git(tree, "rev-parse", "HEAD").decode().strip()
        date = commit_date(tree, base_of(tree, head))
        new = [NewCommit(p.message, p.author or FALLBACK_IDENT, date, p.author or FALLBACK_IDENT, date, ch)
               for p, ch in steps]
        writer = CommitWriter(tree, head, new)
        shas: list[str] = []

        def commits_done() -> str:
            shas.extend(writer.result())
            return shas[-1]

        names = [p.name for p, _ in steps]
        try:
            write_tree(tree, final, overlay.original, new_head=commits_done, old_head=head,
                       reflog=f"gopatch apply {' '.join(names)}")
        finally:
            writer.abort()  # a no-op once result() has run
        by_name = dict(zip(names, shas, strict=True))
        for o in outcomes:
            if o.name in by_name:
                o.commit = by_name[o.name]
                log(f"applied {o.name} ({len(o.files)} file(s)) as {o.commit[:12]}")
        return outcomes


# --------------------------------------------------------------------------------------------
# revert
# --------------------------------------------------------------------------------------------


def commit_diff(tree: Repository, parent: str, sha: str) -> bytes:
    """The diff of one commit, with every option that would change the text pinned, so that it
    is the same on every machine (user config can set noprefix, algorithm, context...)."""
    return _git(tree, "-c", "core.quotePath=true", "-c", "diff.suppressBlankEmpty=false",
                "-c", "diff.relative=false", "diff-tree", "-p", "--no-color", "--no-ext-diff",
                "--no-textconv", "--no-renames", "--indent-heuristic", "--diff-algorithm=myers", "-U3",
                "--src-prefix=a/", "--dst-prefix=b/", parent, sha, "--")


def strip_index_lines(diff: bytes) -> bytes:
    # Only header lines can start with "index " (hunk lines start with ' ', '+', '-' or '\').
    return _INDEX_LINE_RE.sub(b"", diff)


def revert_patches(tree: GoTree, names: Sequence[str] | None, *, dry_run: bool = False, force: bool = False,
                   log: Log = _quiet) -> list[Outcome]:
    """Remove the commits of ``names`` (None = every gopatch commit) from the chain, all or nothing.
    Commits after them are re-created on the new parent; one that needed a reverted patch stops
    the whole command with the usual misfit message."""
    with file_lock(Path(tree.repo.git_dir) / journal.LOCK):
        # open_tree recovered before we held the lock; a command killed since then is
        # recovered here (and a caller that did not use open_tree is covered too).
        journal.recover(tree.path, Path(tree.repo.git_dir), log=log, locked=True)
        commits = chain(tree)
        by_name = {c.name: c for c in commits if c.name}
        if names is None:
            drop = {c.sha for c in commits if c.name}
        else:
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise UsageError(f"patch(es) {', '.join(unknown)} are not applied in {tree.path}; "
                                 f"applied: {', '.join(by_name) or 'none'}.")
            drop = {by_name[n].sha for n in names}
        if not drop:
            log("no gopatch commits on top of the base; nothing to revert")
            return []
        dirty = dirty_paths(tree)
        _check_clean(tree, dirty, (), force=force)
        first = next(i for i, c in enumerate(commits) if c.sha in drop)
        start = commits[first].parent
        with commit_reader(tree, start) as start_reader:
            overlay = Overlay(start_reader)
            rebuilt: list[NewCommit] = []
            outcomes: list[Outcome] = []
            touched: set[str] = set()
            for c in commits[first:]:
                diff = commit_diff(tree, c.parent, c.sha)
                label = c.name or c.subject
                files = hunks.parse_diff(diff, origin=f"commit {c.sha[:12]}") if diff.strip() else []
                for fd in files:
                    touched.update(p for p in (fd.old_path, fd.new_path) if p)
                if c.sha in drop:
                    outcomes.append(Outcome(label, "reverted" if not dry_run else "would-revert", commit=c.sha,
                                            files=sorted({p for fd in files for p in (fd.old_path, fd.new_path) if p})))
                    continue
                try:
                    changes, notes = apply_files(overlay, files)
                except Misfit as m:
                    raise PatchDoesNotApply(
                        f"cannot revert: commit {c.sha[:12]} ({label}) depends on a patch being reverted; "
                        f"nothing was changed.\n{m.describe()}",
                        hint="revert that commit too, or revert in a different order") from None
                overlay.update(changes)
                rebuilt.append(NewCommit(c.message, c.author, c.author_date, c.committer, c.committer_date, changes))
                outcomes.append(Outcome(label, "rebased", notes, files=sorted(changes)))
            # The work tree holds HEAD's bytes for these paths (checked below); the new state is
            # the overlay's, whose originals come from the start commit.
            current = Overlay(worktree_reader(tree.path))
            for p in touched:
                current.get(p)
            final = {p: overlay.get(p) for p in touched}
            final = {p: s for p, s in final.items() if s != current.original[p]}
            _check_clean(tree, dirty, touched, force=force)
            for o in outcomes:
                for note in o.notes:
                    log(note)
            if dry_run:
                return outcomes
            head = _git(tree, "rev-parse", "HEAD").decode().strip()
            shas = write_commits(tree, start, rebuilt)
            new_head = shas[-1] if shas else start
            write_tree(tree, final, current.original, new_head=new_head, old_head=head, op="revert",
                       reflog=f"gopatch revert {' '.join(o.name for o in outcomes if o.action == 'reverted')}")
            kept = iter(shas)
            for o in outcomes:
                if o.action == "rebased":
                    o.commit = next(kept)
                log(f"{o.action} {o.name}")
            return outcomes


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


@dataclass
class PatchStatus:
    name: str
    state: str  # applied | applies | applies-with-offset | present | conflicts
    detail: str = ""
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "detail": self.detail, "commit": self.commit}


def status(tree: GoTree, patches: Sequence[Patch], *, fuzz: int = 0) -> tuple[list[PatchStatus], list[ChainCommit]]:
    """Per series patch: applied (its commit is on the chain), applies (cleanly, or at an
    offset), present (its change is in the tree without its commit), or conflicts. Unapplied
    patches are tried in series order on top of each other in memory, as `apply --all` would.
    Also returns the chain commits that belong to no series patch (candidates for extract)."""
    commits = chain(tree)
    named = name_commits(commits, patches)
    committed = {named[c.sha]: c for c in commits if c.sha in named}
    overlay = Overlay(worktree_reader(tree.path))
    out: list[PatchStatus] = []
    for patch in patches:
        if patch.name in committed:
            out.append(PatchStatus(patch.name, "applied", commit=committed[patch.name].sha))
            continue
        try:
            files = parse_files(patch)
        except PatchFormatError as exc:
            out.append(PatchStatus(patch.name, "malformed", exc.message))
            continue
        try:
            action, changes, notes = plan_patch(overlay, patch, files, fuzz=fuzz)
        except PatchDoesNotApply as exc:
            out.append(PatchStatus(patch.name, "conflicts", exc.message.split("\n", 1)[-1]))
            continue
        if action == "already-applied":
            out.append(PatchStatus(patch.name, "present", "its change is in the tree but not as a gopatch commit"))
        else:
            overlay.update(changes)
            out.append(PatchStatus(patch.name, "applies-with-offset" if notes else "applies", "\n".join(notes)))
    extra = [c for c in commits if c.sha not in named]
    return out, extra


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------


@dataclass
class Extracted:
    name: str
    file: str
    action: str  # unchanged | updated | new
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "action": self.action, "commit": self.commit}


def _body_of(message: str) -> str:
    """Commit message -> the patch description + trailers (subject and name trailer removed)."""
    lines = message.rstrip("\n").split("\n")
    body = [ln for ln in lines[1:] if not NAME_TRAILER_RE.match(ln)]
    return "\n".join(body).strip("\n")


def _same_effect(tree: GoTree, c: ChainCommit, existing: Patch, commit_files: list[FileDiff]) -> bool:
    with commit_reader(tree, c.parent) as before, commit_reader(tree, c.sha) as after:
        try:
            files = parse_files(existing)
            overlay = Overlay(before)
            changes, _ = apply_files(overlay, files)
        except (Misfit, GopatchError):
            return False
        paths = set(changes) | {p for fd in commit_files for p in (fd.old_path, fd.new_path) if p}
        return all((changes[p] if p in changes else overlay.get(p)) == after(p) for p in paths)


def extract(tree: GoTree, series_dir: Path, patches: Sequence[Patch], *, dry_run: bool = False,
            log: Log = _quiet) -> list[Extracted]:
    """Write each commit on top of the base back as a patch file, deterministically; a file whose
    message and effect did not change keeps its bytes; new commits become new series entries
    (after the entry of the commit before them). All files are checked before any is written."""
    series_dir = Path(series_dir)
    by_name = {p.name: p for p in patches}
    results: list[Extracted] = []
    writes: dict[Path, bytes] = {}
    used: set[str] = set(by_name)
    order: list[str] = []
    commits = chain(tree)
    named = name_commits(commits, patches)
    for c in commits:
        diff = commit_diff(tree, c.parent, c.sha)
        if not diff.strip():
            log(f"commit {c.sha[:12]} ({c.subject}) changes nothing; skipped")
            continue
        name = named.get(c.sha)
        if name is None:
            base = slug(c.subject)
            name, n = base, 2
            while name in used:
                name, n = f"{base}-{n}", n + 1
        used.add(name)
        order.append(name)
        body = _body_of(c.message)
        data = render_patch(author=c.author, subject=c.subject, body=body, diff=strip_index_lines(diff))
        path = series_dir / f"{name}.patch"
        try:
            candidate = parse_patch_bytes(data, path=path, name=name)
        except PatchFormatError as exc:  # e.g. a commit made by hand without a Touches: trailer
            raise PatchFormatError(f"commit {c.sha[:12]} ({c.subject}) cannot become {path.name}: "
                                   f"{exc.message.split(': ', 1)[-1]}",
                                   hint="amend the commit message (git commit --amend, git rebase -i) "
                                        "and run extract again; nothing was written") from None
        commit_files = parse_files(candidate)
        existing = by_name.get(name)
        if existing is not None and existing.message == candidate.message and _same_effect(tree, c, existing, commit_files):
            results.append(Extracted(name, path.name, "unchanged", c.sha))
            continue
        if existing is None and path.exists():
            raise UsageError(f"{path} exists but is not in {series_dir / SERIES_FILE}; move it away or add it.")
        writes[path] = data
        results.append(Extracted(name, path.name, "updated" if existing else "new", c.sha))
    new_names = [r.name for r in results if r.action == "new"]
    series_text = _series_with(series_dir, order, set(new_names)) if new_names else None
    for r in results:
        log(f"{r.action:9} {r.file}")
    if dry_run:
        return results
    for path, data in writes.items():
        _atomic_write(path, data)
    if series_text is not None:
        _atomic_write(series_dir / SERIES_FILE, series_text.encode())
    return results


def _series_with(series_dir: Path, order: list[str], new: set[str]) -> str:
    series_file = series_dir / SERIES_FILE
    lines = series_file.read_text(encoding="utf-8").splitlines() if series_file.exists() else \
        ["# Patch series, applied in this order (top to bottom)."]
    line_of = {e.file[:-len(".patch")]: e.line - 1 for e in read_series_entries(series_dir)} if series_file.exists() else {}
    inserted: dict[int, list[str]] = {}
    tail: list[str] = []
    prev = None
    for name in order:
        if name in new:
            if prev is not None and prev in line_of:
                inserted.setdefault(line_of[prev], []).append(f"{name}.patch")
            else:
                tail.append(f"{name}.patch")
        prev = name
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        out.extend(inserted.get(i, []))
    out.extend(tail)
    return "\n".join(out) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
