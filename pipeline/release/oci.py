"""An OCI image of a released toolchain, made from its release archive alone: ``<archive>.oci.tar``.

The tarball is an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/
image-layout.md: ``oci-layout``, ``index.json``, ``blobs/sha256/…``) and, in the same tar, the
``manifest.json`` of ``docker save``'s format, which names the same config and layer blobs: Docker
before 25 (``docker load`` of 20.10 here) reads only the latter, registries tools (skopeo, crane,
oras, ``docker load`` of 25+) the former. Both name the same bytes, so the image ID Docker shows
after a load is the config digest recorded in the manifest.

One layer: the archive's ``go/`` tree moved to ``/usr/local/go`` (where the official golang
images keep it), member metadata copied as distpack wrote it, plus ``/tmp`` for ``go build``.
The layer is an uncompressed tar on purpose: gzip output depends on the zlib build (zlib-ng
makes other bytes than zlib at the same level), and "the same archive gives the same image
digest" must hold on every machine. Registries and ``docker push`` compress on the way.

Reproducible: no time stamp comes from the clock. Every time in the image is the ``time`` line
of the archive's ``go/VERSION`` (distpack's SOURCE_DATE_EPOCH: its member mtimes are that time
too), owners are 0:0 with no names, JSON is written with sorted keys, and member order is the
archive's. The same archive and labels therefore give the same bytes, digest and image ID.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import Target
from ..errors import UsageError
from .checksums import CHUNK

SUFFIX = ".oci.tar"
GOROOT = "usr/local/go"
PATH = f"/{GOROOT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def image_name(archive: str) -> str:
    """go1.27.3-gopatch.3-….linux-amd64.tar.gz -> go1.27.3-gopatch.3-….linux-amd64.oci.tar"""
    return archive.removesuffix(".tar.gz") + SUFFIX


def tag(version: str, target: Target) -> str:
    """A Docker tag per platform (tags allow [A-Za-z0-9_.-]; a stamped version uses only those)."""
    return f"{version}.{target.goos}-{target.goarch}"


@dataclass(frozen=True, kw_only=True)
class Image:
    file: str  # the .oci.tar's name in the release
    sha256: str  # of the .oci.tar
    size: int
    manifest_digest: str  # sha256:… of the OCI manifest: the digest a registry reports after a push
    config_digest: str  # sha256:… of the config: the image ID `docker load` shows
    layer_digest: str
    ref: str  # <name>:<tag>
    labels: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "size": self.size, "manifest_digest": self.manifest_digest,
                "config_digest": self.config_digest, "layer_digest": self.layer_digest, "ref": self.ref,
                "labels": dict(self.labels)}


def _json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _epoch(archive: Path) -> int:
    """SOURCE_DATE_EPOCH of the archive: the ``time`` line of its go/VERSION."""
    with tarfile.open(archive) as tar:
        for m in tar:
            if m.name == "go/VERSION" and m.isfile():
                f = tar.extractfile(m)
                text = f.read().decode("utf-8", "replace") if f else ""
                break
        else:
            raise UsageError(f"{archive} holds no go/VERSION: it is not a Go distribution archive.")
    for line in text.splitlines()[1:]:
        if line.startswith("time "):
            try:
                return calendar.timegm(time.strptime(line[5:].strip(), "%Y-%m-%dT%H:%M:%SZ"))
            except ValueError:
                break
    raise UsageError(f"{archive}: go/VERSION has no `time YYYY-MM-DDTHH:MM:SSZ` line (distpack writes one).")


def _dir(name: str, mode: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, epoch
    return info


def _write_layer(archive: Path, out: IO[bytes], epoch: int) -> None:
    """The archive's go/ tree under usr/local/, as an uncompressed PAX tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as layer:
        for d, mode in (("tmp", 0o1777), ("usr", 0o755), ("usr/local", 0o755)):
            layer.addfile(_dir(d, mode, epoch))
        with tarfile.open(archive) as tar:
            for m in tar:
                if m.name != "go" and not m.name.startswith("go/"):
                    raise UsageError(f"{archive}: member {m.name!r} is outside go/; not a Go distribution archive.")
                if not (m.isfile() or m.isdir() or m.issym()):
                    raise UsageError(f"{archive}: member {m.name!r} is neither a file, a directory nor a symlink.")
                info = tarfile.TarInfo(f"usr/local/{m.name}")
                info.type, info.mode, info.mtime, info.size = m.type, m.mode, m.mtime, m.size if m.isfile() else 0
                info.linkname = m.linkname
                layer.addfile(info, tar.extractfile(m) if m.isfile() else None)


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.h, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.h.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def build(archive: Path, dest: Path, *, version: str, target: Target, name: str,
          labels: Mapping[str, str]) -> Image:
    """Write the image of ``archive`` (a linux target's release archive) to the new file ``dest``."""
    if target.goos != "linux":
        raise UsageError(f"an image is a Linux container image; {target} is not a linux target.")
    epoch = _epoch(archive)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=dest.parent) as tmp:
        layer_path = Path(tmp) / "layer.tar"
        with open(layer_path, "wb") as raw:
            sink = _Hashing(raw)
            _write_layer(archive, sink, epoch)
        layer_digest, layer_size = "sha256:" + sink.h.hexdigest(), sink.size
        all_labels = {"org.opencontainers.image.created": created, **labels}
        config = _json({
            "architecture": target.goarch,
            "os": target.goos,
            "created": created,
            "config": {"Env": [f"PATH={PATH}", f"GOROOT=/{GOROOT}",
                               # The image is this toolchain: a go.mod asking for another must fail
                               # rather than download one (the official golang images do the same).
                               "GOTOOLCHAIN=local"],
                       "Cmd": ["go", "version"], "WorkingDir": "/", "Labels": all_labels},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created": created, "created_by": f"gopatch release --image: {archive.name} at /{GOROOT}"}],
        })
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = _json({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size}],
            "annotations": {"org.opencontainers.image.created": created,
                            "org.opencontainers.image.version": labels.get("org.opencontainers.image.version", "")},
        })
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        ref = f"{name}:{tag(version, target)}"
        index = _json({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [{"mediaType": MANIFEST_TYPE, "digest": manifest_digest, "size": len(manifest),
                           "platform": {"architecture": target.goarch, "os": target.goos},
                           "annotations": {"org.opencontainers.image.ref.name": tag(version, target),
                                           "io.containerd.image.name": ref}}],
        })
        blob = "blobs/sha256/"
        docker_manifest = _json([{"Config": blob + config_digest[7:], "RepoTags": [ref],
                                  "Layers": [blob + layer_digest[7:]]}])
        with open(dest, "xb") as raw:
            out = _Hashing(raw)
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                def add(member: str, data: bytes | None = None, path: Path | None = None) -> None:
                    if member.endswith("/"):
                        tar.addfile(_dir(member.rstrip("/"), 0o755, epoch))
                        return
                    info = tarfile.TarInfo(member)
                    info.mode, info.mtime = 0o644, epoch
                    if path is not None:
                        info.size = path.stat().st_size
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        assert data is not None
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))

                add("blobs/")
                add(blob)
                add(blob + config_digest[7:], config)
                add(blob + layer_digest[7:], path=layer_path)
                add(blob + manifest_digest[7:], manifest)
                add("index.json", index)
                add("manifest.json", docker_manifest)
                add("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
            raw.flush()
            os.fsync(raw.fileno())
    return Image(file=dest.name, sha256=out.h.hexdigest(), size=out.size, manifest_digest=manifest_digest,
                 config_digest=config_digest, layer_digest=layer_digest, ref=ref, labels=all_labels)


def read_layout(path: Path) -> tuple[dict[str, Any], list[str]]:
    """(index.json, problems) of an image tarball: every blob must have the digest it is named by,
    and the index must name a manifest blob that names config and layer blobs."""
    problems: list[str] = []
    blobs: dict[str, bytes | None] = {}  # digest hex -> content for the small JSON blobs
    index: dict[str, Any] = {}
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                f = tar.extractfile(m)
                assert f is not None
                if m.name.startswith("blobs/sha256/"):
                    want = m.name.rsplit("/", 1)[1]
                    h = hashlib.sha256()
                    small = io.BytesIO() if m.size < (1 << 20) else None
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                        if small is not None:
                            small.write(chunk)
                    if h.hexdigest() != want:
                        problems.append(f"blob {m.name} has sha256 {h.hexdigest()}")
                    blobs[want] = small.getvalue() if small is not None else None
                elif m.name == "index.json":
                    index = json.loads(f.read())
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        return {}, [f"not a readable image tarball ({e})"]
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        problems.append(f"index.json names {len(manifests)} manifests, not 1")
        return index, problems
    digest = str(manifests[0].get("digest", "")).removeprefix("sha256:")
    if (content := blobs.get(digest)) is None:
        problems.append(f"index.json names the manifest {digest[:16]}…, which is not among the blobs")
        return index, problems
    try:
        manifest = json.loads(content)
        named = [manifest["config"]["digest"], *(x["digest"] for x in manifest["layers"])]
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"the manifest blob is not an OCI manifest ({e!r})")
        return index, problems
    for d in named:
        if str(d).removeprefix("sha256:") not in blobs:
            problems.append(f"the manifest names the blob {d}, which is missing")
    return index, problems

