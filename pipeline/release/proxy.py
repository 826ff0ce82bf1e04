"""The release as a GOTOOLCHAIN module proxy: ``proxy/golang.org/toolchain/@v/``.

Since Go 1.21 ``GOTOOLCHAIN=go1.X.Y`` (or a go.mod ``toolchain`` line) makes the go command
download the module ``golang.org/toolchain@v0.0.1-go1.X.Y.<goos>-<goarch>`` from ``GOPROXY`` and
run the go inside it. ``make.bash -distpack`` and ``go tool distpack`` already write that
module's three files for every build (cmd/distpack: ``v0.0.1-<version>.<goos>-<goarch>.zip``,
``.mod``, ``.info``), and the go command strips a custom ``-suffix`` when it checks a toolchain
name (cmd/go/internal/gover/toolchain.go, "Some builds use custom suffixes"), so a stamped
``go1.27.3-gopatch.3-07c390c9`` switches like an upstream release. The release publishes the
three files byte for byte as distpack wrote them, plus the ``list`` file of the GOPROXY protocol
(https://go.dev/ref/mod#goproxy-protocol), so the directory works as ``GOPROXY=file://…/proxy``
or behind any static file server.

The manifest records each module zip's ``h1:`` hash, computed as the go command does
(golang.org/x/mod/sumdb/dirhash.HashZip with Hash1: every zip entry's name, with its
``golang.org/toolchain@<version>/`` prefix, and the sha256 of its content), so a user who does
not trust the proxy can compare it with ``$GOMODCACHE/cache/download/golang.org/toolchain/@v/
<version>.ziphash`` after a download.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from ..config import Target
from .checksums import CHUNK, PROXY_DIR, hash1

MODULE = "golang.org/toolchain"
LIST = f"{PROXY_DIR}/list"
EXTENSIONS = ("zip", "mod", "info")


def module_version(version: str, target: Target) -> str:
    """cmd/distpack's module version: v0.0.1-go1.27.3-gopatch.3-07c390c9.linux-amd64."""
    return f"v0.0.1-{version}.{target.goos}-{target.goarch}"


def module_files(version: str, target: Target) -> dict[str, str]:
    """extension -> file name as distpack writes it into pkg/distpack/."""
    v = module_version(version, target)
    return {ext: f"{v}.{ext}" for ext in EXTENSIONS}


def published(name: str) -> str:
    """The path of a distpack module file inside the release directory."""
    return f"{PROXY_DIR}/{name}"


def list_text(versions: list[str]) -> str:
    """The GOPROXY ``list`` file: one version per line."""
    return "".join(f"{v}\n" for v in sorted(set(versions)))


def zip_h1(path: Path) -> str:
    """dirhash.HashZip(path, Hash1): the ``h1:`` the go command and the checksum database record.

    Read member by member: a toolchain zip holds ~12,000 files and ~230 MB uncompressed."""
    files = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            # HashZip hashes every entry; distpack's zips hold files only (no directory entries).
            h = hashlib.sha256()
            with zf.open(info) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            files.append((info.filename, h.hexdigest()))
    return hash1(files)
