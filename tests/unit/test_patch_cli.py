"""gopatch list/apply/revert/status/extract as a user runs them: real processes, exit codes,
stdout (JSON) versus stderr (progress, errors), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gittrees import (
    BASE_FILES,
    diff_of,
    git,
    make_tree,
    patch_text,
    snapshot,
    write_series,
)

PROC = "src/runtime/proc.go"


def gopatch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def clean_error(proc, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for n in needles:
        assert n in proc.stderr, proc.stderr


@pytest.fixture
def work(tmp_path):
    """A checkout at ./goroot and the series at ./patches/go1.27, where build.cfg defaults look."""
    tree = make_tree(tmp_path / "goroot")
    d = diff_of(tree.path, {PROC: BASE_FILES[PROC].replace(b"line 10\n", b"line 10 handoffp\n")})
    write_series(tmp_path / "patches" / "go1.27", {"handoffp": patch_text(d, subject="runtime: handoffp")})
    return tmp_path


def test_apply_handoffp_exactly_like_that(work):
    proc = gopatch(work, "apply", "handoffp")
    assert proc.returncode == 0, proc.stderr
    assert "applied handoffp" in proc.stderr
    assert b"line 10 handoffp" in (work / "goroot" / PROC).read_bytes()
    again = gopatch(work, "apply", "handoffp")
    assert again.returncode == 0 and "already applied" in again.stderr


def test_list_status_json_and_revert(work):
    listed = json.loads(gopatch(work, "list", "--json").stdout)
    assert [p["name"] for p in listed["patches"]] == ["handoffp"]
    assert listed["patches"][0]["touches"] == ["runtime.handoffp"]
    text = gopatch(work, "list")
    assert "handoffp" in text.stdout and "runtime: handoffp" in text.stdout

    st = json.loads(gopatch(work, "status", "--json").stdout)
    assert [(p["name"], p["state"]) for p in st["patches"]] == [("handoffp", "applies")]
    applied = json.loads(gopatch(work, "apply", "--all", "--json").stdout)
    assert applied["patches"][0]["action"] == "applied" and len(applied["patches"][0]["commit"]) == 40
    st = json.loads(gopatch(work, "status", "--json").stdout)
    assert st["patches"][0]["state"] == "applied"
    rev = gopatch(work, "revert", "--all", "--json")
    assert rev.returncode == 0 and json.loads(rev.stdout)["patches"][0]["action"] == "reverted"
    assert (work / "goroot" / PROC).read_bytes() == BASE_FILES[PROC]


def test_dry_run_changes_nothing(work):
    before = snapshot(work / "goroot")
    proc = gopatch(work, "apply", "--all", "--dry-run")
    assert proc.returncode == 0 and "would-apply: handoffp" in proc.stderr
    assert snapshot(work / "goroot") == before


def test_does_not_apply_is_exit_1_with_the_hunk(work):
    (work / "goroot" / PROC).write_bytes(BASE_FILES[PROC].replace(b"line 9\n", b"line nine\n"))
    git(work / "goroot", "commit", "-qam", "edit")
    before = snapshot(work / "goroot")
    proc = gopatch(work, "apply", "handoffp")
    clean_error(proc, 1, "patch handoffp", "src/runtime/proc.go", "@@ -7,7 +7,7 @@", "- line 9", "+ line nine")
    assert snapshot(work / "goroot") == before


def test_malformed_patch_is_exit_2_naming_file_and_line(work):
    p = work / "patches" / "go1.27" / "handoffp.patch"
    good = p.read_bytes()
    p.write_bytes(good.replace(b"Touches: runtime.handoffp\n", b""))
    clean_error(gopatch(work, "apply", "handoffp"), 2, f"{p}:", "Touches")
    p.write_bytes(good)
    (work / "patches" / "go1.27" / "series").write_text("handoffp.patch\nmissing.patch\n")
    clean_error(gopatch(work, "list"), 2, "series:2", "missing.patch does not exist")


def test_usage_errors_are_exit_2(work):
    clean_error(gopatch(work, "apply"), 2, "exactly one")
    clean_error(gopatch(work, "apply", "handofp"), 2, "did you mean handoffp")
    clean_error(gopatch(work, "apply", "handoffp", "--all"), 2, "exactly one")
    clean_error(gopatch(work, "revert", "handoffp"), 2, "not applied")


def test_dirty_tree_is_exit_3_unless_forced(work):
    (work / "goroot" / "notes.txt").write_text("mine\n")
    clean_error(gopatch(work, "apply", "handoffp"), 3, "uncommitted changes", "--force")
    proc = gopatch(work, "apply", "handoffp", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (work / "goroot" / "notes.txt").read_text() == "mine\n"


def test_not_a_go_tree_is_exit_3(work, tmp_path):
    clean_error(gopatch(work, "apply", "handoffp", "--dir", str(tmp_path / "nowhere")), 3, "does not exist")


def test_apply_file_outside_the_series(work):
    d = diff_of(work / "goroot", {"src/os/file.go": b"package os\n"})
    (work / "upstream.diff").write_bytes(d)
    proc = gopatch(work, "apply", "--file", str(work / "upstream.diff"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["patches"][0]["name"] == "upstream"
    assert (work / "goroot" / "src/os/file.go").read_bytes() == b"package os\n"


def test_extract_via_cli(work):
    assert gopatch(work, "apply", "--all").returncode == 0
    series = work / "patches" / "go1.27"
    before = (series / "handoffp.patch").read_bytes()
    proc = gopatch(work, "extract", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["patches"][0]["action"] == "unchanged"
    assert (series / "handoffp.patch").read_bytes() == before


def test_help_documents_examples_and_exit_codes(work):
    for cmd in ("list", "apply", "revert", "status", "extract"):
        proc = gopatch(work, cmd, "--help")
        assert proc.returncode == 0 and "Example" in proc.stdout, cmd
    text = gopatch(work, "apply", "--help").stdout
    for flag in ("--all", "--file", "--dir", "--series", "--dry-run", "--json", "--force", "Exit 1"):
        assert flag in text
