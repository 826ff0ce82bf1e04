"""Crash safety of apply/revert, deterministic: a child process runs the real CLI with one
function wrapped so that it dies by os._exit (no handler, no finally: what kill -9 leaves) at a
chosen moment; the next command must find the interrupted operation, say so in one line on
stderr and leave the tree exactly as it was before or exactly as a complete run leaves it, with
no temp file, ref or scratch directory left. The kill -9 test on a real release diff is
test_patch_kill9.py; this one pins each state of the journal down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gittrees import BASE_FILES, diff_of, git, make_tree, patch_text, quiet_tree, snapshot

from pipeline import journal
from pipeline.patches import operations as engine
from pipeline.patches.series import parse_patch_file
from pipeline.source import checkout as source

# The child: wrap one function of the engine so that the process dies right after (or before)
# its n-th call, then run the real CLI.
HARNESS = r"""
import os, sys
import pipeline.journal as J
import pipeline.patches.worktree as W

point, n = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}

def hit():
    calls["n"] += 1
    if calls["n"] == n:
        os._exit(137)

def after(module, name):
    real = getattr(module, name)
    def wrapped(*a, **kw):
        out = real(*a, **kw)
        hit()
        return out
    setattr(module, name, wrapped)

def before(module, name):
    real = getattr(module, name)
    def wrapped(*a, **kw):
        hit()
        return real(*a, **kw)
    setattr(module, name, wrapped)

{
    "begin": lambda: before(J, "begin"),            # fast-import runs, nothing written yet
    "write": lambda: after(W, "_write_file"),       # some files written, HEAD and index old
    "index": lambda: after(W, "_update_index"),     # every file and the index written
    "new_head": lambda: after(J, "set_new_head"),   # the commits exist, HEAD not moved
    "head": lambda: before(J, "end"),               # HEAD moved, journal still there
    "recover": lambda: after(J, "_write"),          # recovery itself dies after n files
}[point]()
from pipeline.cli import main
main(sys.argv[3:])
"""

NEW_FILE = "src/newpkg/deep/new.go"
DELETED = "src/os/file.go"  # the only file of src/os: its directory goes with it


def run(cwd: Path, *args: str, crash: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    cmd = [sys.executable, "-c", HARNESS, crash[0], str(crash[1])] if crash else [sys.executable, "-m", "pipeline.cli"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def make_patch(tree_path: Path, out: Path) -> Path:
    edits: dict[str, bytes | None] = {
        "src/runtime/proc.go": BASE_FILES["src/runtime/proc.go"].replace(b"line 10\n", b"line 10 handoffp\n"),
        "src/runtime/crlf.go": BASE_FILES["src/runtime/crlf.go"] + b"// more\r\n",
        "src/runtime/latin1.go": BASE_FILES["src/runtime/latin1.go"][:-1] + b"\xe9\n",
        "VERSION": b"go1.27.3-x\ntime 2026-10-19T22:20:36Z\n",
        NEW_FILE: b"package deep\n",
        DELETED: None,
    }
    out.write_bytes(patch_text(diff_of(tree_path, edits), subject="runtime: several files"))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The patch and the snapshots of a tree before and after a complete apply, made once on a
    twin tree (fixed identities and dates: every tree made by make_tree gets the same hashes)."""
    top = tmp_path_factory.mktemp("journal-ref")
    twin = make_tree(top / "twin")
    patch = make_patch(twin.path, top / "several.patch")
    before = snapshot(twin.path)
    done = run(top, "apply", "--dir", str(twin.path), "--file", str(patch))
    assert done.returncode == 0, done.stderr
    return patch, before, snapshot(twin.path)


@pytest.fixture
def work(tmp_path, reference):
    patch, before, after = reference
    tree = make_tree(tmp_path / "goroot")
    assert snapshot(tree.path) == before
    return tree.path, patch, before, after


def assert_no_leftovers(root: Path) -> None:
    dot_git = root / ".git"
    assert not (dot_git / journal.JOURNAL).exists()
    assert not (dot_git / journal.SCRATCH).exists()
    assert not list(dot_git.glob("fast_import_crash_*")) and not list((dot_git / "objects" / "pack").glob("tmp_*"))
    assert not [p for p in dot_git.glob("*.lock") if p.name != journal.LOCK]  # gopatch.lock stays
    assert git(root, "for-each-ref", "refs/gopatch/") == b""
    assert not [p for p in root.rglob(".*.gopatch-*")]


