"""Only verified toolchains are released: the verdict `gopatch verify` leaves beside an artifact.

The verify stage (on a build in out/, not on a --toolchain DIR) writes
``out/<version>/<goos>_<goarch>/verify.json`` (``pipeline/verify/verdict.py`` says what it holds
and why); ``gopatch release`` reads it, and ``verdict_problem`` decides whether it allows a release.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import records
from ..records import VERIFY_JSON, Verdict

__all__ = ["VERIFY_JSON", "patch_digests", "read_verdict", "verdict_problem"]


def patch_digests(series_dir: Path, names: list[str]) -> list[dict[str, str]]:
    """[{name, sha256}] of the series' patch files ``names`` (a missing file: sha256 '')."""
    return [p.to_dict() for p in records.patch_digests(series_dir, names)]


def read_verdict(artifact_dir: Path) -> Verdict | None:
    """The verdict beside an artifact; None when there is none. One an older gopatch wrote, or a
    broken one, is a RecordError saying to verify again."""
    path = Path(artifact_dir) / VERIFY_JSON
    if not path.is_file():
        return None
    return Verdict.load(path)


def verdict_problem(verdict: Verdict | None, *, key: str, patches: list[dict[str, str]],
                    required: Sequence[str] = ()) -> tuple[str, str] | None:
    """Why ``verdict`` does not allow releasing the artifact ``key`` built from ``patches``:
    (kind, sentence) with kind missing | failed | stale | incomplete; None when it does.

    ``required``: layers that must have run (a `verify --layers version` pass proves little)."""
    if verdict is None:
        return "missing", "it was never verified (no verify.json)"
    if verdict.key != key:
        return "stale", (f"verify.json is about another build (key {verdict.key[:16]}…, "
                         f"this build is {key[:16]}…)")
    if not verdict.passed:
        failed = [name for name, x in verdict.layers.items() if x.status == "fail"]
        return "failed", f"verification failed in: {', '.join(failed) or '?'}"
    ran = set(verdict.layers)
    if missing := [x for x in required if x not in ran]:
        return "incomplete", f"verify did not run the layer(s) {', '.join(missing)} (it ran: {', '.join(sorted(ran)) or 'none'})"
    verified = [p.to_dict() for p in verdict.patches]
    if [p["name"] for p in verified] != [p["name"] for p in patches]:
        return "stale", (f"it was verified against the patches {', '.join(p['name'] for p in verified) or '(none)'}, "
                         f"but the build carries {', '.join(p['name'] for p in patches) or '(none)'}")
    if verified != patches:
        changed = [p["name"] for p, v in zip(patches, verified, strict=True) if p != v]
        return "stale", f"the patch file(s) {', '.join(changed)} changed since it was verified"
    return None
