"""Only verified toolchains are released: the verdict `gopatch verify` leaves beside an artifact.

``gopatch verify`` (on a build in out/, not on a --toolchain DIR) writes
``out/<version>/<goos>_<goarch>/verify.json``; ``gopatch release`` reads it. The verdict names the
artifact by its build key, so a rebuilt artifact (another key) is not covered by the verdict of
the one before it, and it names the patch files it verified against by sha256, so a patch file
edited after verify makes the verdict stale too. A new build of a key replaces the whole out/
directory (``artifacts.materialize``), which drops an old verdict with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..build.artifacts import BUILD_JSON
from ..verify.model import Report
from ..verify.report import write_atomic
from .checksums import sha256_file

VERIFY_JSON = "verify.json"


def patch_digests(series_dir: Path, names: list[str]) -> list[dict[str, str]]:
    """[{name, sha256}] of the series' patch files ``names`` (a missing file: sha256 '')."""
    rows = []
    for name in names:
        path = Path(series_dir) / f"{name}.patch"
        rows.append({"name": name, "sha256": sha256_file(path) if path.is_file() else ""})
    return rows


def write_verdict(report: Report, *, series_dir: Path) -> Path | None:
    """Record ``report`` beside the artifact it verified; None when the toolchain is not a build
    artifact (no build.json next to its go/ directory), as for `verify --toolchain /usr/local/go`."""
    artifact_dir = Path(report.toolchain).parent
    try:
        build = json.loads((artifact_dir / BUILD_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    verdict = {
        "key": build.get("key", ""),
        "version": report.version,
        "target": report.target,
        "passed": report.passed,
        # Status and summary only: timings change from run to run, and the release manifest
        # copies this, so a second verify of the same artifact must not make another release.
        "layers": {x.layer: {"status": x.status, "summary": x.summary} for x in report.layers},
        "patches": patch_digests(series_dir, list(report.patches)),
        "gopatch": __version__,
    }
    path = artifact_dir / VERIFY_JSON
    write_atomic(path, json.dumps(verdict, indent=2, sort_keys=True) + "\n")
    return path


def read_verdict(artifact_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(artifact_dir) / VERIFY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verdict_problem(verdict: dict[str, Any] | None, *, key: str, patches: list[dict[str, str]],
                    required: Sequence[str] = ()) -> tuple[str, str] | None:
    """Why ``verdict`` does not allow releasing the artifact ``key`` built from ``patches``:
    (kind, sentence) with kind missing | failed | stale | incomplete; None when it does.

    ``required``: layers that must have run (a `verify --layers version` pass proves little)."""
    if verdict is None:
        return "missing", "it was never verified (no verify.json)"
    if verdict.get("key") != key:
        return "stale", (f"verify.json is about another build (key {str(verdict.get('key'))[:16]}…, "
                         f"this build is {key[:16]}…)")
    if not verdict.get("passed"):
        failed = [name for name, x in (verdict.get("layers") or {}).items() if x.get("status") == "fail"]
        return "failed", f"verification failed in: {', '.join(failed) or '?'}"
    ran = set(verdict.get("layers") or {})
    if missing := [x for x in required if x not in ran]:
        return "incomplete", f"verify did not run the layer(s) {', '.join(missing)} (it ran: {', '.join(sorted(ran)) or 'none'})"
    verified = verdict.get("patches") or []
    if [p.get("name") for p in verified] != [p["name"] for p in patches]:
        return "stale", (f"it was verified against the patches {', '.join(str(p.get('name')) for p in verified) or '(none)'}, "
                         f"but the build carries {', '.join(p['name'] for p in patches) or '(none)'}")
    if verified != patches:
        changed = [p["name"] for p, v in zip(patches, verified, strict=True) if p != v]
        return "stale", f"the patch file(s) {', '.join(changed)} changed since it was verified"
    return None
