"""Run every folder of tests/unit/scenarios (see its README for how a folder is read)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gittrees import git, quiet_tree, snapshot

from pipeline.errors import GopatchError
from pipeline.patches import operations as engine
from pipeline.patches.series import parse_patch_file

SCENARIOS = Path(__file__).parent / "scenarios"
ADDED = {"VERSION": b"go1.27.3\ntime 2026-10-19T22:20:36Z\n", "src/make.bash": b"#!/usr/bin/env bash\n"}


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def needles(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.exists() else []


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir()))
def test_scenario(tmp_path, name):
    folder = SCENARIOS / name
    root = tmp_path / "goroot"
    shutil.copytree(folder / "before", root)
    for rel, data in ADDED.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "src" / "make.bash").chmod(0o755)
    git(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "attributes").write_text("* -text\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "before")
    tree = quiet_tree(root)
    before = snapshot(root)
    notes: list[str] = []
    after = folder / "after"
    if not after.exists():
        with pytest.raises(GopatchError) as exc:
            engine.apply_patches(tree, [parse_patch_file(folder / "patch.patch", strict=False)], log=notes.append)
        for needle in needles(folder / "error.txt"):
            assert needle in exc.value.message, exc.value.message
        assert snapshot(root) == before
        return
    engine.apply_patches(tree, [parse_patch_file(folder / "patch.patch", strict=False)], log=notes.append)
    got = {k: v for k, v in files_of(root).items() if k not in ADDED}
    assert got == files_of(after)
    for needle in needles(folder / "expect.txt"):
        assert any(needle in n for n in notes), notes
    assert not tree.is_dirty()
