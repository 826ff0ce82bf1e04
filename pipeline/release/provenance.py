"""One in-toto Statement v1 with a SLSA Provenance v1 predicate per archive, from the manifest alone.

Spec: https://slsa.dev/spec/v1.0/provenance and https://github.com/in-toto/attestation (Statement
v1). Subjects = the archive's sha256, and for a target also its golang.org/toolchain module
files, the proxy's ``list`` and its OCI image (tarball and manifest digest); resolved dependencies = the Go source commit, each patch file,
the bootstrap toolchain. Built from the manifest only, so ``release verify`` can recompute it and
compare, and ``release gather`` writes exactly what a single-machine release would.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..records import Manifest, TargetEntry
from . import proxy

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://gopatch.dev/build/make.bash-distpack/v1"


def _dependencies(manifest: Manifest) -> list[dict[str, Any]]:
    go = manifest.go
    source = go.source
    deps: list[dict[str, Any]] = [{
        "name": f"go source {go.ref}",
        "uri": source.url or source.recorded,
        "digest": {"gitCommit": source.base_commit},
    }]
    for p in manifest.patches:
        deps.append({"name": f"patches/{manifest.series}/{p.name}.patch",
                     "digest": {"sha256": p.sha256}, "annotations": {"subject": p.subject}})
    boot = manifest.bootstrap
    deps.append({"name": f"bootstrap {boot.version}", "uri": boot.origin,
                 "digest": {"dirhash1": boot.dirhash}})
    return deps


def _subjects(manifest: Manifest, row: TargetEntry | None) -> list[dict[str, Any]]:
    """What a target's build made besides its archive: the module files under proxy/, the proxy's
    ``list`` (it names this target's module version), the image tarball and the image itself."""
    out: list[dict[str, Any]] = []
    if row is None:
        return out
    for f in row.module.files:
        out.append({"name": f.name, "digest": {"sha256": f.sha256}})
    listing = proxy.list_text(manifest_versions(manifest)).encode()
    out.append({"name": proxy.LIST, "digest": {"sha256": hashlib.sha256(listing).hexdigest()}})
    if (image := row.image) is not None:
        out.append({"name": image.file, "digest": {"sha256": image.sha256}})
        out.append({"name": image.ref, "digest": {"sha256": image.manifest_digest.removeprefix("sha256:")}})
    return out


def manifest_versions(manifest: Manifest) -> list[str]:
    return [t.module.version for t in manifest.targets]


def statement(manifest: Manifest, archive: str) -> dict[str, Any]:
    """The statement for ``archive`` (a target's archive or the source archive); KeyError when
    the manifest names no such archive."""
    row: TargetEntry | None
    if archive == manifest.source_archive.name:
        digest, target, row = manifest.source_archive.sha256, "src", None
    else:
        row = next((t for t in manifest.targets if t.archive == archive), None)
        if row is None:
            raise KeyError(archive)
        digest, target = row.sha256, row.target
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": archive, "digest": {"sha256": digest}}, *_subjects(manifest, row)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "goRelease": manifest.go.release,
                    "series": manifest.series,
                    "patches": [p.name for p in manifest.patches],
                    "target": target,
                    "version": manifest.version,
                },
                "internalParameters": {"buildConfig": manifest.build_config,
                                       "env": row.env if row else {}, "versionLabel": manifest.version_label},
                "resolvedDependencies": _dependencies(manifest),
            },
            "runDetails": {
                "builder": {"id": f"gopatch/{(row.builder if row else {}).get('executor', 'distpack')}",
                            "version": {"gopatch": manifest.gopatch}},
                "metadata": {"invocationId": row.build_key if row else ""},
                "byproducts": [{"name": "builder", "annotations": row.builder}] if row else [],
            },
        },
    }


def dumps(st: dict[str, Any]) -> str:
    return json.dumps(st, indent=2, sort_keys=True) + "\n"
