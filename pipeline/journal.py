"""The apply/revert journal: a `kill -9` at any moment leaves a tree the next command repairs;
and ``open_tree``, which every command opens its Go tree with, repairing it first.

Below the stages (it uses only ``pipeline.git``): the patch engine writes through it, and the
checkout and every other command open trees through it, so neither needs the other.

`write_tree` (pipeline/patches/worktree.py) changes three things that git cannot change together: the
work-tree files, the index, then HEAD. Before its first write it records what it is about to do
in ``.git/gopatch-journal.json``:

    {"op": "apply", "pid": 123, "old_head": "<sha>", "new_head": "<sha>" | null,
     "paths": [...every path it will write or delete...], "new_dirs": [...directories it creates...],
     "recoverers": [...pids of recoveries that started...], "started": <unix time>}

``new_head`` is filled in as soon as the new commits exist (an apply's commits are written by a
`git fast-import` that runs alongside the file writes), always before HEAD moves; the journal is
removed once HEAD has moved and the index is up to date. So whoever finds a journal knows:

* HEAD == new_head: every write had happened; roll *forward* (make the journaled paths match
  new_head in the work tree and the index; normally they already do);
* otherwise HEAD is still old_head; roll *back* (make the journaled paths match old_head). The
  new commits, if any, are unreferenced objects: invisible and collected by `git gc`.

Restoring a path means its bytes and mode from that commit, or deleting it when the commit has no
such path; the directories the operation created are pruned again. Apply and revert never touch a
file with local changes (even --force refuses), so the journaled paths held exactly old_head's
content before the operation, and the restore is exact. Recovery takes the tree's
``gopatch.lock``, writes its own pid into the journal first (its temp files carry that pid) and
removes the journal last, so a kill during recovery leaves a journal the next command finishes.

The other leftovers of a killed command live in the repository too, never in /tmp:
``.git/gopatch-tmp/<pid>-*/`` (fast-import's marks and stderr, and its pid), the ref
``refs/gopatch/import-<pid>``, fast-import's own crash report ``.git/fast_import_crash_<its pid>``,
temp files ``.<name>.gopatch-<pid>`` beside the journaled paths, and ``index.lock``/``HEAD.lock``
of a git process killed with us. `recover` removes all of them; `open_tree` calls it, so every
command that opens a tree (status included) repairs it first and says so on stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import git
from .errors import EnvironmentProblem
from .git import GoTree, is_go_source_tree, log_stderr
from .locking import file_lock
from .process import alive

JOURNAL = "gopatch-journal.json"
SCRATCH = "gopatch-tmp"
LOCK = "gopatch.lock"
IMPORT_REF = "refs/gopatch/import-{pid}"
FAST_IMPORT_PID = "fast-import.pid"
# git commands gopatch runs in a tree that can outlive a `kill -9` of gopatch (they hold a pipe
# or a lock file); recovery waits for them before it touches the index.
_ORPHAN_COMMANDS = (b"fast-import", b"update-index", b"update-ref")
_ORPHAN_WAIT = 15.0
_LOCK_WAIT = 5.0

Log = Callable[[str], None]


@dataclass
class Journal:
    op: str
    pid: int
    old_head: str
    paths: list[str]
    new_dirs: list[str] = field(default_factory=list)
    new_head: str | None = None
    recoverers: list[int] = field(default_factory=list)
    started: float = 0.0

    @property
    def pids(self) -> list[int]:
        return [self.pid, *self.recoverers]


# --------------------------------------------------------------------------------------------
# Writing the journal (the operation's side)
# --------------------------------------------------------------------------------------------


def journal_path(git_dir: Path) -> Path:
    return Path(git_dir) / JOURNAL


def _store(git_dir: Path, journal: Journal) -> None:
    """Atomically (temp file + rename, fsynced) so a reader sees the old or the new record."""
    path = journal_path(git_dir)
    tmp = path.with_name(f"{JOURNAL}.{os.getpid()}.tmp")
    data = json.dumps(asdict(journal), separators=(",", ":")).encode()
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)  # atomic on POSIX, like os.replace (kept apart from the tree's writes)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EnvironmentProblem(f"cannot write {path} ({exc}).") from None


def begin(git_dir: Path, *, op: str, old_head: str, paths: Iterable[str], new_dirs: Iterable[str] = (),
          new_head: str | None = None) -> Journal:
    journal = Journal(op=op, pid=os.getpid(), old_head=old_head, paths=sorted(paths),
                      new_dirs=sorted(new_dirs), new_head=new_head, started=time.time())
    _store(git_dir, journal)
    return journal


def set_new_head(git_dir: Path, journal: Journal, new_head: str) -> None:
    """Record the new HEAD before HEAD moves: from then on HEAD == new_head means 'finished'."""
    if journal.new_head != new_head:
        journal.new_head = new_head
        _store(git_dir, journal)


def end(git_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(git_dir))


def load(git_dir: Path) -> Journal | None:
    try:
        raw = json.loads(journal_path(git_dir).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:  # cannot happen with the rename above, unless edited by hand
        raise _invalid(git_dir, exc) from None
    try:
        return Journal(**raw)
    except TypeError as exc:
        raise _invalid(git_dir, exc) from None


def _invalid(git_dir: Path, exc: Exception) -> EnvironmentProblem:
    return EnvironmentProblem(f"{journal_path(git_dir)} is not a valid gopatch journal ({exc}).",
                              hint="inspect the tree with git status, fix it by hand and delete the file")


def scratch_dir(git_dir: Path) -> Path:
    """A private directory for one command's temp files (fast-import's marks...), inside the
    repository so that recovery finds it after a kill; its name starts with our pid."""
    top = Path(git_dir) / SCRATCH
    top.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=top))


def drop_scratch(path: Path) -> None:
    """Remove a scratch directory and, when it was the last, .git/gopatch-tmp itself."""
    _rmtree(path)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


# --------------------------------------------------------------------------------------------
# Recovery (the next command's side)
# --------------------------------------------------------------------------------------------


def pending(git_dir: Path) -> bool:
    """Anything a killed command left behind? A few stat calls: every command asks."""
    git_dir = Path(git_dir)
    if journal_path(git_dir).exists() or (git_dir / SCRATCH).exists():
        return True
    return any(git_dir.glob(f"{JOURNAL}.*.tmp"))


def recover(root: Path, git_dir: Path, *, log: Log, locked: bool = False) -> str | None:
    """Finish or undo an interrupted apply/revert in the tree at ``root``; return (and log) the
    one-line account, or None when there was nothing to do. ``locked``: the caller already holds
    the tree's gopatch.lock (apply and revert check again once they hold it)."""
    git_dir = Path(git_dir)
    if not pending(git_dir):
        return None
    if locked:
        message = _recover_locked(root, git_dir)
    else:
        def waiting(holder: str) -> None:
            log(f"waiting for the gopatch command working on {root} ({holder}) to finish...")

        with file_lock(git_dir / LOCK, on_wait=waiting):
            message = _recover_locked(root, git_dir)
    if message:
        log(message)
    return message


