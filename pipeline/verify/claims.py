"""What each patch of the series claims: the functions it touches, its helpers, its API changes,
its probe, and the Go files its diff changes. Verify checks the toolchain against these claims.

The series itself is read by ``pipeline.patches.series.load_series`` (the patch engine owns the format);
this module only adds the list of changed files, which it reads from the diff with unidiff.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import unidiff

from ..errors import PatchFormatError


@dataclass(frozen=True)
class Claim:
    name: str
    subject: str
    touches: tuple[str, ...]
    helpers: tuple[str, ...]
    api: tuple[str, ...]
    probe: Path | None  # absolute probe directory
    files: tuple[str, ...]  # changed non-test .go files, relative to GOROOT (src/runtime/proc.go)


def _names(value: Any) -> tuple[str, ...]:
    """Trailers may arrive as a tuple or as the raw comma-separated text: accept both."""
    if not value:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(w.strip() for item in items for w in str(item).split(",") if w.strip())


def changed_go_files(patch_file: Path, data: bytes | None = None) -> tuple[str, ...]:
    # Bytes + latin-1: real Go diffs carry non-UTF-8 bytes and lone CRs (README: "Facts the design rests on").
    try:
        data = patch_file.read_bytes() if data is None else data
        start = data.find(b"diff --git ")
        ps = unidiff.PatchSet(io.BytesIO(data[start:] if start >= 0 else data), encoding="latin-1")
    except (OSError, unidiff.UnidiffParseError) as exc:
        raise PatchFormatError(f"{patch_file}: cannot read the diff to find the files it changes: {exc}") from None
    files = []
    for pf in ps:
        path = pf.target_file if not pf.is_removed_file else pf.source_file
        path = path[2:] if path[:2] in ("a/", "b/") else path
        if path.startswith("src/") and path.endswith(".go") and not path.endswith("_test.go") and "/testdata/" not in path:
            files.append(path)
    return tuple(dict.fromkeys(files))


def from_patches(patches: Iterable[Any], series_dir: Path) -> list[Claim]:
    """Adapt the patch engine's Patch objects (.name .path .subject .touches .helpers .api .probe).
    A Probe: is found as the patch engine finds it (``probe_dir``: the series' own copy, else the
    shared one); one that names no directory stops here, before anything is built or run."""
    from ..patches.series import probe_dir  # owned by the patch engine

    claims = []
    for p in patches:
        claims.append(Claim(
            name=p.name,
            subject=getattr(p, "subject", "") or "",
            touches=_names(getattr(p, "touches", ())),
            helpers=_names(getattr(p, "helpers", ())),
            api=_names(getattr(p, "api", ())),
            probe=probe_dir(p, series_dir) if getattr(p, "probe", None) else None,
            files=changed_go_files(Path(p.path), getattr(p, "diff", None)),
        ))
    return claims


def load_claims(series_dir: Path) -> list[Claim]:
    from ..patches.series import load_series  # owned by the patch engine

    return from_patches(load_series(series_dir), series_dir)
