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

from . import proxy

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://gopatch.dev/build/make.bash-distpack/v1"


def _dependencies(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    go = manifest.get("go") or {}
    source = go.get("source") or {}
    deps: list[dict[str, Any]] = [{
        "name": f"go source {go.get('ref', '')}",
        "uri": source.get("url") or str(source.get("recorded", "")),
        "digest": {"gitCommit": source.get("base_commit", "")},
    }]
    for p in manifest.get("patches") or []:
        deps.append({"name": f"patches/{manifest.get('series', '')}/{p['name']}.patch",
                     "digest": {"sha256": p["sha256"]}, "annotations": {"subject": p.get("subject", "")}})
    boot = manifest.get("bootstrap") or {}
    deps.append({"name": f"bootstrap {boot.get('version', '')}", "uri": boot.get("origin", ""),
                 "digest": {"dirhash1": boot.get("dirhash", "")}})
    return deps


def _subjects(manifest: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """What a target's build made besides its archive: the module files under proxy/, the proxy's
    ``list`` (it names this target's module version), the image tarball and the image itself."""
    out: list[dict[str, Any]] = []
    module = row.get("module") or {}
    for f in module.get("files") or []:
        out.append({"name": f["name"], "digest": {"sha256": f["sha256"]}})
    if module:
        listing = proxy.list_text(manifest_versions(manifest)).encode()
        out.append({"name": proxy.LIST, "digest": {"sha256": hashlib.sha256(listing).hexdigest()}})
    if image := row.get("image"):
        out.append({"name": image["file"], "digest": {"sha256": image["sha256"]}})
        out.append({"name": image["ref"], "digest": {"sha256": str(image["manifest_digest"]).removeprefix("sha256:")}})
    return out


def manifest_versions(manifest: dict[str, Any]) -> list[str]:
    return [str(t["module"]["version"]) for t in manifest.get("targets") or [] if t.get("module")]


def statement(manifest: dict[str, Any], archive: str) -> dict[str, Any]:
    """The statement for ``archive`` (a target's archive or the source archive)."""
    if archive == (manifest.get("source_archive") or {}).get("name"):
        digest, target, row = manifest["source_archive"]["sha256"], "src", {}
    else:
        row = next(t for t in manifest.get("targets") or [] if t.get("archive") == archive)
        digest, target = row["sha256"], row["target"]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": archive, "digest": {"sha256": digest}}, *_subjects(manifest, row)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "goRelease": (manifest.get("go") or {}).get("release", ""),
                    "series": manifest.get("series", ""),
                    "patches": [p["name"] for p in manifest.get("patches") or []],
                    "target": target,
                    "version": manifest.get("version", ""),
                },
                "internalParameters": {"buildConfig": manifest.get("build_config") or {},
                                       "env": row.get("env", {}), "versionLabel": manifest.get("version_label", "")},
                "resolvedDependencies": _dependencies(manifest),
            },
            "runDetails": {
                "builder": {"id": f"gopatch/{(row.get('builder') or {}).get('executor', 'distpack')}",
                            "version": {"gopatch": manifest.get("gopatch", "")}},
                "metadata": {"invocationId": row.get("build_key", "")},
                "byproducts": [{"name": "builder", "annotations": row.get("builder", {})}] if row else [],
            },
        },
    }


def dumps(st: dict[str, Any]) -> str:
    return json.dumps(st, indent=2, sort_keys=True) + "\n"
