"""The verdict `gopatch verify` leaves beside the artifact it verified: out/<version>/<slug>/verify.json.

The verify stage writes it (``runner.verify``), so every caller of the stage leaves one, not only
the CLI; the release stage reads it (``release/gate.py`` decides whether it allows a release).
The verdict names the artifact by its build key, so a rebuilt artifact (another key) is not
covered by the verdict of the one before it, and it names the patch files it verified against by
sha256, so a patch file edited after verify makes the verdict stale too. A new build of a key
replaces the whole out/ directory (``artifacts.materialize``), which drops an old verdict with it.
"""

from __future__ import annotations

from pathlib import Path

from ..records import BUILD_JSON, VERIFY_JSON, BuildRecord, Verdict
from .model import Report

__all__ = ["VERIFY_JSON", "write_verdict"]


def write_verdict(report: Report, *, series_dir: Path) -> Path | None:
    """Record ``report`` beside the artifact it verified; None when the toolchain is not a build
    artifact of this gopatch (no build.json it can read next to its go/ directory), as for
    `verify --toolchain /usr/local/go`."""
    artifact_dir = Path(report.toolchain).parent
    build = BuildRecord.load_cached(artifact_dir / BUILD_JSON)
    if build is None:
        return None
    return Verdict.of(report, build=build, series_dir=series_dir).write(artifact_dir / VERIFY_JSON)
