"""`gopatch release verify DIR`: is this release directory exactly what its manifest says?

Each check names the file it is about, so a tampered archive, a missing file or a hand-edited
manifest is reported as "<file>: <what is wrong>". Checks, in order: the manifest parses; every
line of SHA256SUMS is well formed and every listed file has that digest; every file in the
directory (proxy/ included) is listed; each .sha256 agrees; the manifest's archives are the ones
its version and targets imply, with its sizes and digests; each module zip under proxy/ has the
manifest's ``h1:`` (Go's dirhash) and ``list`` names the module versions; each image tarball has
its digests and is exactly what its archive makes; each provenance statement is the one the manifest
implies; the series' patch files have the manifest's hashes; the signature holds.
"""

from __future__ import annotations

import functools
import json
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import Target
from ..errors import GopatchError
from ..records import FileEntry, ImageEntry, Manifest, TargetEntry
from . import manifest as manifest_mod
from . import oci, provenance, proxy, signing
from .checksums import (
    MANIFEST,
    PROVENANCE_SUFFIX,
    SHA_SUFFIX,
    SIG,
    SUMS,
    parse_sums,
    sha256_file,
    sum_line,
)
from .publish import release_files

Digest = Callable[[Path], str]


@dataclass(frozen=True)
class Check:
    name: str  # checksums | listing | sha256-file | manifest | proxy | image | provenance | patches | signature | rebuild
    file: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    dir: str
    version: str = ""
    checks: list[Check] = field(default_factory=list)
    rebuild: list[dict[str, Any]] = field(default_factory=list)  # per archive, see rebuild.compare_archives

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, file: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, file, ok, detail))

    def to_json(self) -> dict[str, Any]:
        return {"dir": self.dir, "version": self.version, "passed": self.passed,
                "checks": [asdict(c) for c in self.checks], "rebuild": self.rebuild,
                "failed": [f"{c.file}: {c.detail}" for c in self.checks if not c.ok]}


def _checksums(d: Path, report: CheckReport, digest: Digest) -> dict[str, str]:
    sums_path = d / SUMS
    if not sums_path.is_file():
        report.add("checksums", SUMS, False, "missing")
        return {}
    digests, problems = parse_sums(sums_path.read_text(encoding="utf-8", errors="replace"))
    for p in problems:
        report.add("checksums", f"{SUMS}:{p.line}", False, p.text)
    for name, want in sorted(digests.items()):
        path = d / name
        if not path.is_file():
            report.add("checksums", name, False, f"listed in {SUMS} but missing")
        elif (actual := digest(path)) != want:
            report.add("checksums", name, False, f"sha256 {actual} but {SUMS} says {want}")
        else:
            report.add("checksums", name, True, "sha256 matches")
    for rel in release_files(d):
        if rel not in digests and rel not in (SUMS, SIG):
            report.add("listing", rel, False, f"present but not listed in {SUMS} (not part of the release)")
    return digests


def _sha_files(d: Path, report: CheckReport, digest: Digest) -> None:
    for path in sorted(d.glob(f"*{SHA_SUFFIX}")):
        name = path.name.removesuffix(SHA_SUFFIX)
        target = d / name
        want = sum_line(digest(target), name) if target.is_file() else None
        ok = want is not None and path.read_text(encoding="utf-8", errors="replace") == want
        report.add("sha256-file", path.name, ok, "agrees with the archive" if ok else
                   f"does not match {name}" + ("" if target.is_file() else " (missing)"))


def _manifest(d: Path, m: Manifest, report: CheckReport, digest: Digest) -> None:
    wanted = manifest_mod.expected_names(m)
    rows: dict[str, TargetEntry | FileEntry] = {t.archive: t for t in m.targets}
    rows[m.source_archive.name] = m.source_archive
    for name, target in sorted(wanted.items()):
        row = rows.get(name)
        path = d / name
        if row is None:
            report.add("manifest", MANIFEST, False, f"target {target}: its archive should be named {name}")
        elif not path.is_file():
            report.add("manifest", name, False, f"named in {MANIFEST} for {target} but missing")
        elif path.stat().st_size != row.size:
            report.add("manifest", name, False, f"{path.stat().st_size} bytes but {MANIFEST} says {row.size}")
        elif digest(path) != row.sha256:
            report.add("manifest", name, False, f"sha256 differs from {MANIFEST}'s {row.sha256}")
        else:
            report.add("manifest", name, True, f"{target}: size and sha256 as in {MANIFEST}")
    for name in sorted(n for n in rows if n not in wanted):
        report.add("manifest", MANIFEST, False, f"lists {name}, which is not an archive name of {m.version}")
    for path in sorted(d.iterdir()):
        if path.name.endswith((".tar.gz", ".zip")) and path.name not in wanted:
            report.add("manifest", path.name, False, f"an archive that {MANIFEST} does not list")


