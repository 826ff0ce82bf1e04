"""Assembling a release directory: all of it or nothing, and never two releases in one directory.

Everything is written into a hidden directory beside the destination and renamed into place at
the end, so an interrupted release leaves the previous directory (or none) and a ``.<name>.new-*``
leftover that the next run removes. A destination that holds another release (another version or
other archive bytes) is refused unless ``force``; one that holds this very release is replaced,
which makes ``gopatch release`` safe to re-run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem
from . import manifest as manifest_mod
from . import provenance, proxy, signing
from .checksums import (
    MANIFEST,
    PROVENANCE_SUFFIX,
    SHA_SUFFIX,
    SUMS,
    sha256_file,
    sum_line,
    sums_text,
)

Log = Callable[[str], None]


def _held_release(dest: Path) -> tuple[str, dict[str, str]] | None:
    """(version, archive -> sha256) of the release in ``dest``; None if it holds no manifest."""
    try:
        m = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict):
        return None
    digests = {t.get("archive"): t.get("sha256") for t in m.get("targets") or []}
    return str(m.get("version")), digests


def check_destination(dest: Path, *, version: str, digests: dict[str, str], force: bool) -> None:
    """Refuse to mix releases: ``dest`` must be absent, empty, or hold the same release."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise EnvironmentProblem(f"{dest} exists and is not a directory; choose another --out.")
    if not any(dest.iterdir()) or force:
        return
    held = _held_release(dest)
    if held is None:
        raise EnvironmentProblem(
            f"{dest} is not empty and holds no release manifest; gopatch will not mix a release into other files.",
            hint="pass --out with a new or empty directory, or --force to replace its contents")
    old_version, old = held
    clash = [name for name, digest in old.items() if name in digests and digests[name] != digest]
    if old_version != version or clash:
        what = f"release {old_version}" if old_version != version else f"other bytes for {', '.join(clash)}"
        raise EnvironmentProblem(
            f"{dest} already holds {what}; one directory never mixes two releases.",
            hint="pass --out with another directory, or --force to replace it")


def write_release(dest: Path, *, manifest: dict[str, Any], files: dict[str, Callable[[Path], str]],
                  sign_key: Path | None, force: bool, log: Log) -> list[str]:
    """Assemble ``dest``: ``files`` maps each published path (an archive, a module file under
    proxy/, an image) to a function writing it into a path and returning its sha256 (the copy
    hashes as it writes, so the archives are not read again).

    Then per archive its .sha256 and .intoto.json, the proxy's ``list``, manifest.json, SHA256SUMS
    over all of those, and with ``sign_key`` SHA256SUMS.sig. Returns the published paths, sorted.
    """
    dest = Path(dest).absolute()
    digests = {t["archive"]: t["sha256"] for t in manifest.get("targets") or []}
    check_destination(dest, version=str(manifest["version"]), digests=digests, force=force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    archives = manifest_mod.expected_names(manifest)
    try:
        sums: dict[str, str] = {}
        for name, write in sorted(files.items()):
            log(f"release: {name}")
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            digest = write(staged / name)
            sums[name] = digest
            if name not in archives:  # module files and images are covered by their target's statement
                continue
            (staged / f"{name}{SHA_SUFFIX}").write_text(sum_line(digest, name), encoding="utf-8")
            (staged / f"{name}{PROVENANCE_SUFFIX}").write_text(provenance.dumps(provenance.statement(manifest, name)),
                                                                encoding="utf-8")
        if versions := provenance.manifest_versions(manifest):
            (staged / proxy.LIST).parent.mkdir(parents=True, exist_ok=True)
            (staged / proxy.LIST).write_text(proxy.list_text(versions), encoding="utf-8")
        (staged / MANIFEST).write_text(manifest_mod.dumps(manifest), encoding="utf-8")
        listed = {rel: sums.get(rel) or sha256_file(p) for rel, p in release_files(staged).items()}
        (staged / SUMS).write_text(sums_text(listed), encoding="utf-8")
        if sign_key is not None:
            signing.sign(sign_key, staged / SUMS)
        os.chmod(staged, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "release")
            os.replace(staged, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, dest)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return sorted(release_files(dest))


def release_files(d: Path) -> dict[str, Path]:
    """relative posix path -> path of every file in a release directory (proxy/ included)."""
    return {p.relative_to(d).as_posix(): p for p in sorted(Path(d).rglob("*")) if p.is_file()}
