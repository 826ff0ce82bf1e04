"""Archive against archive, member by member (like upstream's gorebuild does for Go's releases).

Equal bytes settle it at once; otherwise the report names each member that is missing on one
side or differs in content, mode, mtime or type, so a failed reproduction points at the file.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from .checksums import sha256_file

MAX_LISTED = 50


def members(path: Path) -> dict[str, tuple[str, ...]]:
    """member name -> (type, mode, mtime, size, sha256) of a .tar.gz or .zip."""
    out: dict[str, tuple[str, ...]] = {}
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                data = b"" if info.is_dir() else zf.read(info)
                out[info.filename] = ("dir" if info.is_dir() else "file", oct(info.external_attr >> 16),
                                      "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*info.date_time), str(info.file_size),
                                      hashlib.sha256(data).hexdigest())
        return out
    with tarfile.open(path) as tar:
        for m in tar:
            digest = ""
            if m.isfile():
                f = tar.extractfile(m)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()
            kind = "file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym() else "other"
            out[m.name] = (kind, oct(m.mode), str(m.mtime), str(m.size), digest + (m.linkname or ""))
    return out


_FIELDS = ("type", "mode", "mtime", "size", "content")


def compare(published: Path, rebuilt: Path) -> dict[str, Any]:
    """{archive, identical, sha256 published/rebuilt, members, differences: [{member, what}]}."""
    a, b = sha256_file(published), sha256_file(rebuilt)
    result: dict[str, Any] = {"archive": published.name, "published_sha256": a, "rebuilt_sha256": b,
                              "identical": a == b, "differences": [], "members": 0}
    left = members(published)
    result["members"] = len(left)
    if a == b:
        return result
    right = members(rebuilt)
    diffs = []
    for name in sorted(set(left) | set(right)):
        if name not in right:
            diffs.append({"member": name, "what": "only in the published archive"})
        elif name not in left:
            diffs.append({"member": name, "what": "only in the rebuilt archive"})
        elif left[name] != right[name]:
            fields = [f for f, x, y in zip(_FIELDS, left[name], right[name], strict=True) if x != y]
            diffs.append({"member": name, "what": f"differs in {', '.join(fields)}"})
    if not diffs:
        diffs.append({"member": "(archive)", "what": "same members, different archive bytes (order or compression)"})
    result["differences_total"] = len(diffs)
    result["differences"] = diffs[:MAX_LISTED]
    return result