def _recover_locked(root: Path, git_dir: Path) -> str | None:
    # Under the lock nothing else of gopatch runs in this tree: whatever is here is stale.
    _wait_for_orphans(root)
    journal = load(git_dir)
    message = None
    if journal is not None:
        message = _finish(root, git_dir, journal)
    leftovers = _clean_scratch(root, git_dir)
    for tmp in git_dir.glob(f"{JOURNAL}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if message is None and leftovers:
        message = (f"cleaned up after an interrupted gopatch command (pid {', '.join(map(str, leftovers))}): "
                   "it had not written anything to the tree")
    return message


def _finish(root: Path, git_dir: Path, journal: Journal) -> str:
    journal.recoverers.append(os.getpid())
    _store(git_dir, journal)  # our temp files carry our pid: a later recovery must know it
    head = git.out(root, "rev-parse", "--verify", "-q", "HEAD").decode().strip()
    if journal.new_head and head == journal.new_head:
        target, forward = journal.new_head, True
    elif head == journal.old_head:
        target, forward = journal.old_head, False
    else:
        raise EnvironmentProblem(
            f"an interrupted `gopatch {journal.op}` (pid {journal.pid}) left a journal in {root}, but HEAD "
            f"({head[:12]}) has since moved to neither its old ({journal.old_head[:12]}) nor its new commit "
            f"({(journal.new_head or 'none')[:12]}); gopatch will not guess.",
            hint=f"to go back to the state before it: git -C {root} reset --hard {journal.old_head[:12]}; "
                 f"then delete {journal_path(git_dir)}")
    for lock in _lock_files(root):
        _clear_stale_lock(lock, journal)
    _restore_paths(root, journal, target, forward=forward)
    if journal.paths:
        git.out(root, "update-index", "--add", "--remove", "-z", "--stdin",
             input=b"".join(os.fsencode(p) + b"\0" for p in journal.paths))
    # HEAD is the target already: a roll-back target is the HEAD that never moved.
    end(git_dir)
    how = "rolled forward to" if forward else "rolled back to"
    return f"recovered an interrupted `gopatch {journal.op}` (pid {journal.pid}): {how} {target[:12]}"


def _restore_paths(root: Path, journal: Journal, target: str, *, forward: bool) -> None:
    wanted = set(journal.paths)
    listing = git.ls_tree(root, target, wanted)
    new_dirs = set(journal.new_dirs)
    with git.CatFile(root) as blobs:
        for rel in journal.paths:
            p = root / rel
            for pid in journal.pids:  # a killed writer's temp file beside the path
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    os.unlink(p.with_name(f".{p.name}.gopatch-{pid}"))
            entry = listing.get(rel)
            if entry is None:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    _unlink(p)
                _prune(root, p.parent, None if forward else new_dirs)
                continue
            mode, sha = entry
            if _matches(p, mode, sha):
                continue
            data = blobs.read(sha)
            p.parent.mkdir(parents=True, exist_ok=True)
            _write(p, data, mode)
    if not forward:
        for d in sorted(new_dirs, key=lambda d: -d.count("/")):
            with contextlib.suppress(OSError):
                (root / d).rmdir()


def _matches(p: Path, mode: str, sha: str) -> bool:
    try:
        st = os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISREG(st.st_mode) or bool(st.st_mode & 0o111) != (mode == "100755"):
        return False
    with open(p, "rb") as f:
        data = f.read()
    h = hashlib.sha256() if len(sha) == 64 else hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest() == sha


def _unlink(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        return  # a directory where the commit has no file: not ours to remove
    os.unlink(p)


def _write(p: Path, data: bytes, mode: str) -> None:
    """Temp file + rename, never an in-place write: the file may be a hard link (test trees link
    into read-only Go distributions), and a reader sees the old or the new bytes."""
    tmp = p.with_name(f".{p.name}.gopatch-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if mode == "100755" else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755 if mode == "100755" else 0o644)  # whatever the umask
    if p.is_dir() and not p.is_symlink():
        os.unlink(tmp)
        raise EnvironmentProblem(f"cannot restore {p}: a directory stands where the file was.")
    os.replace(tmp, p)


def _prune(root: Path, d: Path, only: set[str] | None) -> None:
    """Remove empty directories upwards from ``d`` (only those in ``only``, when given)."""
    while d != root:
        rel = d.relative_to(root).as_posix()
        if only is not None and rel not in only:
            return
        try:
            d.rmdir()
        except OSError:  # not empty, or already gone
            if d.exists():
                return
        d = d.parent


def _clean_scratch(root: Path, git_dir: Path) -> list[int]:
    """Remove what killed commands left in .git/gopatch-tmp, their import refs and fast-import
    crash reports; return their pids. A directory whose process still runs is left alone."""
    top = git_dir / SCRATCH
    pids: list[int] = []
    if not top.is_dir():
        return pids
    for d in sorted(top.iterdir()):
        pid_text = d.name.split("-", 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is not None and alive(pid):
            continue  # still running (or ourselves): not a leftover
        try:
            since = d.stat().st_mtime - 2  # about when that command's fast-import started
        except OSError:
            since = time.time()
        fi_pid = _read_int(d / FAST_IMPORT_PID)
        if fi_pid is not None:
            _wait_gone(fi_pid, b"fast-import")
        # fast-import's own leftovers: a crash report when it died of end-of-input (its writer
        # was killed), a partial pack when it was killed too. Only files made since it started.
        pack_dir = root / git.out(root, "rev-parse", "--git-path", "objects/pack").decode().strip()
        crash = [git_dir / f"fast_import_crash_{fi_pid}"] if fi_pid is not None else list(git_dir.glob("fast_import_crash_*"))
        for f in [*crash, *pack_dir.glob("tmp_pack_*"), *pack_dir.glob("tmp_idx_*")]:
            with contextlib.suppress(OSError):
                if f.stat().st_mtime >= since:
                    f.unlink()
        if pid is not None:
            ref = IMPORT_REF.format(pid=pid)
            git.out(root, "update-ref", "-d", ref, check=False)
            with contextlib.suppress(FileNotFoundError):
                (git_dir / f"{ref}.lock").unlink()
            if pid not in pids:
                pids.append(pid)
        _rmtree(d)
    with contextlib.suppress(OSError):
        top.rmdir()
    with contextlib.suppress(OSError):
        (git_dir / "refs" / "gopatch").rmdir()  # empty once our import ref is gone
    return pids


def _lock_files(root: Path) -> list[Path]:
    """The lock files of what write_tree changes: the index, HEAD and the branch HEAD names."""
    names = ["index.lock", "HEAD.lock"]
    branch = git.out(root, "symbolic-ref", "-q", "HEAD", check=False).decode().strip()
    if branch:
        names.append(f"{branch}.lock")
    out = git.out(root, "rev-parse", *(x for n in names for x in ("--git-path", n))).decode().splitlines()
    return [root / line for line in out if line]


def _clear_stale_lock(lock: Path, journal: Journal) -> None:
    """A git process killed together with gopatch leaves its lock file. One made after the
    interrupted operation started (and not released within a few seconds) is ours to remove;
    an older one belongs to someone else, and recovery stops rather than break it."""
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            mtime = lock.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime >= journal.started - 1:
            lock.unlink(missing_ok=True)
            return
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"{lock} exists: another git process is working in this repository.",
                                     hint="wait for it to finish (or delete the lock file if no git runs) "
                                          "and run the command again")
        time.sleep(0.1)


def _wait_for_orphans(root: Path) -> None:
    """A `kill -9` of gopatch alone leaves its git children running (they finish their input
    and exit); wait for them, so that none writes the index after we have repaired it."""
    for pid in _orphans(root):
        _wait_gone(pid, None)


def _orphans(root: Path) -> Iterator[int]:
    proc = Path("/proc")
    if not proc.is_dir():
        return
    me = str(os.getpid())
    real = os.path.realpath(root)
    for entry in proc.iterdir():
        if not entry.name.isdigit() or entry.name == me:
            continue
        try:
            if os.readlink(entry / "cwd") != real:
                continue
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and os.path.basename(cmdline[0]).startswith(b"git") and any(
                c in cmdline for c in _ORPHAN_COMMANDS):
            yield int(entry.name)


def _wait_gone(pid: int, needle: bytes | None) -> None:
    deadline = time.monotonic() + _ORPHAN_WAIT
    while time.monotonic() < deadline:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
        except OSError:
            if not Path("/proc").is_dir() and alive(pid):
                time.sleep(0.05)
                continue
            return
        if state == b"Z" or (needle is not None and needle not in cmdline):
            return  # a zombie (its parent will reap it) or a reused pid
        time.sleep(0.05)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def open_tree(path: Path, *, log: Callable[[str], None] = log_stderr) -> GoTree:
    """Open ``path`` as a Go source git tree or raise EnvironmentProblem saying what is missing.

    Every command opens its tree here, so this is where an apply or revert that was killed
    half-way is finished or undone (``recover`` above), before anything reads the tree;
    ``log`` gets the one line that says which."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise EnvironmentProblem(
            f"{path} does not exist.", hint="run `gopatch checkout` first, or pass --dir to an existing Go tree"
        )
    if not is_go_source_tree(path) and pending(path / ".git"):
        recover(path, path / ".git", log=log)  # a killed patch that deleted VERSION...
    if not is_go_source_tree(path):
        missing = [p for p in ("src/make.bash", "VERSION") if not (path / p).is_file()]
        raise EnvironmentProblem(
            f"{path} is not a Go source tree: {' and '.join(missing)} missing.",
            hint="point --dir at a GOROOT source checkout (the directory holding src/ and VERSION)",
        )
    repo = git.open_repo(path)
    recover(path, Path(repo.git_dir), log=log)
    return GoTree(path=path, repo=repo)
