"""`gopatch checkout` as a user runs it: a real process, exit codes, stdout/stderr split, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest


def gopatch(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env["GOPATCH_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_help_teaches_with_examples(tmp_path, unit_cache):
    proc = gopatch(tmp_path, unit_cache, "checkout", "--help")
    assert proc.returncode == 0
    for word in ("--ref", "--source", "--kind", "--dir", "--force", "--json", "--dry-run", "Examples",
                 "gopatch checkout --source"):
        assert word in proc.stdout


def test_checkout_json_then_noop(tmp_path, make_go_tree, unit_cache):
    dist = make_go_tree(tmp_path / "dist")
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", str(dist), "--json")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)  # stdout holds only the JSON document
    assert set(first) >= {"dir", "ref", "commit", "kind", "source", "cached", "seconds"}
    assert first["dir"] == str(tmp_path / "goroot")  # [source] dir default, relative to the cwd
    assert (first["ref"], first["kind"], first["cached"], first["action"]) == ("go1.27.3", "dist", False, "created")
    assert "importing go1.27.3" in proc.stderr and "checking out" in proc.stderr

    again = gopatch(tmp_path, unit_cache, "checkout", "--source", str(dist), "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert (second["commit"], second["cached"], second["action"]) == (first["commit"], True, "unchanged")
    assert "importing" not in again.stderr

    human = gopatch(tmp_path, unit_cache, "checkout", "--source", str(dist))
    assert human.returncode == 0 and "already holds go1.27.3" in human.stdout


def test_dry_run_writes_nothing(tmp_path, make_go_tree, unit_cache):
    dist = make_go_tree(tmp_path / "dist")
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", str(dist), "--dir", "w", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["action"] == "would-create"
    assert not (tmp_path / "w").exists() and not (unit_cache / "git").exists()


def test_other_ref_without_force_is_refused(tmp_path, make_go_tree, unit_cache):
    old = make_go_tree(tmp_path / "old", version="go1.27.2")
    new = make_go_tree(tmp_path / "new")
    assert gopatch(tmp_path, unit_cache, "checkout", "--source", str(old), "--ref", "go1.27.2").returncode == 0
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", str(new))
    assert_clean_error(proc, 3, "already holds a checkout of go1.27.2", "--force")
    forced = gopatch(tmp_path, unit_cache, "checkout", "--source", str(new), "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["action"] == "replaced"


def test_not_a_go_tree(tmp_path, unit_cache):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("hi\n")
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", str(tmp_path / "empty"), "--kind", "dist")
    assert_clean_error(proc, 3, "is not a Go source tree: src/make.bash and VERSION missing")
    assert not (tmp_path / "goroot").exists()


def test_tarball_without_make_bash(tmp_path, unit_cache):
    (tmp_path / "go").mkdir()
    (tmp_path / "go" / "VERSION").write_text("go1.27.3\n")
    with tarfile.open(tmp_path / "go.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "go", arcname="go")
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", "go.tar.gz")
    assert_clean_error(proc, 3, "not a Go source tarball: go/src/make.bash missing")
    assert not (tmp_path / "goroot").exists()


def test_missing_ref(tmp_path, go_upstream, unit_cache):
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", str(go_upstream.path), "--ref", "go1.27.9")
    assert_clean_error(proc, 3, "ref 'go1.27.9' does not exist", "Close matches: go1.27.3")
    assert not (tmp_path / "goroot").exists()


def test_unreachable_url(tmp_path, unit_cache):
    proc = gopatch(tmp_path, unit_cache, "checkout", "--source", "file:///nonexistent/go.git")
    assert_clean_error(proc, 3, "cannot reach the git source file:///nonexistent/go.git")
    assert not (tmp_path / "goroot").exists()


@pytest.mark.parametrize("args, needle", [
    (["--kind", "svn"], "'svn' is not one of: auto, git, tarball, dist"),
    (["--kind", "tarball"], "needs a path in [source] url"),
])
def test_usage_errors_exit_2(tmp_path, unit_cache, args, needle):
    proc = gopatch(tmp_path, unit_cache, "checkout", *args)
    assert_clean_error(proc, 2, needle)