def recover_with_status(root: Path) -> str:
    proc = run(root.parent, "status", "--dir", str(root), "--series", str(root.parent / "noseries"))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.fixture(autouse=True)
def _empty_series(tmp_path):
    (tmp_path / "noseries").mkdir()
    (tmp_path / "noseries" / "series").write_text("# nothing\n")


@pytest.mark.parametrize(("point", "n", "ends"), [
    ("write", 1, "before"),  # one file written
    ("write", 3, "before"),  # three of five, the new directory made, src/os pruned
    ("index", 1, "before"),  # files and index written, the commits maybe not
    ("new_head", 1, "before"),  # new_head recorded, HEAD not moved
    ("head", 1, "after"),  # HEAD moved: roll forward
])
def test_killed_apply_is_recovered_by_the_next_command(work, point, n, ends):
    root, patch, before, after = work
    killed = run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=(point, n))
    assert killed.returncode == 137, killed.stderr
    record = journal.load(root / ".git")
    assert record is not None and record.op == "apply" and len(record.paths) == 6
    assert record.new_dirs == ["src/newpkg", "src/newpkg/deep"]
    assert (record.new_head is not None) == (point in ("new_head", "head"))

    err = recover_with_status(root)
    state = {"before": before, "after": after}[ends]
    word = "rolled back to" if ends == "before" else "rolled forward to"
    assert f"recovered an interrupted `gopatch apply` (pid {record.pid}): {word} {state['head'].decode()[:12]}" in err
    assert snapshot(root) == state
    assert_no_leftovers(root)
    # The next command has nothing to say, and a re-run of the apply completes.
    assert "recovered" not in recover_with_status(root)
    again = run(root.parent, "apply", "--dir", str(root), "--file", str(patch))
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == after


def test_killed_before_any_write_leaves_only_scratch_which_is_removed(work):
    root, patch, before, _ = work
    killed = run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("begin", 1))
    assert killed.returncode == 137
    assert journal.load(root / ".git") is None
    assert list((root / ".git" / journal.SCRATCH).iterdir())  # fast-import's marks, in .git
    err = recover_with_status(root)
    assert "cleaned up after an interrupted gopatch command" in err and "rolled" not in err
    assert snapshot(root) == before
    assert_no_leftovers(root)


def test_apply_after_a_kill_recovers_instead_of_asking_for_force(work):
    root, patch, _before, after = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("write", 2)).returncode == 137
    proc = run(root.parent, "apply", "--dir", str(root), "--file", str(patch))
    assert proc.returncode == 0, proc.stderr
    assert "rolled back" in proc.stderr and "--force" not in proc.stderr and "uncommitted" not in proc.stderr
    assert snapshot(root) == after
    assert_no_leftovers(root)


def test_the_engine_recovers_under_its_lock_without_open_tree(work):
    """apply_patches checks again once it holds gopatch.lock: a library caller (or a command
    killed between open_tree and the lock) is covered too."""
    root, patch, _before, after = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("write", 2)).returncode == 137
    messages: list[str] = []
    out = engine.apply_patches(quiet_tree(root), [parse_patch_file(patch, strict=False)], log=messages.append)
    assert out[0].action == "applied"
    assert any(m.startswith("recovered an interrupted `gopatch apply`") and "rolled back" in m for m in messages)
    assert snapshot(root) == after
    assert_no_leftovers(root)


def test_checkout_recovers_the_tree_it_finds(work):
    """`gopatch checkout` looks at an existing tree (same ref? dirty?) through source._existing,
    which recovers it first: a killed apply does not make it look dirty."""
    root, patch, before, _after = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("index", 1)).returncode == 137
    messages: list[str] = []
    existing = source._existing(root, messages.append)
    assert existing is not None and not existing.is_dirty()
    assert len(messages) == 1 and "rolled back" in messages[0]
    assert snapshot(root) == before
    assert_no_leftovers(root)


