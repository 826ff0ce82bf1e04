"""A Go source tree that gopatch works on: a git work tree with a recorded *base* commit.

The base is the commit the patch series sits on. ``gopatch checkout`` records it; on a tree that
gopatch did not check out (a user's own GOROOT clone) the HEAD found on first use becomes the
base. It is kept in the repository's own git config (``gopatch.base``), so it travels with the
tree and needs no side file that could get out of step with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git

from .errors import EnvironmentProblem
from .patches import journal

CONFIG_SECTION = "gopatch"


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


def open_tree(path: Path, *, log: Callable[[str], None] = log_stderr) -> GoTree:
    """Open ``path`` as a Go source git tree or raise EnvironmentProblem saying what is missing.

    Every command opens its tree here, so this is where an apply or revert that was killed
    half-way is finished or undone (pipeline/patches/journal.py), before anything reads the tree;
    ``log`` gets the one line that says which."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise EnvironmentProblem(
            f"{path} does not exist.", hint="run `gopatch checkout` first, or pass --dir to an existing Go tree"
        )
    if not is_go_source_tree(path) and journal.pending(path / ".git"):
        journal.recover(path, path / ".git", log=log)  # a killed patch that deleted VERSION...
    if not is_go_source_tree(path):
        missing = [p for p in ("src/make.bash", "VERSION") if not (path / p).is_file()]
        raise EnvironmentProblem(
            f"{path} is not a Go source tree: {' and '.join(missing)} missing.",
            hint="point --dir at a GOROOT source checkout (the directory holding src/ and VERSION)",
        )
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
    journal.recover(path, Path(repo.git_dir), log=log)
    return GoTree(path=path, repo=repo)
