"""Only verified toolchains are released: the verdict `gopatch verify` leaves beside an artifact.

The verify stage (on a build in out/, not on a --toolchain DIR) writes
``out/<version>/<goos>_<goarch>/verify.json`` (``pipeline/verify/verdict.py`` says what it holds
and why); ``gopatch release`` reads it, and ``verdict_problem`` decides whether it allows a release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The verdict file is the verify stage's record (it writes it); release only reads it. These
# names stay importable from here for the release modules (and tests) that use them.
from ..verify.verdict import VERIFY_JSON, patch_digests, read_verdict

__all__ = ["VERIFY_JSON", "patch_digests", "read_verdict", "verdict_problem"]


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