def _proxy(d: Path, m: Manifest, report: CheckReport, digest: Digest) -> None:
    """proxy/: each target's module files as the manifest lists them, the zip's h1 recomputed
    from its content, and a ``list`` naming exactly the manifest's module versions."""
    listed = manifest_mod.proxy_files(m)
    for t in m.targets:
        module = t.module
        target = Target.parse(t.target)
        want = proxy.module_files(m.version, target)
        names = {proxy.published(n) for n in want.values()}
        if {f.name for f in module.files} != names or module.version != proxy.module_version(m.version, target):
            report.add("proxy", MANIFEST, False, f"target {t.target}: its module should be "
                       f"{proxy.module_version(m.version, target)}")
            continue
        for name in sorted(names):
            (_, row), path = listed[name], d / name
            if not path.is_file():
                report.add("proxy", name, False, f"named in {MANIFEST} for {t.target} but missing")
            elif path.stat().st_size != row.size or digest(path) != row.sha256:
                report.add("proxy", name, False, f"size or sha256 differs from {MANIFEST}'s {row.sha256}")
            elif name.endswith(".zip"):
                try:
                    h1 = proxy.zip_h1(path)
                except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as e:
                    report.add("proxy", name, False, f"not a readable module zip ({e})")
                    continue
                ok = h1 == module.h1
                report.add("proxy", name, ok, f"{proxy.MODULE} {module.version} {h1}" if ok else
                           f"dirhash {h1}, but {MANIFEST} says {module.h1}")
            else:
                report.add("proxy", name, True, f"{t.target}: size and sha256 as in {MANIFEST}")
    versions = provenance.manifest_versions(m)
    path = d / proxy.LIST
    if versions:
        ok = path.is_file() and path.read_text(encoding="utf-8", errors="replace") == proxy.list_text(versions)
        report.add("proxy", proxy.LIST, ok, f"lists the {len(versions)} module version(s)" if ok else
                   ("missing" if not path.is_file() else f"does not list exactly {', '.join(versions)}"))
    for rel in release_files(d):
        if rel.startswith("proxy/") and rel not in listed and rel != proxy.LIST:
            report.add("proxy", rel, False, f"a file in the proxy that {MANIFEST} does not list")


def _images(d: Path, m: Manifest, report: CheckReport, digest: Digest) -> None:
    """Each image tarball: its digest, its blobs, and that the archive it claims to be made from
    makes exactly these bytes again (the image is derived from the archive, never a second build)."""
    images = manifest_mod.image_files(m)
    for name, (row, image) in sorted(images.items()):
        path = d / name
        if not path.is_file():
            report.add("image", name, False, f"named in {MANIFEST} for {row.target} but missing")
            continue
        if path.stat().st_size != image.size or digest(path) != image.sha256:
            report.add("image", name, False, f"size or sha256 differs from {MANIFEST}'s {image.sha256}")
            continue
        index, problems = oci.read_layout(path)
        named = [x.get("digest") for x in index.get("manifests") or []]
        if not problems and named != [image.manifest_digest]:
            problems.append(f"index.json names {named}, {MANIFEST} says {image.manifest_digest}")
        if problems:
            report.add("image", name, False, "; ".join(problems[:3]))
            continue
        archive = d / row.archive
        target = Target.parse(row.target)
        if not archive.is_file() or digest(archive) != row.sha256:
            report.add("image", name, False, f"cannot be re-derived: its archive {archive.name} is missing or altered")
            continue
        with tempfile.TemporaryDirectory(prefix=".gopatch-check-") as tmp:
            try:
                again = oci.build(archive, Path(tmp) / name, version=m.version, target=target,
                                  name=image.ref.rsplit(":", 1)[0], labels=_user_labels(image))
            except GopatchError as e:
                report.add("image", name, False, f"cannot be re-derived from {archive.name}: {e.message}")
                continue
        ok = again.sha256 == image.sha256
        report.add("image", name, ok, f"{image.ref} {image.manifest_digest}, made from {archive.name}" if ok
                   else f"{archive.name} makes an image with sha256 {again.sha256}, not this one")
    for path in sorted(d.glob(f"*{oci.SUFFIX}")):
        if path.name not in images:
            report.add("image", path.name, False, f"an image that {MANIFEST} does not list")


