"""The verdict `gopatch verify` leaves beside the artifact it verified: out/<version>/<slug>/verify.json.

The verify stage writes it (``runner.verify``), so every caller of the stage leaves one, not only
the CLI; the release stage reads it (``release/gate.py`` decides whether it allows a release).
The verdict names the artifact by its build key, so a rebuilt artifact (another key) is not
covered by the verdict of the one before it, and it names the patch files it verified against by
sha256, so a patch file edited after verify makes the verdict stale too. A new build of a key
replaces the whole out/ directory (``artifacts.materialize``), which drops an old verdict with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..build.artifacts import BUILD_JSON
from .model import Report
from .report import write_atomic

VERIFY_JSON = "verify.json"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def patch_digests(series_dir: Path, names: list[str]) -> list[dict[str, str]]:
    """[{name, sha256}] of the series' patch files ``names`` (a missing file: sha256 '')."""
    rows = []
    for name in names:
        path = Path(series_dir) / f"{name}.patch"
        rows.append({"name": name, "sha256": _sha256(path) if path.is_file() else ""})
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
    """The verdict beside ``artifact_dir``'s go/; None when there is none or it is not JSON."""
    try:
        data = json.loads((Path(artifact_dir) / VERIFY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
