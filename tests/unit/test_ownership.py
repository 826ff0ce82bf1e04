"""Who the build container runs as (``[docker] user``, caller root or not) and lending a tree to
that uid and back (real chown on real files; the lending tests need root, as CI is)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prereq import missing

from pipeline.build import ownership
from pipeline.build.executor import DockerExecutor
from pipeline.build.ownership import UNPRIVILEGED, Loan, build_user
from pipeline.config import BuildUser, load_options
from pipeline.errors import ConfigError, EnvironmentProblem

ROOT = (0, 0)


@pytest.mark.parametrize(("configured", "caller", "expected"), [
    (BuildUser(), ROOT, UNPRIVILEGED),  # root never builds as root
    (BuildUser(), (1000, 1000), (1000, 1000)),  # a user builds as itself: its files stay its own
    (BuildUser(), (1000, 0), (1000, 0)),  # its own ids, whatever they are
    (BuildUser(uid=2000, gid=3000), ROOT, (2000, 3000)),  # root may lend the tree to anyone
    (BuildUser(uid=1000, gid=1000), (1000, 1000), (1000, 1000)),  # a user may name itself
])
def test_build_user_choice(configured, caller, expected):
    assert build_user(configured, caller=caller) == expected
    assert expected[0] != 0


def test_a_user_cannot_build_as_someone_else():
    with pytest.raises(ConfigError) as info:
        build_user(BuildUser(uid=2000, gid=2000), caller=(1000, 1000))
    assert info.value.exit_code == 2
    text = info.value.render()
    assert "[docker] user = 2000:2000 needs gopatch to run as root" in text
    assert "1000:1000" in text  # the hint says what auto would do


def test_the_default_is_auto(tmp_path):
    opts = load_options(env={}, cwd=tmp_path)
    assert opts.docker.user == BuildUser() and str(opts.docker.user) == "auto"


@pytest.mark.parametrize(("raw", "expected"), [
    ("auto", BuildUser()), ("", BuildUser()), ("65532", BuildUser(uid=65532, gid=65532)),
    (" 1000:2000 ", BuildUser(uid=1000, gid=2000)),
])
def test_user_setting_parses(tmp_path, raw, expected):
    opts = load_options(env={"GOPATCH_DOCKER_USER": raw}, cwd=tmp_path)
    assert opts.docker.user == expected


@pytest.mark.parametrize(("raw", "why"), [
    ("0", "uid 0 is root"), ("0:0", "uid 0 is root"), ("0:1000", "uid 0 is root"),
    ("1000:0", "gid 0 is the root group"), ("root", "not auto, UID or UID:GID"),
    ("-5", "between 1 and"), ("1000:", "not auto, UID or UID:GID"), (str(2**32), "between 1 and"),
])
def test_user_setting_refuses_root_and_garbage(tmp_path, raw, why):
    (tmp_path / "build.cfg").write_text(f"[docker]\nuser = {raw}\n")
    with pytest.raises(ConfigError) as info:
        load_options(env={}, cwd=tmp_path)
    assert info.value.exit_code == 2
    assert why in info.value.message
    assert f"{tmp_path / 'build.cfg'}:2: [docker] user" in info.value.message


def test_the_executor_never_runs_as_root():
    # No daemon needed: the constructor decides the user before any container exists.
    with pytest.raises(ValueError, match="never runs as uid 0"):
        DockerExecutor(None, None, user=(0, 0))  # type: ignore[arg-type]
    chosen = DockerExecutor(None, None).user  # type: ignore[arg-type]
    assert chosen == (UNPRIVILEGED if os.geteuid() == 0 else (os.geteuid(), os.getegid()))


# --------------------------------------------------------------------------------------------
# Lending a tree: real chown, so root only
# --------------------------------------------------------------------------------------------

USER = (65532, 65532)
OTHER = (1234, 4321)


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        missing("root, to chown files to another uid (CI runs as root)")


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def owners(root: Path) -> dict[str, tuple[int, int]]:
    found = {".": owner(root)}
    for p in root.rglob("*"):
        found[str(p.relative_to(root))] = owner(p)
    return found


@pytest.fixture
def tree(tmp_path, as_root):
    """A work tree as build.py makes it (the caller's), plus a file of another owner, a symlink
    leading out of the tree, and a read-only mount nested inside."""
    outside = tmp_path / "outside"
    outside.write_text("not lent\n")
    root = tmp_path / "work"
    (root / "go" / "src").mkdir(parents=True)
    (root / "go" / "src" / "make.bash").write_text("#!/bin/bash\n")
    (root / "go" / "doomed").write_text("the step deletes this\n")
    (root / "theirs").write_text("another owner\n")
    os.chown(root / "theirs", *OTHER)
    (root / "link").symlink_to(outside)
    (root / "bootstrap" / "bin").mkdir(parents=True)
    (root / "bootstrap" / "bin" / "go").write_text("read-only\n")
    return root


def test_a_loan_hands_the_tree_over_and_back(tree):
    caller = ownership.caller_ids()
    outside = tree.parent / "outside"
    before = owners(tree)
    loan = Loan(tree, user=USER, caller=caller, skip=[tree / "bootstrap"])
    loan.take()
    during = owners(tree)
    lent = {k for k in during if not k.startswith("bootstrap")}
    assert {during[k] for k in lent} == {USER}
    assert {during[k] for k in during if k.startswith("bootstrap/")} == {caller}  # never touched
    assert owner(outside) == caller  # the symlink itself was lent, not what it points to

    # The step: new files (as the build user), one file gone, one file replaced.
    (tree / "go" / "doomed").unlink()
    for new in (tree / "go" / "pkg", tree / "go" / "pkg" / "archive.tar.gz", tree / "home"):
        new.mkdir() if new.suffix == "" else new.write_bytes(b"x")
        os.chown(new, *USER)
    (tree / "theirs").unlink()
    (tree / "theirs").write_text("rewritten\n")
    os.chown(tree / "theirs", *USER)

    loan.give_back()
    after = owners(tree)
    assert after["theirs"] == OTHER  # each file back to the owner it had
    assert after["go/pkg"] == after["go/pkg/archive.tar.gz"] == after["home"] == caller  # new: the caller's
    assert {k: v for k, v in after.items() if k in before} == {k: v for k, v in before.items() if k != "go/doomed"}
    assert owner(outside) == caller


def test_an_interrupted_take_is_given_back_exactly(tree, monkeypatch):
    caller = ownership.caller_ids()
    before = owners(tree)
    real = os.lchown
    calls = []

    def lchown_then_ctrl_c(path, uid, gid):  # the fault: Ctrl-C after the third chown
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(path, uid, gid)

    loan = Loan(tree, user=USER, caller=caller, skip=[tree / "bootstrap"])
    monkeypatch.setattr(ownership.os, "lchown", lchown_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        loan.take()
    monkeypatch.setattr(ownership.os, "lchown", real)
    assert USER in owners(tree).values()  # half taken
    loan.give_back()
    assert owners(tree) == before


def test_a_tree_that_cannot_be_lent_is_an_environment_problem(tree, monkeypatch):
    def refuse(path, uid, gid):  # the fault: a file system where even root cannot chown
        raise PermissionError(1, "Operation not permitted")

    loan = Loan(tree, user=USER, caller=ownership.caller_ids())
    monkeypatch.setattr(ownership.os, "lchown", refuse)
    with pytest.raises(EnvironmentProblem) as info:
        loan.take()
    assert info.value.exit_code == 3
    assert f"cannot hand {tree} to the build user 65532:65532: Operation not permitted" in info.value.message
