"""Hypothesis: malformed and hostile patches (truncated hunks, wrong counts, traversal, garbage
headers) never end in a traceback and never change the tree. A mutation that happens to leave a
valid patch may apply; then revert must give every byte back."""

from __future__ import annotations

import re

import pytest
from gittrees import BASE_FILES, diff_of, make_tree, patch_text, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import GopatchError
from pipeline.patches import operations as engine
from pipeline.patches.series import parse_patch_bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    tree = make_tree(root / "goroot")
    diff = diff_of(tree.path, {
        "src/runtime/proc.go": BASE_FILES["src/runtime/proc.go"].replace(b"line 10\n", b"ten\n")
        .replace(b"line 30\n", b"thirty\n"),
        "src/runtime/nonl.go": b"package runtime\n\nvar x = 3",
        "src/runtime/crlf.go": None,
        "src/runtime/added.go": b"package runtime\r\n\xff\n",
    })
    valid = patch_text(diff)
    return tree, valid, snapshot(tree.path), root


HOSTILE_PATHS = ["../outside.go", "/etc/passwd", "src/../../x", ".git/config", "src/.git/hooks/pre-commit",
                 "src//x", "./src/x", "src/\x00x", '"src/\\056\\056/x"']


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    lines = valid.split(b"\n")
    kind = draw(st.sampled_from(["truncate", "drop", "garbage", "count", "path", "dup", "bytes"]))
    if kind == "truncate":
        return valid[: draw(st.integers(0, len(valid)))]
    if kind == "drop":
        i = draw(st.integers(0, len(lines) - 1))
        return b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "garbage":
        i = draw(st.integers(0, len(lines)))
        junk = draw(st.binary(max_size=40).filter(lambda b: b"\n" not in b))
        return b"\n".join([*lines[:i], junk, *lines[i:]])
    if kind == "count":
        headers = [i for i, ln in enumerate(lines) if ln.startswith(b"@@ ")]
        i = draw(st.sampled_from(headers))
        nums = draw(st.lists(st.integers(0, 60), min_size=4, max_size=4))
        lines[i] = b"@@ -%d,%d +%d,%d @@" % tuple(nums)
        return b"\n".join(lines)
    if kind == "path":
        bad = draw(st.sampled_from(HOSTILE_PATHS)).encode()
        text = b"\n".join(lines)
        return re.sub(rb"src/runtime/proc\.go", bad.replace(b"\\", b"\\\\"), text, count=draw(st.integers(1, 4)))
    if kind == "dup":
        start = valid.index(b"diff --git")
        return valid + valid[start:]
    i = draw(st.integers(0, max(len(valid) - 1, 0)))
    return valid[:i] + draw(st.binary(min_size=1, max_size=8)) + valid[i + 1:]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_patches_never_traceback_and_never_change_the_tree(world, data):
    tree, valid, pristine, root = world
    blob = data.draw(mutated(valid))
    path = root / "hostile.patch"
    path.write_bytes(blob)
    try:
        patch = parse_patch_bytes(blob, path=path, name="hostile", strict=False)
        engine.apply_patches(tree, [patch])
    except GopatchError as exc:
        assert exc.exit_code in (1, 2, 3) and exc.message
        assert snapshot(tree.path) == pristine
        return
    # It was still a valid patch: it applied as one commit, and revert gives every byte back.
    engine.revert_patches(tree, None)
    assert snapshot(tree.path)["files"] == pristine["files"]
    assert snapshot(tree.path)["head"] == pristine["head"]


def test_the_unmutated_patch_applies(world):
    tree, valid, pristine, root = world
    engine.apply_patches(tree, [parse_patch_bytes(valid, path=root / "v.patch", name="v")])
    assert (tree.path / "src/runtime/nonl.go").read_bytes() == b"package runtime\n\nvar x = 3"
    engine.revert_patches(tree, None)
    assert snapshot(tree.path)["files"] == pristine["files"]
