"""`gopatch release` and `gopatch release gather`: from built, verified artifacts to a release dir."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Options, Target
from ..errors import UsageError
from . import inputs as inputs_mod
from . import manifest as manifest_mod
from . import signing
from .checksums import MANIFEST, SAFE_NAME, copy_hashed
from .publish import check_destination, write_release

Log = Callable[[str], None]


@dataclass(kw_only=True)
class ReleaseResult:
    out: Path
    version: str
    files: list[str]
    manifest: dict[str, Any]
    seconds: float
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "version": self.version, "files": self.files, "dry_run": self.dry_run,
                "seconds": round(self.seconds, 2),
                "archives": [{"name": t["archive"], "target": t["target"], "size": t["size"], "sha256": t["sha256"]}
                             for t in self.manifest["targets"]]
                + [{"name": self.manifest["source_archive"]["name"], "target": "src",
                    "size": self.manifest["source_archive"]["size"],
                    "sha256": self.manifest["source_archive"]["sha256"]}],
                "skip_verify": self.manifest["skip_verify"], "signed": self.manifest["signing"] is not None}


def _copier(src: Path, expect: str) -> Callable[[Path], str]:
    """Copy ``src`` into the release, hashing on the way: the digest is returned for SHA256SUMS."""
    def write(dst: Path) -> str:
        digest, _ = copy_hashed(src, dst)
        if digest != expect:  # the file changed between collecting and copying it
            raise UsageError(f"{src} changed while it was being released (sha256 {digest}, expected {expect}).")
        return digest
    return write


def release(opts: Options, *, targets: Sequence[Target], out: Path, force: bool = False, skip_verify: bool = False,
            sign_key: Path | None = None, dry_run: bool = False, log: Log = print) -> ReleaseResult:
    started = time.monotonic()
    inp = inputs_mod.collect(opts, tuple(targets), skip_verify=skip_verify)
    entries, files = [], {}
    for t in inp.targets:
        digest = str(t.build["archives"][t.archive.name])
        entries.append(manifest_mod.target_entry(t, sha256=digest, size=t.archive.stat().st_size))
        files[t.archive.name] = _copier(t.archive, digest)
    configs = {json.dumps(t.build.get("config") or {}, sort_keys=True) for t in inp.targets}
    if len(configs) > 1:  # the manifest records one build config for the whole release
        raise UsageError("the targets were built with different [build] settings (cgo_enabled, goexperiment, "
                         "extra env); one release records one configuration.",
                         hint="rebuild them with the same settings, or release them separately")
    src = inp.targets[0].source_archive
    src_digest = str(inp.targets[0].build["archives"][src.name])
    for t in inp.targets[1:]:  # distpack's source archive is the same for every target of one HEAD
        if t.build["archives"].get(src.name) != src_digest:
            raise UsageError(f"{t.source_archive} differs from {src}: the targets were not built from the same source.")
    files[src.name] = _copier(src, src_digest)
    source_archive = {"name": src.name, "size": src.stat().st_size, "sha256": src_digest}
    signing_info = signing.describe(sign_key) if sign_key is not None else None
    manifest = manifest_mod.build_manifest(inp, label=opts.build.version_suffix, entries=entries,
                                           source_archive=source_archive, skip_verify=skip_verify, signing=signing_info)
    if dry_run:
        check_destination(Path(out), version=inp.version, digests={e["archive"]: e["sha256"] for e in entries}, force=force)
        return ReleaseResult(out=Path(out), version=inp.version, files=sorted(files), manifest=manifest,
                             seconds=time.monotonic() - started, dry_run=True)
    names = write_release(Path(out), manifest=manifest, files=files, sign_key=sign_key, force=force, log=log)
    return ReleaseResult(out=Path(out), version=inp.version, files=names, manifest=manifest,
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
    digests = {t["archive"]: t["sha256"] for t in merged["targets"]}
    digests[merged["source_archive"]["name"]] = merged["source_archive"]["sha256"]
    for part in parts:
        for name in manifest_mod.expected_names(merged):
            if name not in files and (part / name).is_file() and SAFE_NAME.match(name):
                files[name] = _copier(part / name, digests[name])
    if sign_key is not None:
        merged["signing"] = signing.describe(sign_key)
    log(f"release gather: {len(parts)} part(s), {len(merged['targets'])} target(s)")
    names = write_release(Path(out), manifest=merged, files=files, sign_key=sign_key, force=force, log=log)
    return ReleaseResult(out=Path(out), version=str(merged["version"]), files=names, manifest=merged,
                         seconds=time.monotonic() - started)
