"""`gopatch release` on the real Docker build of go1.27.3 + patches/go1.27, checked three ways:
`sha256sum -c`, `gopatch release verify`, and `release verify --rebuild` against the host
executor's build of the same inputs (host_build): bit-for-bit equal archives prove the release
reproducible and the two executors equivalent. Release itself never builds: it publishes the
distpack archives that the build's own make.bash run wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TARGETS = ("linux/amd64", "linux/arm64")


@pytest.fixture(scope="module")
def released(docker_build, docker_verified, helpers, tmp_path_factory):
    env, cwd = docker_build["env"], docker_build["out"]
    for t in TARGETS:  # the release gate: only verified toolchains are released (their verify.json)
        proc = docker_verified[t]["proc"]
        assert proc.returncode == 0, proc.stderr[-3000:]
    dist = tmp_path_factory.mktemp("release") / "dist"
    proc = helpers.gopatch(["release", *[a for t in TARGETS for a in ("--target", t)], "--out", str(dist), "--json"],
                           env=env, cwd=cwd)
    return {"dist": dist, "result": json.loads(proc.stdout), "env": env, "cwd": cwd}


@pytest.mark.docker
def test_release_publishes_the_builds_own_archives(released, docker_build):
    dist, result = released["dist"], released["result"]
    version = docker_build["results"]["linux/amd64"]["version"]
    assert result["version"] == version
    for t in TARGETS:
        slug = t.replace("/", "_")
        name = f"{version}.{t.replace('/', '-')}.tar.gz"
        built = Path(docker_build["results"][t]["out"]) / "distpack" / name
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == hashlib.sha256(built.read_bytes()).hexdigest()
        assert (dist / f"{name}.sha256").read_text().startswith(hashlib.sha256(built.read_bytes()).hexdigest())
        assert slug in str(built)
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    m = json.loads((dist / "manifest.json").read_text())
    assert [p["name"] for p in m["patches"]] == ["handoffp", "traceGoStartBlock", "forcegcperiod"]
    assert m["go"]["source"]["base_commit"] and m["bootstrap"]["dirhash"].startswith("h1:")
    assert all(t["verify"]["passed"] and t["builder"]["executor"] == "docker" for t in m["targets"])


@pytest.mark.docker
def test_release_verify_and_rebuild_with_the_other_executor(released, host_rebuild_cache, helpers, tmp_path):
    dist = released["dist"]
    html = tmp_path / "rebuild.html"
    proc = helpers.gopatch(["release", "verify", str(dist), "--rebuild", "--executor", "host",
                            "--cache", str(host_rebuild_cache), "--json", "--html", str(html)],
                           env=released["env"], cwd=released["cwd"], check=False, timeout=3600)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, json.dumps(report["failed"], indent=1) + proc.stderr[-3000:]
    rebuilt = {r["archive"]: r for r in report["rebuild"]}
    # 2 archives + the source archive + the 2 golang.org/toolchain module zips
    assert len(rebuilt) == 5 and all(r["identical"] for r in rebuilt.values()), rebuilt
    assert "PASS" in html.read_text()


@pytest.mark.docker
def test_tampering_with_a_real_release_is_detected(released, helpers, tmp_path):
    copy = tmp_path / "dist"
    shutil.copytree(released["dist"], copy)
    archive = next(copy.glob("*.linux-arm64.tar.gz"))
    with archive.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    proc = helpers.gopatch(["release", "verify", str(copy), "--json"], env=released["env"], cwd=released["cwd"],
                           check=False)
    assert proc.returncode == 1
    failed = json.loads(proc.stdout)["failed"]
    assert failed and all(archive.name in f for f in failed), failed
    assert archive.name in proc.stderr and "Traceback" not in proc.stderr