@pytest.mark.parametrize("n", [1, 2])
def test_a_recovery_killed_half_way_is_finished_by_the_next_one(work, n):
    root, patch, before, _ = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("write", 5)).returncode == 137
    dying = run(root.parent, "status", "--dir", str(root), "--series", str(root.parent / "noseries"),
                crash=("recover", n))
    assert dying.returncode == 137, dying.stderr
    record = journal.load(root / ".git")
    assert record is not None and len(record.recoverers) == 1  # the dead recovery signed in
    err = recover_with_status(root)
    assert "rolled back to" in err
    assert snapshot(root) == before
    assert_no_leftovers(root)


def test_killed_revert_is_recovered(work):
    root, patch, before, after = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch)).returncode == 0
    killed = run(root.parent, "revert", "--all", "--dir", str(root), crash=("write", 2))
    assert killed.returncode == 137
    record = journal.load(root / ".git")
    assert record is not None and record.op == "revert" and record.new_head == before["head"].decode().strip()
    err = recover_with_status(root)
    assert f"recovered an interrupted `gopatch revert` (pid {record.pid}): rolled back to" in err
    assert snapshot(root) == after
    assert_no_leftovers(root)
    # ...and one killed once HEAD has moved is finished.
    assert run(root.parent, "revert", "--all", "--dir", str(root), crash=("head", 1)).returncode == 137
    assert "rolled forward to" in recover_with_status(root)
    assert snapshot(root) == before
    assert_no_leftovers(root)


def test_head_moved_by_hand_after_a_kill_is_refused_not_guessed(work):
    root, patch, _before, _ = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("write", 2)).returncode == 137
    git(root, "commit", "-q", "--allow-empty", "-m", "someone else's commit")
    proc = run(root.parent, "status", "--dir", str(root), "--series", str(root.parent / "noseries"))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "has since moved" in proc.stderr and "git -C" in proc.stderr
    assert journal.load(root / ".git") is not None  # kept for the user


def test_stale_index_lock_of_a_killed_git_is_removed(work):
    """kill -9 of the whole process group can kill `git update-index` holding index.lock."""
    root, patch, before, _ = work
    assert run(root.parent, "apply", "--dir", str(root), "--file", str(patch), crash=("write", 2)).returncode == 137
    (root / ".git" / "index.lock").write_bytes(b"")
    assert "rolled back" in recover_with_status(root)
    assert snapshot(root) == before
    assert_no_leftovers(root)


# --------------------------------------------------------------------------------------------
# Signals during start-up
# --------------------------------------------------------------------------------------------


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and the child
    # would inherit that (see the ctrl_c fixture in tests/conftest.py): give it the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interpreter_startup(env: dict[str, str]) -> float:
    """Seconds Python itself needs before it runs any gopatch code (interpreter and `site`; an
    editable install's import hook alone takes ~50 ms here). A signal in that window is Python's
    business, not gopatch's: the delays below start after it."""
    times = []
    for _ in range(3):
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append(time.monotonic() - t)
    return max(times)


@pytest.mark.parametrize(("sig", "entry"), [(signal.SIGINT, "module"), (signal.SIGTERM, "module"),
                                            (signal.SIGINT, "console script")])
def test_signal_during_startup_exits_130_without_traceback(tmp_path, sig, entry):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    script = Path(sys.executable).parent / "gopatch"  # what pip made of [project.scripts]
    if entry == "console script":
        assert script.is_file(), "gopatch is not installed in this environment (make install)"
    cmd = [sys.executable, "-m", "pipeline.cli"] if entry == "module" else [sys.executable, str(script)]
    start = _interpreter_startup(env) * 1.5
    results = []
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.35):
        proc = subprocess.Popen([*cmd, "status", "--dir", str(tmp_path / "none")],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_default_sigint)
        time.sleep(start + delay)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, (start + delay, err)
        # 130: interrupted (during imports, or SIGINT during the command); -SIGTERM: the default
        # action once the command runs (a journal makes that safe); 3: it had finished (no tree).
        assert proc.returncode in (130, 3, -sig), (start + delay, proc.returncode, err)
        results.append((proc.returncode, err))
    # The early ones land in the imports (a few hundred ms): the start-up handler's one line.
    assert (130, "gopatch: interrupted\n") in results, results
