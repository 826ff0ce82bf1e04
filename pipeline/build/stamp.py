"""Version stamping: the string ``go version`` of a patched build reports, and writing it.

Shape: ``<release>-<label>.<patches>-<tree>``, e.g. ``go1.27.3-gopatch.3-1f0c9e2a``:

* ``<release>`` the tree's own VERSION (go1.27.3), so every tool that parses Go versions sees the
  right release: Go cuts a version at its first ``-`` (go/version, the go.mod ``toolchain`` line,
  ``toolchain go1.21.0-bigcorp`` in the toolchain docs) and forks stamp this way
  (Microsoft ``go1.23.2-1``, golang-fips ``go1.26.5-2-openssl-fips``).
* ``<label>.<patches>`` ``[build] version_suffix`` and the number of patch commits above the base.
* ``<tree>`` 8 hex digits of the git *tree* hash of the patched source: the same series on the
  same base always gives the same string, any other change gives another one.

No ``+``: distpack turns the version into the module version
``v0.0.1-<version>.<goos>-<goarch>`` of golang.org/toolchain, where ``+`` would start semver
build metadata, and ``GOTOOLCHAIN=<name>+auto`` splits at ``+``. Only [A-Za-z0-9.-] is allowed,
for the same reason (golang/go#75953 shows a suffix that broke tools).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError

_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[.-][A-Za-z0-9]+)*$")


def check_label(label: str) -> None:
    if label and not _LABEL_RE.fullmatch(label):
        raise ConfigError(
            f"[build] version_suffix = {label!r} cannot go into a Go version: use letters and "
            "digits (dots and dashes between them), starting with a letter, e.g. gopatch or acme-fips.",
            hint="Go tools cut versions at '-' and module versions reject '+' and '_' (golang/go#75953)",
        )


def stamped_version(release: str, *, label: str, patches: int, tree_hash: str) -> str:
    """go1.27.3, gopatch, 3, 1f0c9e2a... -> go1.27.3-gopatch.3-1f0c9e2a; no label -> the release."""
    check_label(label)
    if not re.fullmatch(r"go\d+\.\d+(\.\d+)?((rc|beta)\d+)?", release):
        raise ConfigError(
            f"the tree's VERSION says {release!r}, not a Go release such as go1.27.3, so gopatch "
            "cannot stamp a version Go tools accept.",
            hint="build from a checkout of a Go release tag (gopatch checkout --ref go1.27.3)",
        )
    if not label:
        return release
    return f"{release}-{label}.{patches}-{tree_hash[:8]}"


def read_version_file(path: Path) -> tuple[str, list[str]]:
    """(first line, the other lines) of a Go VERSION file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"{path} is empty: not a Go release tree.")
    return lines[0].strip(), lines[1:]


def write_version_file(path: Path, version: str) -> None:
    """Replace VERSION's first line with ``version``, keeping the rest.

    The ``time`` line must stay: distpack stamps every archive member's mtime from it, which is
    what makes the archives reproducible.
    """
    read_version_file(path)  # refuse an empty file
    _, sep, rest = path.read_text(encoding="utf-8").partition("\n")
    path.write_text(version + sep + rest, encoding="utf-8")
