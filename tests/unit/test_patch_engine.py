"""The patch engine on real git trees: atomic apply/revert, status, extract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gittrees import (
    BASE_FILES,
    diff_of,
    git,
    make_tree,
    patch_text,
    quiet_tree,
    snapshot,
    write_series,
)

from pipeline import git as gitlayer
from pipeline.errors import (
    EnvironmentProblem,
    PatchDoesNotApply,
    PatchFormatError,
    TreeNotClean,
    UsageError,
)
from pipeline.patches import operations as engine
from pipeline.patches import worktree
from pipeline.patches.commits import chain
from pipeline.patches.series import load_series, parse_patch_file

PROC = "src/runtime/proc.go"


def proc_with(**repl: str) -> bytes:
    lines = BASE_FILES[PROC].decode().splitlines(keepends=True)
    for k, v in repl.items():
        i = int(k[1:]) - 1
        lines[i] = v
    return "".join(lines).encode()


@pytest.fixture
def setup(tmp_path):
    """A tree and a series of two independent patches made by git from real edits."""
    tree = make_tree(tmp_path / "goroot")
    a = diff_of(tree.path, {
        PROC: proc_with(l10="line 10 changed\n"),
        "src/runtime/crlf.go": b"package runtime\r\n// a\rb inside, patched\r\nfunc f() {}\r\n",
        "src/runtime/latin1.go": BASE_FILES["src/runtime/latin1.go"] + b"// \xe9t\xe9\n",
        "src/runtime/nonl.go": b"package runtime\n\nvar x = 2\n",
        "src/runtime/new.go": b"package runtime\n// new file\n",
        "src/os/file.go": None,
    }, modes={"VERSION": 0o755})
    b = diff_of(tree.path, {"src/os/other.go": b"package os\n"})
    series = write_series(tmp_path / "series", {
        "handoffp": patch_text(a, subject="runtime: count handoffp outcomes"),
        "osother": patch_text(b, subject="os: add other.go", touches="os.Other"),
    })
    return tree, series


def test_apply_then_revert_gives_back_every_byte(setup):
    tree, series = setup
    before = snapshot(tree.path)
    patches = load_series(series)
    out = engine.apply_patches(tree, patches)
    assert [o.action for o in out] == ["applied", "applied"]
    root = tree.path
    assert (root / PROC).read_bytes() == proc_with(l10="line 10 changed\n")
    assert (root / "src/runtime/crlf.go").read_bytes().endswith(b"// a\rb inside, patched\r\nfunc f() {}\r\n")
    assert (root / "src/runtime/latin1.go").read_bytes().endswith(b"// \xe9t\xe9\n")
    assert (root / "src/runtime/nonl.go").read_bytes() == b"package runtime\n\nvar x = 2\n"
    assert not (root / "src/os/file.go").exists()
    assert os.stat(root / "VERSION").st_mode & 0o111
    assert not tree.is_dirty()
    log = git(root, "log", "--format=%s%n%b%x00", "main").decode()
    assert "runtime: count handoffp outcomes" in log and "Gopatch-Patch: handoffp" in log
    assert "Touches: runtime.handoffp" in log
    assert len(chain(tree)) == 2

    engine.revert_patches(tree, None)
    assert snapshot(tree.path)["files"] == before["files"]
    assert snapshot(tree.path)["head"] == before["head"]
    assert not tree.is_dirty()


def test_commits_are_deterministic(tmp_path, setup):
    tree, series = setup
    other = make_tree(tmp_path / "other")
    sha1 = engine.apply_patches(tree, load_series(series))[-1].commit
    sha2 = engine.apply_patches(other, load_series(series))[-1].commit
    assert sha1 == sha2
    engine.revert_patches(tree, ["osother", "handoffp"])
    assert engine.apply_patches(tree, load_series(series))[-1].commit == sha1


def test_already_applied_is_skipped_never_applied_twice(setup):
    tree, series = setup
    patches = load_series(series)
    engine.apply_patches(tree, patches[:1])
    head = tree.repo.head.commit.hexsha
    out = engine.apply_patches(tree, patches[:1])
    assert out[0].action == "committed" and tree.repo.head.commit.hexsha == head
    # The same change made by hand (no gopatch commit): the reverse applies, so it is skipped.
    engine.revert_patches(tree, ["handoffp"])
    git(tree.path, "apply", str(series / "handoffp.patch"))
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "by hand")
    head = tree.repo.head.commit.hexsha
    notes = []
    out = engine.apply_patches(tree, patches[:1], log=notes.append)
    assert out[0].action == "already-applied"
    assert any("already in the tree" in n for n in notes)
    assert tree.repo.head.commit.hexsha == head


def test_offset_is_applied_and_reported(setup):
    tree, series = setup
    (tree.path / PROC).write_bytes(b"new 1\nnew 2\nnew 3\n" + BASE_FILES[PROC])
    git(tree.path, "commit", "-qam", "shift")
    notes: list[str] = []
    out = engine.apply_patches(tree, load_series(series)[:1], log=notes.append)
    assert out[0].action == "applied"
    assert any("src/runtime/proc.go" in n and "offset +3" in n for n in notes), notes
    assert b"line 10 changed\n" in (tree.path / PROC).read_bytes()


def test_misfit_names_patch_file_hunk_and_shows_lines(setup):
    tree, series = setup
    (tree.path / PROC).write_bytes(proc_with(l9="line nine\n"))
    git(tree.path, "commit", "-qam", "local edit")
    (tree.path / "untracked.txt").write_bytes(b"keep me")
    before = snapshot(tree.path)
    with pytest.raises(PatchDoesNotApply) as exc:
        engine.apply_patches(tree, load_series(series), force=True)
    msg = exc.value.message
    assert "patch handoffp" in msg and "src/runtime/proc.go" in msg and "@@ -7,7 +7,7 @@" in msg
    assert "  - line 9" in msg and "  + line nine" in msg and "nothing was changed" in msg
    assert snapshot(tree.path) == before


def test_fuzz_only_when_configured(setup):
    tree, series = setup
    (tree.path / PROC).write_bytes(proc_with(l7="line seven\n"))  # first context line of the hunk
    git(tree.path, "commit", "-qam", "edge edit")
    patches = load_series(series)[:1]
    with pytest.raises(PatchDoesNotApply):
        engine.apply_patches(tree, patches, fuzz=0)
    notes: list[str] = []
    engine.apply_patches(tree, patches, fuzz=1, log=notes.append)
    assert any("fuzz 1" in n for n in notes)
    assert b"line seven\nline 8\nline 9\nline 10 changed\n" in (tree.path / PROC).read_bytes()


def test_several_patches_all_or_nothing(setup, tmp_path):
    tree, series = setup
    bad = diff_of(tree.path, {PROC: proc_with(l30="line 30 changed\n")})
    bad = bad.replace(b" line 28\n", b" line 28 (not in the tree)\n")
    write_series(series, {"handoffp": (series / "handoffp.patch").read_bytes(),
                          "osother": (series / "osother.patch").read_bytes(), "bad": patch_text(bad)})
    before = snapshot(tree.path)
    with pytest.raises(PatchDoesNotApply, match="patch bad"):
        engine.apply_patches(tree, load_series(series))
    assert snapshot(tree.path) == before


@pytest.mark.parametrize("fail_at", [1, 3, 6])
def test_fault_mid_write_restores_every_byte(setup, monkeypatch, fail_at):
    tree, series = setup
    (tree.path / "untracked.txt").write_bytes(b"keep me")
    before = snapshot(tree.path)
    real = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(worktree.os, "replace", flaky)
    with pytest.raises(EnvironmentProblem, match="restored"):
        engine.apply_patches(tree, load_series(series), force=True)
    monkeypatch.undo()
    assert snapshot(tree.path) == before


def test_fault_when_moving_head_restores_tree_and_index(setup, monkeypatch):
    tree, series = setup
    before = snapshot(tree.path)
    real = gitlayer.out

    def failing(t, *args, **kw):
        if args and args[0] == "update-ref" and args[1] == "-m":
            raise EnvironmentProblem("simulated: cannot lock ref HEAD")
        return real(t, *args, **kw)

    monkeypatch.setattr(gitlayer, "out", failing)
    with pytest.raises(EnvironmentProblem, match="simulated"):
        engine.apply_patches(tree, load_series(series))
    monkeypatch.undo()
    assert snapshot(tree.path) == before


def test_dirty_tree_needs_force_and_local_changes_are_never_overwritten(setup):
    tree, series = setup
    (tree.path / "src/os/file.go").write_bytes(b"local edit\n")
    patches = load_series(series)
    with pytest.raises(TreeNotClean) as exc:
        engine.apply_patches(tree, patches)
    assert exc.value.exit_code == 3 and "src/os/file.go" in exc.value.message
    with pytest.raises(TreeNotClean, match=r"src/os/file\.go"):
        engine.apply_patches(tree, patches[:1], force=True)  # handoffp deletes that file
    out = engine.apply_patches(tree, patches[1:], force=True)  # osother does not touch it
    assert out[0].action == "applied"
    assert (tree.path / "src/os/file.go").read_bytes() == b"local edit\n"


def test_dry_run_changes_nothing(setup):
    tree, series = setup
    before = snapshot(tree.path)
    out = engine.apply_patches(tree, load_series(series), dry_run=True)
    assert [o.action for o in out] == ["would-apply", "would-apply"]
    assert snapshot(tree.path) == before


def test_symlink_in_the_tree_is_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.go").write_bytes(b"outside\n")
    tree = make_tree(tmp_path / "goroot")
    (tree.path / "src" / "evil").symlink_to(outside)
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "symlink")
    diff = (b"diff --git a/src/evil/x.go b/src/evil/x.go\n--- a/src/evil/x.go\n+++ b/src/evil/x.go\n"
            b"@@ -1 +1 @@\n-outside\n+owned\n")
    p = tmp_path / "evil.patch"
    p.write_bytes(diff)
    before = snapshot(tree.path)
    with pytest.raises(PatchDoesNotApply, match="symlink"):
        engine.apply_patches(tree, [parse_patch_file(p, strict=False)])
    assert (outside / "x.go").read_bytes() == b"outside\n"
    assert snapshot(tree.path) == before


def test_rename_with_changes(setup, tmp_path):
    tree, _ = setup
    diff = (b"diff --git a/src/os/file.go b/src/os/moved.go\nsimilarity index 90%\n"
            b"rename from src/os/file.go\nrename to src/os/moved.go\n"
            b"--- a/src/os/file.go\n+++ b/src/os/moved.go\n@@ -1,3 +1,3 @@\n-package os\n+package moved\n \n // os 0\n")
    p = tmp_path / "rename.patch"
    p.write_bytes(diff)
    engine.apply_patches(tree, [parse_patch_file(p, strict=False)])
    assert not (tree.path / "src/os/file.go").exists()
    assert (tree.path / "src/os/moved.go").read_bytes().startswith(b"package moved\n\n// os 0\n")
    assert not tree.is_dirty()


def test_revert_in_the_middle_rebuilds_later_commits(setup):
    tree, series = setup
    engine.apply_patches(tree, load_series(series))
    git(tree.path, "commit", "-q", "--allow-empty", "-m", "user commit\n\nTouches: os.X")
    (tree.path / "src/os/later.go").write_bytes(b"package os // later\n")
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "later\n\nTouches: os.Later")
    engine.revert_patches(tree, ["handoffp"])
    subjects = [c.subject for c in chain(tree)]
    assert subjects == ["os: add other.go", "user commit", "later"]
    assert (tree.path / PROC).read_bytes() == BASE_FILES[PROC]
    assert (tree.path / "src/os/later.go").exists() and (tree.path / "src/os/other.go").exists()
    assert not tree.is_dirty()


def test_revert_refuses_when_a_later_commit_needs_the_patch(setup):
    tree, series = setup
    engine.apply_patches(tree, load_series(series)[:1])
    (tree.path / "src/runtime/new.go").write_bytes(b"package runtime\n// new file, edited\n")
    git(tree.path, "commit", "-qam", "edit new.go\n\nTouches: runtime.x")
    before = snapshot(tree.path)
    with pytest.raises(PatchDoesNotApply, match="depends on a patch being reverted"):
        engine.revert_patches(tree, ["handoffp"])
    assert snapshot(tree.path) == before
    with pytest.raises(UsageError, match="not applied"):
        engine.revert_patches(tree, ["osother"])


def test_status_is_derived_from_the_tree(setup):
    tree, series = setup
    engine.apply_patches(tree, load_series(series)[:1])
    rows, extra = engine.status(tree, load_series(series))
    assert [(r.name, r.state) for r in rows] == [("handoffp", "applied"), ("osother", "applies")]
    assert not (tree.path / "src/os").exists()  # handoffp deleted its only file: the dir goes, as with git
    (tree.path / "src/os").mkdir()
    (tree.path / "src/os/other.go").write_bytes(b"in the way\n")
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "conflicting\n\nTouches: os.Y")
    rows, extra = engine.status(tree, load_series(series))
    assert rows[1].state == "conflicts" and "already exists" in rows[1].detail
    assert [c.subject for c in extra] == ["conflicting"]


def test_extract_is_deterministic_and_keeps_unchanged_files(setup):
    tree, series = setup
    engine.apply_patches(tree, load_series(series))
    files_before = {p.name: p.read_bytes() for p in series.iterdir()}
    res = engine.extract(tree, series, load_series(series))
    assert [r.action for r in res] == ["unchanged", "unchanged"]
    assert {p.name: p.read_bytes() for p in series.iterdir()} == files_before

    (tree.path / "src/os/extra.go").write_bytes(b"package os // extra\n")
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "os: add extra\n\nMore text.\n\nTouches: os.Extra")
    res = engine.extract(tree, series, load_series(series))
    assert [r.action for r in res] == ["unchanged", "unchanged", "new"]
    new = series / "os-add-extra.patch"
    data = new.read_bytes()
    assert data.startswith(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n")
    assert b"\nindex " not in data and b"Date:" not in data
    assert (series / "series").read_text().splitlines()[-1] == "os-add-extra.patch"
    p = load_series(series)[-1]
    assert (p.name, p.subject, p.touches, p.description) == ("os-add-extra", "os: add extra", ("os.Extra",), "More text.")
    # Again: nothing changes, byte for byte; and after revert + re-apply the same files come out.
    snap = {q.name: q.read_bytes() for q in series.iterdir()}
    assert {r.action for r in engine.extract(tree, series, load_series(series))} == {"unchanged"}
    engine.revert_patches(tree, None)
    engine.apply_patches(tree, load_series(series))
    assert {r.action for r in engine.extract(tree, series, load_series(series))} == {"unchanged"}
    assert {q.name: q.read_bytes() for q in series.iterdir()} == snap


def test_extract_rewrites_a_changed_patch_and_refuses_commits_without_touches(setup):
    tree, series = setup
    engine.apply_patches(tree, load_series(series)[:1])
    git(tree.path, "commit", "-q", "--amend", "-m", "runtime: reworded\n\nTouches: runtime.handoffp\n\n"
        "Gopatch-Patch: handoffp")
    res = engine.extract(tree, series, load_series(series))
    assert res[0].action == "updated"
    assert parse_patch_file(series / "handoffp.patch").subject == "runtime: reworded"
    (tree.path / "x.txt").write_bytes(b"x\n")
    git(tree.path, "add", "-A")
    git(tree.path, "commit", "-qm", "no trailer")
    snap = {q.name: q.read_bytes() for q in series.iterdir()}
    with pytest.raises(PatchFormatError, match="Touches"):
        engine.extract(tree, series, load_series(series))
    assert {q.name: q.read_bytes() for q in series.iterdir()} == snap


def test_user_clone_without_recorded_base_uses_head(tmp_path, setup):
    _, series = setup
    tree = make_tree(tmp_path / "clone")
    head = tree.repo.head.commit.hexsha
    fresh = quiet_tree(tree.path)
    engine.apply_patches(fresh, load_series(series))
    assert fresh.base_commit == head
    assert Path(tree.path / "src/os/other.go").exists()


def test_odd_bytes_in_author_and_subject_still_round_trip(setup, tmp_path):
    tree, _ = setup
    before = snapshot(tree.path)
    diff = diff_of(tree.path, {PROC: proc_with(l3="three\n")})
    p = tmp_path / "odd.patch"
    p.write_bytes(b"From: Ja\x01ne <ja\x02ne@x>\nSubject: [PATCH] odd \x01 subject\n\nbody\n\nTouches: a.b\n---\n" + diff)
    out = engine.apply_patches(tree, [parse_patch_file(p)])
    assert out[0].action == "applied"
    (c,) = chain(tree)
    assert c.name == "odd" and c.author == "Jane <jane@x>"
    engine.revert_patches(tree, ["odd"])
    assert snapshot(tree.path)["files"] == before["files"]