def _user_labels(image: ImageEntry) -> dict[str, str]:
    """The labels release passed in (the created label is added by oci.build itself)."""
    return {k: str(v) for k, v in image.labels.items() if k != "org.opencontainers.image.created"}


def _provenance(d: Path, m: Manifest, report: CheckReport) -> None:
    for name in sorted(manifest_mod.expected_names(m)):
        path = d / f"{name}{PROVENANCE_SUFFIX}"
        if not path.is_file():
            report.add("provenance", path.name, False, "missing")
            continue
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            want = provenance.statement(m, name)
        except (ValueError, KeyError, StopIteration) as e:
            report.add("provenance", path.name, False, f"unreadable or not derivable from {MANIFEST} ({e!r})")
            continue
        if held != want:
            differs = sorted(k for k in set(held) | set(want) if held.get(k) != want.get(k))
            report.add("provenance", path.name, False, f"differs from what {MANIFEST} implies in: {', '.join(differs)}")
        else:
            report.add("provenance", path.name, True, "subject and materials as in the manifest")


def _patches(m: Manifest, series_dir: Path, report: CheckReport) -> None:
    for p in m.patches:
        path = series_dir / f"{p.name}.patch"
        if not path.is_file():
            report.add("patches", str(path), False, f"patch {p.name} named in {MANIFEST} is missing")
        elif (actual := sha256_file(path)) != p.sha256:
            report.add("patches", str(path), False, f"sha256 {actual} but {MANIFEST} says {p.sha256}")
        else:
            report.add("patches", str(path), True, "same sha256 as in the manifest")


def _signature(d: Path, m: Manifest, report: CheckReport, public_key: str | None) -> None:
    info = m.signing
    sig = d / SIG
    if not info:
        if sig.exists():
            report.add("signature", SIG, False, f"present, but {MANIFEST} records no signing")
        elif public_key:
            report.add("signature", SIG, False, "a signature was required (--public-key) but the release is unsigned")
        return
    pub = str(info.get("public_key", ""))
    if public_key and public_key.split()[:2] != pub.split()[:2]:
        report.add("signature", MANIFEST, False, "signed with another key than --public-key")
        return
    if not sig.is_file():
        report.add("signature", SIG, False, f"missing, but {MANIFEST} says the release is signed")
        return
    try:
        why = signing.check(pub, d / SUMS, sig)
    except GopatchError as e:
        why = e.message
    report.add("signature", SIG, why is None, f"good signature of {SUMS} by {info.get('fingerprint', pub[:30])}"
               if why is None else why)


def series_dir_of(d: Path, patches_dir: Path) -> tuple[Path | None, str]:
    """(the series directory ``d``'s patch files are checked against and rebuilt from, why not):
    ``<patches_dir>/<the manifest's series>``, or (None, the reason) when ``d`` has no readable
    release manifest. ``check_release`` then fails its "manifest" check for the same reason, and
    with no manifest there is no series to check patch files against or to rebuild."""
    try:
        m = manifest_mod.load(Path(d) / MANIFEST)
    except GopatchError as e:
        return None, e.message
    return Path(patches_dir) / str(m.series or ""), ""


def check_release(d: Path, *, series_dir: Path | None, public_key: str | None = None) -> CheckReport:
    """Every check of a release directory; ``series_dir`` None skips the patch-file check."""
    d = Path(d)
    report = CheckReport(dir=str(d))
    if not d.is_dir():
        report.add("listing", str(d), False, "not a directory")
        return report
    # SHA256SUMS, the .sha256 files and the manifest all name the same archives: read each once.
    digest: Digest = functools.cache(sha256_file)
    _checksums(d, report, digest)
    _sha_files(d, report, digest)
    try:
        m = manifest_mod.load(d / MANIFEST)
    except GopatchError as e:
        report.add("manifest", MANIFEST, False, e.message)
        return report
    report.version = m.version
    _manifest(d, m, report, digest)
    _proxy(d, m, report, digest)
    _images(d, m, report, digest)
    _provenance(d, m, report)
    if series_dir is not None:
        _patches(m, series_dir, report)
    _signature(d, m, report, public_key)
    return report
