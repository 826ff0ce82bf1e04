"""Helpers for the patch engine tests: real git trees in tmp_path, real git-made diffs, and a
snapshot of everything a failed command must leave alone (files incl. untracked, index, HEAD)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git as gitpython

from pipeline.git import GoTree

FIXED = {"GIT_AUTHOR_NAME": "Base", "GIT_AUTHOR_EMAIL": "base@example.com", "GIT_AUTHOR_DATE": "1700000000 +0000",
         "GIT_COMMITTER_NAME": "Base", "GIT_COMMITTER_EMAIL": "base@example.com",
         "GIT_COMMITTER_DATE": "1700000000 +0000"}

BASE_FILES: dict[str, bytes] = {
    "VERSION": b"go1.27.3\ntime 2026-10-19T22:20:36Z\n",
    "src/runtime/proc.go": b"".join(b"line %d\n" % i for i in range(1, 41)),
    "src/runtime/crlf.go": b"package runtime\r\n// a\rb inside\r\nfunc f() {}\r\n",
    "src/runtime/latin1.go": b"// caf\xe9 \xff\xfe\n" * 5,
    "src/runtime/nonl.go": b"package runtime\n\nvar x = 1",
    "src/os/file.go": b"package os\n\n" + b"".join(b"// os %d\n" % i for i in range(20)),
}


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(cwd), *args], input=input, capture_output=True,
                          env={**os.environ, **FIXED})
    assert proc.returncode == 0, f"git {args}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def make_tree(path: Path, files: dict[str, bytes] | None = None) -> GoTree:
    """A small Go-like tree (src/make.bash, VERSION) committed with fixed identity and dates,
    configured byte-exact like the trees `gopatch checkout` makes."""
    path.mkdir(parents=True, exist_ok=True)
    for rel, data in {**BASE_FILES, **(files or {})}.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    mb = path / "src" / "make.bash"
    mb.write_bytes(b"#!/usr/bin/env bash\necho building\n")
    mb.chmod(0o755)
    git(path, "init", "-q", "-b", "main")
    (path / ".git" / "info").mkdir(exist_ok=True)
    (path / ".git" / "info" / "attributes").write_text("* -text\n")
    git(path, "config", "core.autocrlf", "false")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    return quiet_tree(path)


def quiet_tree(path: Path) -> GoTree:
    """A GoTree without open_tree's `head.is_valid()` check, which starts a persistent
    `git cat-file` process per Repo that pytest (filterwarnings = error) reports as a
    ResourceWarning whenever the garbage collector reaps the Repo before that process exited.
    The engine itself never starts one."""
    return GoTree(path=path.absolute(), repo=gitpython.Repo(path))


def diff_of(tree_path: Path, edits: dict[str, bytes | None], *, modes: dict[str, int] | None = None) -> bytes:
    """The git diff that ``edits`` (path -> new bytes, None = delete) make to the tree, made by
    git itself; the tree is left as it was."""
    for rel, data in edits.items():
        p = tree_path / rel
        if data is None:
            p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    for rel, mode in (modes or {}).items():
        (tree_path / rel).chmod(mode)
    git(tree_path, "add", "-A")
    out = git(tree_path, "diff", "--cached", "--no-renames", "--no-color", "--src-prefix=a/", "--dst-prefix=b/")
    git(tree_path, "reset", "-q", "--hard", "HEAD")
    git(tree_path, "clean", "-qfd")
    return out


def patch_text(diff: bytes, *, subject: str = "runtime: change things", touches: str = "runtime.handoffp",
               body: str = "Why the change is needed.", author: str = "Jane Doe <jane@example.com>") -> bytes:
    head = f"From: {author}\nSubject: [PATCH] {subject}\n\n{body}\n\nTouches: {touches}\n---\n"
    return head.encode() + diff


def write_series(series_dir: Path, patches: dict[str, bytes]) -> Path:
    series_dir.mkdir(parents=True, exist_ok=True)
    for name, data in patches.items():
        (series_dir / f"{name}.patch").write_bytes(data)
    (series_dir / "series").write_text("# test series\n" + "".join(f"{n}.patch\n" for n in patches))
    return series_dir


def snapshot(path: Path) -> dict[str, object]:
    """Every byte a command must not change when it fails: work tree files (tracked, untracked
    and ignored, with modes and symlinks), the index entries, HEAD and the refs."""
    files: dict[str, tuple[object, int]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        if ".git" in dirnames and Path(dirpath) == path:
            dirnames.remove(".git")
        for d in dirnames:
            p = Path(dirpath) / d
            files[p.relative_to(path).as_posix() + "/"] = ("dir", 0)
        for f in filenames:
            p = Path(dirpath) / f
            rel = p.relative_to(path).as_posix()
            if p.is_symlink():
                files[rel] = (os.readlink(p), 0)
            else:
                files[rel] = (p.read_bytes(), p.stat().st_mode & 0o777)
    return {
        "files": files,
        "index": git(path, "ls-files", "-s", "-z"),
        "head": git(path, "rev-parse", "HEAD"),
        "refs": git(path, "for-each-ref"),
        "status": git(path, "status", "--porcelain", "-z", "--untracked-files=all"),
    }
