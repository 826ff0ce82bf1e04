"""Assembling a release directory: all of it or nothing, and never two releases in one directory.

Everything is written into a hidden directory beside the destination and renamed into place at
the end, so an interrupted release leaves the previous directory (or none) and a ``.<name>.new-*``
leftover that the next run removes. A destination that holds another release (another version or
other archive bytes) is refused unless ``force``; one that holds this very release is replaced,
which makes ``gopatch release`` safe to re-run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..atomic import build_dir_atomic, write_file_atomic
from ..errors import EnvironmentProblem, RecordError
from ..records import Manifest
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
    if not (dest / MANIFEST).is_file():
        return None
    try:
        m = Manifest.load(dest / MANIFEST)
    except RecordError:  # another gopatch's manifest, or not one: not this release either
        return None
    return m.version, {t.archive: t.sha256 for t in m.targets}


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


def write_release(dest: Path, *, manifest: Manifest, files: dict[str, Callable[[Path], str]],
                  sign_key: Path | None, force: bool, log: Log) -> list[str]:
    """Assemble ``dest``: ``files`` maps each published path (an archive, a module file under
    proxy/, an image) to a function writing it into a path and returning its sha256 (the copy
    hashes as it writes, so the archives are not read again).

    Then per archive its .sha256 and .intoto.json, the proxy's ``list``, manifest.json, SHA256SUMS
    over all of those, and with ``sign_key`` SHA256SUMS.sig. Returns the published paths, sorted.
    """
    dest = Path(dest).absolute()
    digests = {t.archive: t.sha256 for t in manifest.targets}
    check_destination(dest, version=manifest.version, digests=digests, force=force)
    archives = manifest_mod.expected_names(manifest)

    def fill(staged: Path) -> None:
        sums: dict[str, str] = {}
        for name, write in sorted(files.items()):
            log(f"release: {name}")
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            digest = write(staged / name)
            sums[name] = digest
            if name not in archives:  # module files and images are covered by their target's statement
                continue
            write_file_atomic(staged / f"{name}{SHA_SUFFIX}", sum_line(digest, name))
            write_file_atomic(staged / f"{name}{PROVENANCE_SUFFIX}",
                              provenance.dumps(provenance.statement(manifest, name)))
        if versions := provenance.manifest_versions(manifest):
            write_file_atomic(staged / proxy.LIST, proxy.list_text(versions))
        manifest.write(staged / MANIFEST)
        listed = {rel: sums.get(rel) or sha256_file(p) for rel, p in release_files(staged).items()}
        write_file_atomic(staged / SUMS, sums_text(listed))
        if sign_key is not None:
            signing.sign(sign_key, staged / SUMS)
        os.chmod(staged, 0o755)

    # Built in a hidden .<name>.new-* sibling and swapped in whole (stale ones removed first).
    build_dir_atomic(dest, fill)
    return sorted(release_files(dest))


def release_files(d: Path) -> dict[str, Path]:
    """relative posix path -> path of every file in a release directory (proxy/ included)."""
    return {p.relative_to(d).as_posix(): p for p in sorted(Path(d).rglob("*")) if p.is_file()}
