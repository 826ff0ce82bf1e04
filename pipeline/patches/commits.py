"""The commit chain on top of a tree's base: reading it (which patches are applied) and writing
new commits, on top of the git layer (pipeline/git.py).

Each applied patch is one commit on top of the recorded base commit, carrying a
``Gopatch-Patch: <name>`` trailer. ``applied`` is the one answer to "which patches does this
tree carry?": status, apply, revert and extract read it, and so do build and release
(``pipeline.build.run.source_info``), so they cannot disagree about a commit.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import git, journal
from ..errors import EnvironmentProblem
from ..git import GoTree
from .overlay import Repository, State
from .series import NAME_TRAILER_RE, Patch, trailer_name

_INDEX_LINE_RE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+( [0-7]+)?\n", re.MULTILINE)


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


# --------------------------------------------------------------------------------------------
# Reading the chain
# --------------------------------------------------------------------------------------------


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
    head = git.head(tree.path)
    base = base_of(tree, head)
    if head == base:
        return []
    if not git.is_ancestor(tree.path, base, head):
        raise EnvironmentProblem(
            f"HEAD ({head[:12]}) is not on top of the recorded base commit {base[:12]} of {tree.path}.",
            hint="reset the tree to its base (git reset --hard $(git config gopatch.base)) or record a "
                 "new one with git config gopatch.base <commit>")
    shas = git.out(tree.path, "rev-list", "--reverse", "--parents", f"{base}..{head}").decode().split("\n")
    listing = [line.split() for line in shas if line.strip()]
    commits = []
    for (sha, *parents), obj in zip(listing, git.read_objects(tree.path, [x[0] for x in listing]), strict=True):
        if len(parents) != 1:
            raise EnvironmentProblem(f"commit {sha[:12]} on top of the base is a merge; gopatch needs a "
                                     "linear series of commits.")
        raw = git.parse_commit(obj)
        commits.append(ChainCommit(sha, parents[0], trailer_name(raw.message), raw.author, raw.author_date,
                                   raw.committer, raw.committer_date, raw.message.rstrip("\n") + "\n"))
    return commits


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
class Applied:
    commit: ChainCommit
    name: str | None  # the series patch it carries; None for a commit that is no patch


def applied(tree: GoTree, patches: Sequence[Patch] = ()) -> list[Applied]:
    """Which patches the tree carries: every commit from the base to HEAD, oldest first, with the
    series patch it is. A commit names its patch in its ``Gopatch-Patch`` trailer; given the
    series, a commit without one (made by hand, or by ``git am`` of a patch file) is named by its
    message, as status has always named it."""
    commits = chain(tree)
    named = name_commits(commits, patches)
    return [Applied(c, named.get(c.sha)) for c in commits]


def commit_date(tree: Repository, sha: str) -> str:
    """The raw committer date of ``sha``: the fixed date of the commits gopatch makes on it, so
    that applying the same series to the same base gives the same commit hashes every time."""
    return git.out(tree.path, "log", "-1", "--date=raw", "--format=%cd", sha).decode().strip()


def commit_diff(tree: Repository, parent: str, sha: str) -> bytes:
    """The diff of one commit, with every option that would change the text pinned, so that it
    is the same on every machine (user config can set noprefix, algorithm, context...)."""
    return git.out(tree.path, "-c", "core.quotePath=true", "-c", "diff.suppressBlankEmpty=false",
                   "-c", "diff.relative=false", "diff-tree", "-p", "--no-color", "--no-ext-diff",
                   "--no-textconv", "--no-renames", "--indent-heuristic", "--diff-algorithm=myers", "-U3",
                   "--src-prefix=a/", "--dst-prefix=b/", parent, sha, "--")


def strip_index_lines(diff: bytes) -> bytes:
    # Only header lines can start with "index " (hunk lines start with ' ', '+', '-' or '\').
    return _INDEX_LINE_RE.sub(b"", diff)


def body_of(message: str) -> str:
    """Commit message -> the patch description + trailers (subject and name trailer removed)."""
    lines = message.rstrip("\n").split("\n")
    body = [ln for ln in lines[1:] if not NAME_TRAILER_RE.match(ln)]
    return "\n".join(body).strip("\n")


# --------------------------------------------------------------------------------------------
# Writing commits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCommit:
    message: str
    author: str
    author_date: str
    committer: str
    committer_date: str
    changes: dict[str, State]


def git_dir(tree: Repository) -> Path:
    repo = getattr(tree, "repo", None)
    if repo is not None:
        return Path(repo.git_dir)
    return git.git_dir_of(tree.path)


class CommitWriter:
    """Create commits as a chain on ``parent`` with one `git fast-import` running in the
    background (no ref, index or work tree is touched), so that packing the new blobs overlaps
    with writing the work tree; ``result()`` waits and returns the hashes."""

    def __init__(self, tree: Repository, parent: str | None, commits: Sequence[NewCommit]) -> None:
        self.tree = tree
        self.count = len(commits)
        self.ref = journal.IMPORT_REF.format(pid=os.getpid())
        # Inside the repository, not /tmp: after a kill -9 the next command finds and removes it
        # (pipeline/journal.py), together with the ref and fast-import's crash report.
        self._tmp = journal.scratch_dir(git_dir(tree))
        self.marks = self._tmp / "marks"
        self._err = open(self._tmp / "stderr", "w+b")  # noqa: SIM115 - closed in result()
        self._fi: git.FastImport | None = None
        self._feed_error: BaseException | None = None
        self._cleaned = False
        if not commits:
            return
        chunks = self._stream(parent, commits)
        # No deltas and light compression: fast-import's defaults spend ~3 s of CPU packing the
        # 2,700 new blobs of a release-sized diff, ~1.3 s this way; `git gc` repacks later.
        try:
            self._fi = git.FastImport(tree.path, self._err, config=["pack.compression=1"],
                                      options=[f"--export-marks={self.marks}"])
        except git.GitError:
            self._cleanup()
            raise
        # Recovery waits for it and removes its crash report (.git/fast_import_crash_<pid>).
        (self._tmp / journal.FAST_IMPORT_PID).write_text(f"{self._fi.pid}\n")
        self._feeder = threading.Thread(target=self._feed, args=(chunks,), daemon=True)
        self._feeder.start()

    def _stream(self, parent: str | None, commits: Sequence[NewCommit]) -> list[bytes]:
        chunks: list[bytes] = []
        for i, c in enumerate(commits, 1):
            chunks.append(
                f"commit {self.ref}\nmark :{i}\nauthor {git.ident(c.author)} {c.author_date}\n"
                f"committer {git.ident(c.committer)} {c.committer_date}\n".encode()
                + git.fi_data(c.message.encode())
                # No parent: the first commit is a root commit (a scratch repository's first).
                + (f"from :{i - 1}\n" if i > 1 else f"from {parent}\n" if parent else "").encode()
            )
            for path in sorted(c.changes):
                st = c.changes[path]
                if st is None:
                    chunks.append(b"D " + git.fi_path(path) + b"\n")
                else:
                    chunks.append(b"M " + st.mode.encode() + b" inline " + git.fi_path(path) + b"\n"
                                  + git.fi_data(st.data))
        chunks.append(b"done\n")
        return chunks

    def _feed(self, chunks: list[bytes]) -> None:
        assert self._fi is not None
        try:
            for chunk in chunks:
                self._fi.stdin.write(chunk)
            self._fi.stdin.close()
        except BaseException as exc:  # a broken pipe: fast-import died and says why on stderr
            self._feed_error = exc

    def result(self) -> list[str]:
        if self._fi is None:
            self._cleanup()
            return []
        try:
            self._feeder.join()
            self._fi.finish(failed=self._feed_error is not None)
            shas = dict(line.split() for line in self.marks.read_text().splitlines())
            return [shas[f":{i}"] for i in range(1, self.count + 1)]
        finally:
            self._cleanup()

    def abort(self) -> None:
        if self._fi is not None:
            self._fi.kill()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        if self._fi is not None:
            git.run(self.tree.path, "update-ref", "-d", self.ref, check=False)
            with contextlib.suppress(OSError):
                self._fi.stdin.close()
        self._err.close()
        journal.drop_scratch(self._tmp)


def write_commits(tree: Repository, parent: str | None, commits: Sequence[NewCommit]) -> list[str]:
    """Create ``commits`` as a chain on ``parent`` and return their hashes (see CommitWriter)."""
    return CommitWriter(tree, parent, commits).result()
