"""Behaviour, stability and version pieces with the real vanilla toolchain, and the CLI's errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import Target, host_target
from pipeline.errors import EnvironmentProblem, UsageError
from pipeline.records import BuildBootstrap, BuildRecord, BuildSource
from pipeline.verify import behavior, execwrap, stability, toolchains, version
from pipeline.verify.goenv import go_env

PROBE = """package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
)

func main() {
	expect := flag.String("expect", "", "")
	flag.Parse()
	fmt.Println("warming up")
	fmt.Printf("{\\"version\\": %q, \\"expect\\": %q}\\n", runtime.Version(), *expect)
	if *expect != "vanilla" {
		os.Exit(1) // this toolchain is vanilla: only -expect=vanilla holds
	}
}
"""


@pytest.fixture(scope="module")
def go(go_dist) -> Path:
    return go_dist("1.27.3")


def tc_for(go: Path, patched: Path | None = None) -> toolchains.Toolchains:
    return toolchains.Toolchains(target=host_target(), patched=patched or go, compiler=patched or go, vanilla=go,
                                 version="go1.27.3", release="go1.27.3")


def test_probe_contract_expectations_and_facts(go, shared_cache, tmp_path):
    (tmp_path / "go.mod").write_text("module probe\n\ngo 1.27\n")
    (tmp_path / "main.go").write_text(PROBE)
    ok = behavior.run_probe(tmp_path, go, "vanilla", cache_dir=shared_cache, timeout=120)
    assert ok["ok"] and ok["exit"] == 0 and ok["facts"] == {"version": "go1.27.3", "expect": "vanilla"}
    wrong = behavior.run_probe(tmp_path, go, "patched", cache_dir=shared_cache, timeout=120)
    assert not wrong["ok"] and wrong["exit"] == 1


def test_probe_that_does_not_build_is_a_failure_not_a_crash(go, shared_cache, tmp_path):
    (tmp_path / "go.mod").write_text("module probe\n\ngo 1.27\n")
    (tmp_path / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    res = behavior.run_probe(tmp_path, go, "patched", cache_dir=shared_cache, timeout=120)
    assert not res["ok"] and res["error"] == "probe does not build" and "undefined" in res["stderr"]


def test_go_test_exec_wrapper_records_each_binary(go, shared_cache):
    results = behavior.run_tests(tc_for(go), "container/list:TestList$", cache_dir=shared_cache, timeout=120)
    (res,) = results
    assert res["ok"], res["output"]
    (binary,) = res["binaries"]
    assert binary["binary"] == "list.test" and binary["exit"] == 0
    assert any(a.startswith("-test.run=") or a == "-test.run" for a in binary["args"])
    assert binary["env"]["GOROOT"] == str(go) and "GOPATCH_EXEC_LOG" not in binary["env"]


def test_execwrap_passes_exit_status_through(tmp_path, monkeypatch):
    log = tmp_path / "exec.jsonl"
    monkeypatch.setenv("GOPATCH_EXEC_LOG", str(log))
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    assert execwrap.main([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    record = json.loads(log.read_text())
    assert record["exit"] == 3 and "SECRET_TOKEN" in record["other_env"]
    assert "hunter2" not in log.read_text()


def test_soak_workload_trace_is_parsed(go, shared_cache):
    figures = stability.soak_one(go, 1.0, cache_dir=shared_cache)
    assert figures["ok"] and figures["gc_count"] > 0 and figures["pauses"] == 2 * figures["gc_count"]
    assert 0 < figures["pause_p50_ms"] <= figures["pause_p99_ms"] <= figures["pause_max_ms"]
    assert int(figures["sched"]["gomaxprocs"]) >= 1  # schedtrace lines were parsed


def test_soak_judge_flags_regressions_beyond_threshold_and_floor():
    base = {"ok": True, "gc_count": 10, "pause_p50_ms": 0.1, "pause_p99_ms": 1.0}
    assert stability.judge(base, {**base, "pause_p99_ms": 1.4}, 1.0) == []  # within noise floor
    worse = stability.judge(base, {**base, "pause_p99_ms": 3.0}, 1.0)
    assert len(worse) == 1 and "p99" in worse[0]


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("2m", 120), ("1500ms", 1.5), ("5", 5)])
def test_parse_duration(text, seconds):
    assert stability.parse_duration(text) == seconds


def test_bad_soak_duration_is_a_usage_error():
    with pytest.raises(UsageError):
        stability.parse_duration("soon")


def test_version_layer_on_a_vanilla_toolchain(go, shared_cache):
    ok = version.check(tc_for(go), cache_dir=shared_cache, suffix="", patch_count=0)
    assert ok.status == "pass", ok.problems
    assert ok.details["facts"]["go env GOROOT"] == str(go)
    stamped = version.check(tc_for(go), cache_dir=shared_cache, suffix="gopatch", patch_count=2)
    assert stamped.status == "fail" and "go1.27.3-gopatch.2" in stamped.problems[0]


def test_version_prefix_does_not_accept_a_longer_patch_count(go, shared_cache, tmp_path):
    tc = tc_for(go)
    tc = toolchains.Toolchains(**{**tc.__dict__, "version": "go1.27.3-gopatch.12"})
    res = version.check(tc, cache_dir=shared_cache, suffix="gopatch", patch_count=1)
    assert any("expected 'go1.27.3-gopatch.1'" in p for p in res.problems)


def test_go_env_drops_the_callers_go_settings(tmp_path):
    env = go_env(Path("/g"), cache_dir=tmp_path, target=Target(goos="darwin", goarch="arm64"),
                 base={"GOFLAGS": "-race", "GOAMD64": "v3", "PATH": "/bin", "HOME": "/h"})
    assert env["GOFLAGS"] == "" and "GOAMD64" not in env and env["GOOS"] == "darwin"
    assert env["PATH"].startswith("/g/bin") and env["GOTOOLCHAIN"] == "local"


def test_release_of_stamped_version():
    assert toolchains.release_of("go1.27.3-gopatch.2+ab12") == "go1.27.3"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "verify", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--layers", "asm,vibes"], 2, "unknown layer vibes"),
    (["--target", "linux/amd46"], 2, "not a GOOS/GOARCH pair"),
    (["-t", "linux/amd64", "-t", "linux/arm64,linux/amd46"], 2, "'linux/amd46' is not a GOOS/GOARCH pair that Go "
                                                               "supports (did you mean linux/amd64?)"),
    (["--toolchain", "/nonexistent/go", "--series", "."], 2, "not a Go toolchain directory"),
])
def test_cli_usage_errors_have_exit_codes_and_no_traceback(tmp_path, args, code, words):
    (tmp_path / "series").write_text("")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_cli_without_a_built_toolchain_says_what_to_do(tmp_path):
    (tmp_path / "series").write_text("")
    proc = run_cli("--series", ".", cwd=tmp_path)
    assert proc.returncode == 3 and "gopatch build" in proc.stderr and "Traceback" not in proc.stderr


def fake_goroot(path: Path, version: str, *, host_tools: bool) -> Path:
    (path / "src" / "runtime").mkdir(parents=True)
    (path / "src" / "runtime" / "proc.go").write_text("package runtime\n")
    (path / "bin").mkdir()
    (path / "VERSION").write_text(f"{version}\ntime 2026-01-01T00:00:00Z\n")
    if host_tools:
        (path / "bin" / "go").write_text("")
        (path / "pkg" / "tool" / host_target().slug).mkdir(parents=True)
    return path


def test_default_toolchain_is_the_build_of_head_not_the_newest(tmp_path):
    # Regression: verify used to take max(VERSION mtime) among out/*/<target>/go. Every distpack
    # VERSION carries the same mtime, so with two builds in out/ it verified an arbitrary one,
    # while release took HEAD's. Both now ask pipeline.build.head for HEAD's build.
    from gittrees import make_tree

    from pipeline.build.head import head_toolchain, head_version
    from pipeline.config import load_options

    make_tree(tmp_path / "goroot")
    opts = load_options(None, env={}, cwd=tmp_path)
    _, _, version = head_version(opts)
    slug = host_target().slug
    with pytest.raises(EnvironmentProblem, match=r"has not been built") as exc:
        head_toolchain(opts, host_target())
    assert "gopatch build --target" in (exc.value.hint or "")
    ours = fake_goroot(tmp_path / "out" / version / slug / "go", version, host_tools=True)
    other = fake_goroot(tmp_path / "out" / f"{version}-other" / slug / "go", f"{version}-other", host_tools=True)
    for when in (1, 10**9):  # whichever is newer, HEAD's build is the answer
        os.utime(ours / "VERSION", (when, when))
        os.utime(other / "VERSION", (10**9 - when + 1,) * 2)
        assert head_toolchain(opts, host_target()) == ours


def test_cross_artifact_is_compiled_by_the_host_build_with_the_same_sources(go, shared_cache, tmp_path):
    target = Target(goos="darwin", goarch="arm64")
    build = tmp_path / "out" / "go1.27.3-gopatch.1"
    host = fake_goroot(build / host_target().slug / "go", "go1.27.3-gopatch.1", host_tools=True)
    cross = fake_goroot(build / target.slug / "go", "go1.27.3-gopatch.1", host_tools=False)
    tc = toolchains.resolve(target=target, toolchain=cross, cache_dir=shared_cache,
                            source_files=["src/runtime/proc.go"])
    assert (tc.patched, tc.compiler, tc.vanilla, tc.release) == (cross, host, go, "go1.27.3")
    (cross / "src" / "runtime" / "proc.go").write_text("package runtime // different\n")
    with pytest.raises(EnvironmentProblem, match="not the same build"):
        toolchains.resolve(target=target, toolchain=cross, cache_dir=shared_cache,
                           source_files=["src/runtime/proc.go"])


def test_version_of_a_cross_toolchain_is_read_from_its_binary(go, shared_cache, tmp_path):
    # A real darwin/arm64 executable built by the vanilla go, standing in for the target's bin/go.
    cross = fake_goroot(tmp_path / "cross", "go1.27.3", host_tools=False)
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "go.mod").write_text("module hello\n\ngo 1.27\n")
    (tmp_path / "hello" / "main.go").write_text("package main\n\nfunc main() {}\n")
    env = go_env(go, cache_dir=shared_cache, target=Target(goos="darwin", goarch="arm64"))
    subprocess.run([str(go / "bin" / "go"), "build", "-o", str(cross / "bin" / "go"), "."], cwd=tmp_path / "hello",
                   env=env, check=True, capture_output=True)
    tc = toolchains.Toolchains(target=Target(goos="darwin", goarch="arm64"), patched=cross, compiler=go,
                               vanilla=go, version="go1.27.3", release="go1.27.3")
    ok = version.check(tc, cache_dir=shared_cache, suffix="", patch_count=0)
    assert ok.status == "pass", ok.problems
    wrong = toolchains.Toolchains(**{**tc.__dict__, "target": Target(goos="windows", goarch="arm64")})
    res = version.check(wrong, cache_dir=shared_cache, suffix="", patch_count=0)
    assert res.problems == [f"`go version -m {cross / 'bin' / 'go'}` does not record GOOS=windows."]


def test_cross_cache_artifact_finds_its_host_twin_by_version(tmp_path):
    """A cache artifact (<cache>/builds/<key>/go) has no out/-style sibling: its host twin is the
    artifact of the same version built for this machine; another version's host build is not."""
    builds = tmp_path / "builds"
    host = host_target()

    def artifact(key: str, version: str, target: str, runnable: bool) -> Path:
        go = builds / key / "go"
        (go / "bin").mkdir(parents=True)
        (go / "bin" / "go").write_bytes(b"\x7fELF")
        if runnable:
            (go / "pkg" / "tool" / host.slug).mkdir(parents=True)
        BuildRecord(version=version, target=target, key=key, kind="host", host=str(host), gopatch="test",
                    source=BuildSource(dir="", head="", tree="", base="", release="go1.27.3", patches=()),
                    bootstrap=BuildBootstrap(goroot="", version="", origin=""), config={}, executor={}, steps=(),
                    seconds=0.0, archives={}, created="").write(builds / key / "build.json")
        return go

    cross = artifact("c" * 64, "go1.27.3-gopatch.3-aaaa", "linux/arm64", runnable=False)
    artifact("o" * 64, "go1.27.3-gopatch.2-bbbb", str(host), runnable=True)
    assert toolchains.host_twin(cross, "go1.27.3-gopatch.3-aaaa") is None
    twin = artifact("h" * 64, "go1.27.3-gopatch.3-aaaa", str(host), runnable=True)
    assert toolchains.host_twin(cross, "go1.27.3-gopatch.3-aaaa") == twin


