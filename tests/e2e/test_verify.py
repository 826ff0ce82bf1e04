"""`gopatch verify` end to end with real toolchains: the official go1.27.3 distribution as vanilla
and, as the patched toolchain, a copy of it whose runtime.handoffp counts its calls (a vanilla Go
compiles the runtime from $GOROOT/src, so the copy behaves like a build carrying that patch).

Also: the HTML report rendered by a real headless Debian chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prereq import chromium

pytestmark = pytest.mark.slow

COUNTER_PROBE = """// Probe of the stand-in patch: the toolchain's runtime declares the handoffp counter.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

func main() {
	expect := flag.String("expect", "patched", "patched or vanilla")
	flag.Parse()
	src, _ := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "runtime", "proc.go"))
	has := strings.Contains(string(src), "handoffpCalls")
	fmt.Printf("{\\"counter\\": %v}\\n", has)
	if has != (*expect == "patched") {
		os.Exit(1)
	}
}
"""


def git_diff(old: Path, new: Path, rel: str) -> str:
    proc = subprocess.run(["git", "diff", "--no-index", "--no-color", str(old), str(new)],
                          capture_output=True, text=True)
    lines = proc.stdout.splitlines()[4:]  # drop git's own headers: they name the temp paths
    return f"diff --git a/{rel} b/{rel}\n--- a/{rel}\n+++ b/{rel}\n" + "\n".join(lines) + "\n"


def write_patch(series: Path, name: str, touches: str, diff: str, probe: str | None = None) -> None:
    trailers = f"Touches: {touches}\n" + (f"Probe: {probe}\n" if probe else "")
    (series / f"{name}.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Test <test@example.com>\n"
        f"Subject: [PATCH] runtime: {name}\n\nTest patch.\n\n{trailers}---\n{diff}"
    )
    with (series / "series").open("a") as f:
        f.write(f"{name}.patch\n")


@pytest.fixture(scope="session")
def standin(go_dist, tmp_path_factory):
    vanilla = go_dist("1.27.3")
    root = tmp_path_factory.mktemp("standin")
    patched = root / "go"
    shutil.copytree(vanilla, patched, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    proc_go = patched / "src" / "runtime" / "proc.go"
    proc_go.chmod(0o644)
    text = proc_go.read_text()
    assert text.count("\nfunc handoffp(pp *p) {\n") == 1
    text = text.replace("\nfunc handoffp(pp *p) {\n", "\nfunc handoffp(pp *p) {\n\thandoffpCalls.Add(1)\n")
    proc_go.write_text(text + "\nvar handoffpCalls atomic.Int64\n")
    rel = "src/runtime/proc.go"
    handoffp_diff = git_diff(vanilla / rel, proc_go, rel)

    # A second patch the stand-in does NOT carry: together they are "the series minus one".
    startm_src = root / "startm-proc.go"
    startm_src.write_text((vanilla / rel).read_text().replace(
        "\nfunc startm(pp *p, spinning, lockheld bool) {\n",
        "\nfunc startm(pp *p, spinning, lockheld bool) {\n\tstartmCalls.Add(1)\n") + "\nvar startmCalls atomic.Int64\n")
    startm_diff = git_diff(vanilla / rel, startm_src, rel)

    full = root / "series-full"
    (full / "probes" / "handoffp").mkdir(parents=True)
    (full / "probes" / "handoffp" / "main.go").write_text(COUNTER_PROBE)
    (full / "probes" / "handoffp" / "go.mod").write_text("module probe\n\ngo 1.27\n")
    write_patch(full, "handoffp", "runtime.handoffp", handoffp_diff, "probes/handoffp")
    minus_one = root / "series-two"
    minus_one.mkdir()
    write_patch(minus_one, "handoffp", "runtime.handoffp", handoffp_diff)
    write_patch(minus_one, "startm", "runtime.startm", startm_diff)
    return {"vanilla": vanilla, "patched": patched, "full": full, "two": minus_one, "root": root}


def gopatch(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    env.update(GOPATCH_CACHE_DIR=str(cache), GOPATCH_BUILD_VERSION_SUFFIX="")  # the stand-in is unstamped
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "verify", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def test_patched_standin_passes_every_layer(standin, shared_cache, tmp_path):
    html = tmp_path / "verify.html"
    proc = gopatch("--toolchain", str(standin["patched"]), "--series", str(standin["full"]),
                   "--layers", "version,asm,ast,behavior", "--html", str(html), "--json",
                   cache=shared_cache, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["passed"] and [x["status"] for x in report["layers"]] == ["pass"] * 4
    asm = report["layers"][1]["details"]
    assert asm["patches"] == [{"patch": "handoffp", "subject": "runtime: handoffp",
                               "touches": {"runtime.handoffp": "changed"}}]
    probe = report["layers"][3]["details"]["probes"][0]
    assert probe["patched"]["facts"] == {"counter": True} and probe["vanilla"]["facts"] == {"counter": False}
    assert html.is_file()
    standin["html_pass"] = html.read_text()


def test_vanilla_as_patched_fails_naming_the_function(standin, shared_cache, tmp_path):
    proc = gopatch("--toolchain", str(standin["vanilla"]), "--series", str(standin["full"]), "--layers", "asm",
                   cache=shared_cache, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "patch handoffp: runtime.handoffp has the same machine code as vanilla" in proc.stdout
    assert "failed in: asm" in proc.stderr and "Traceback" not in proc.stderr
    # The terminal: a line per function, no assembly (that is --diff's), the verdict last.
    assert any(line.split()[:2] == ["runtime.handoffp", "unchanged"] for line in proc.stdout.splitlines())
    assert proc.stdout.splitlines()[-1] == "FAIL"


def test_series_minus_one_fails_for_exactly_the_missing_patch(standin, shared_cache, tmp_path):
    html = tmp_path / "fail.html"
    proc = gopatch("--toolchain", str(standin["patched"]), "--series", str(standin["two"]), "--layers", "asm",
                   "--json", "--html", str(html), cache=shared_cache, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    asm = json.loads(proc.stdout)["layers"][0]["details"]
    assert asm["missing"] == {"startm": ["runtime.startm"]}
    assert asm["unexpected"] == []
    standin["html_fail"] = html


def test_cross_target_assembly_is_compared_for_that_target(standin, shared_cache, tmp_path):
    proc = gopatch("--toolchain", str(standin["patched"]), "--series", str(standin["full"]), "--layers", "asm",
                   "--target", "darwin/arm64", "--json", cache=shared_cache, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fn = next(f for f in json.loads(proc.stdout)["layers"][0]["details"]["functions"]
              if f["name"] == "runtime.handoffp")
    # arm64 code: its mnemonics, not amd64's
    assert any(line.startswith(("MOVD", "STP", "LDADDALD")) for line in fn["patched"])
    assert not any(line.startswith("MOVQ") for line in fn["patched"])


VISIBILITY_PROBE = """<script>
  const t = document.getElementById('verdict');
  const r = t && t.getBoundingClientRect();
  const ok = !!t && r.width > 0 && r.height > 0 && getComputedStyle(t).visibility === 'visible'
             && t.querySelectorAll('tr').length > 1;
  document.body.setAttribute('data-verdict-visible', ok ? 'yes' : 'no');
</script></body>"""


def test_html_report_renders_in_headless_chromium(standin, tmp_path):
    browser = chromium()
    source = standin.get("html_fail")
    if source is None:
        pytest.skip("needs the report of test_series_minus_one_fails_for_exactly_the_missing_patch")
    page = tmp_path / "probe.html"
    page.write_text(source.read_text().replace("</body>", VISIBILITY_PROBE))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-verdict-visible="yes"' in dom.stdout, dom.stderr[-2000:]
    assert "FAIL" in dom.stdout and "runtime.startm" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", source.as_uri()],
                   capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000  # a real rendered page, not a blank image