def test_the_verify_stage_records_its_verdict_beside_the_build_of_head(go, shared_cache, tmp_path):
    """The stage writes verify.json, not the CLI, so every caller of ``verify()`` (bench/verify.py
    too) leaves the verdict `gopatch release` requires; a --toolchain DIR is checked, never vouched for."""
    from gittrees import make_tree

    from pipeline import __version__
    from pipeline.build.head import head_version
    from pipeline.config import load_options
    from pipeline.release import gate
    from pipeline.verify import runner

    make_tree(tmp_path / "goroot")
    (tmp_path / "series").write_text("")
    opts = load_options(None, env={"GOPATCH_CACHE_DIR": str(shared_cache)}, cwd=tmp_path,
                        overrides={"patches.series": (str(tmp_path), "--series")})
    _, _, head = head_version(opts)
    artifact = tmp_path / "out" / head / host_target().slug
    artifact.mkdir(parents=True)
    (artifact / "go").symlink_to(go)  # the real vanilla distribution stands in for HEAD's build
    BuildRecord(version="go1.27.3", target=str(host_target()), key="k" * 64, kind="host", host=str(host_target()),
                gopatch="test", source=BuildSource(dir="", head="", tree="", base="", release="go1.27.3", patches=()),
                bootstrap=BuildBootstrap(goroot="", version="", origin=""), config={}, executor={}, steps=(),
                seconds=0.0, archives={}, created="").write(artifact / "build.json")

    report = runner.verify(opts, target=host_target(), layers=["version"])
    assert report.toolchain == str(artifact / "go")
    layer = report.layers[0]
    assert gate.read_verdict(artifact).to_dict() == {
        "schema": "gopatch-verify/1", "key": "k" * 64, "version": "go1.27.3", "target": str(host_target()), "passed": report.passed,
        "layers": {"version": {"status": layer.status, "summary": layer.summary}}, "patches": [],
        "gopatch": __version__}

    (artifact / "verify.json").unlink()
    runner.verify(opts, target=host_target(), toolchain=artifact / "go", layers=["version"])
    assert not (artifact / "verify.json").exists()

    # Several targets: every build of HEAD is looked up before any layer runs.
    other = Target(goos="windows", goarch="arm64")
    with pytest.raises(EnvironmentProblem, match=f"has not been built for {other}"):
        runner.verify_targets(opts, targets=[host_target(), other], layers=["version"])
    assert not (artifact / "verify.json").exists()
