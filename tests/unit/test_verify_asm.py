"""The asm normaliser, per-function diff and verdict, on real `-S` output of the vanilla go1.27.3
compiler (a small package compiled in tmp_path; nothing hand-written stands in for assembly)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipeline.verify import asm, asmtext
from pipeline.verify.claims import Claim
from pipeline.verify.goenv import go_env

BASE = """package m

import "sync/atomic"

var Counter atomic.Int64
var table = map[string]int{"a": 1}

func Handoff(n int) int {
	if n > 10 {
		return n * 2
	}
	for i := 0; i < n; i++ {
		n += i
	}
	return n
}

func Sched(xs []int) int {
	total := 0
	for _, x := range xs {
		if x%3 == 0 {
			continue
		}
		total += x
	}
	f := func(v int) int { return v + total }
	return f(len(xs))
}

func Other(s string) int { return table[s] + len(s) }

type P struct{ n int }

func (p *P) Init(k int) {
	for i := 0; i < k; i++ {
		p.n += i * k
	}
}
"""

# The patch: Handoff counts its calls; the blank lines and comment shift every later line number.
PATCHED = BASE.replace(
    "func Handoff(n int) int {\n", "// Handoff now counts calls.\n//\n//\nfunc Handoff(n int) int {\n\tCounter.Add(1)\n"
)


def listing(go_root: Path, workdir: Path, source: str, cache: Path) -> dict[str, asmtext.AsmFunction]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "go.mod").write_text("module example.com/m\n\ngo 1.27\n")
    (workdir / "m.go").write_text(source)
    env = go_env(go_root, cache_dir=cache)
    proc = subprocess.run([str(go_root / "bin" / "go"), "build", "-gcflags=-S", "."], cwd=workdir, env=env,
                          capture_output=True, text=True, check=True)
    return asmtext.parse(proc.stderr)


@pytest.fixture(scope="module")
def go(go_dist) -> Path:
    return go_dist("1.27.3")


@pytest.fixture(scope="module")
def cache(shared_cache) -> Path:
    return shared_cache  # its GOCACHE replays compiles (and their -S output) across sessions


@pytest.fixture(scope="module")
def vanilla(go, cache, tmp_path_factory):
    return listing(go, tmp_path_factory.mktemp("vanilla") / "src" / "m", BASE, cache)


@pytest.fixture(scope="module")
def patched(go, cache, tmp_path_factory):
    return listing(go, tmp_path_factory.mktemp("patched-elsewhere") / "deeper" / "src" / "m", PATCHED, cache)


def claim(name: str, *touches: str, helpers: tuple[str, ...] = ()) -> Claim:
    return Claim(name=name, subject=name, touches=touches, helpers=helpers, api=(), probe=None,
                 files=("src/m/m.go",))


def test_parse_finds_every_function_with_its_file(vanilla):
    assert {"example.com/m.Handoff", "example.com/m.Sched", "example.com/m.Other",
            "example.com/m.(*P).Init"} <= set(vanilla)
    assert vanilla["example.com/m.Handoff"].file == "src/m/m.go"
    code = vanilla["example.com/m.Handoff"].code
    assert code[0].startswith("TEXT\texample.com/m.Handoff(SB), ")
    assert "ABIInternal" not in code[0] and code[0].endswith("$0-8")  # ABI tag dropped, frame kept
    assert any(line.startswith("RET") for line in code)


def test_normalised_code_has_no_positions_offsets_or_metadata(vanilla):
    for fn in vanilla.values():
        for line in fn.code:
            assert "/src/m/" not in line and ".go:" not in line  # file paths and line numbers
            assert not line.startswith(("0x", "PCDATA", "FUNCDATA"))
            mnemonic, _, ops = line.partition("\t")
            if mnemonic.startswith("J"):  # amd64 branches point at labels, not at PCs
                assert ops.startswith("L"), line


def test_moving_code_to_another_path_and_other_lines_changes_nothing_else(vanilla, patched):
    changed = {n for n in vanilla if vanilla[n].code != patched.get(n, asmtext.AsmFunction(n, "", ())).code}
    assert changed == {"example.com/m.Handoff"}
    diff = asmtext.unified("example.com/m.Handoff", vanilla["example.com/m.Handoff"].code,
                           patched["example.com/m.Handoff"].code)
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert any("example.com/m.Counter" in line for line in added)


def test_verdict_passes_when_exactly_the_claimed_function_changed(vanilla, patched):
    result = asm.judge(vanilla, patched, [claim("handoff", "example.com/m.Handoff")])
    assert result.status == "pass", result.problems
    fn = next(f for f in result.details["functions"] if f["name"] == "example.com/m.Handoff")
    assert fn["status"] == "changed" and fn["claimed_by"] == ["handoff"] and fn["diff"]


def test_vanilla_as_patched_fails_naming_exactly_the_missing_function(vanilla):
    result = asm.judge(vanilla, vanilla, [claim("handoff", "example.com/m.Handoff")])
    assert result.status == "fail"
    assert result.details["missing"] == {"handoff": ["example.com/m.Handoff"]}
    assert len(result.problems) == 1 and "example.com/m.Handoff" in result.problems[0]


def test_series_minus_one_names_only_the_absent_patch(vanilla, patched):
    claims = [claim("handoff", "example.com/m.Handoff"), claim("init", "example.com/m.(*P).Init")]
    result = asm.judge(vanilla, patched, claims)
    assert result.status == "fail"
    assert result.details["missing"] == {"init": ["example.com/m.(*P).Init"]}


def test_changed_but_undeclared_function_is_unexpected(vanilla, patched):
    result = asm.judge(vanilla, patched, [claim("other", "example.com/m.Other")])
    assert result.status == "fail"
    assert result.details["unexpected"] == ["example.com/m.Handoff"]
    assert result.details["missing"] == {"other": ["example.com/m.Other"]}


def test_helpers_are_not_unexpected(vanilla, patched):
    claims = [claim("sched", "example.com/m.Handoff", helpers=("example.com/m.Sched",))]
    assert asm.judge(vanilla, patched, claims).status == "pass"


def test_must_not_change_patterns_replace_the_default_set(vanilla, patched):
    result = asm.judge(vanilla, patched, [claim("other", "example.com/m.Other")],
                       must_not_change=("example.com/m.Sched*",))
    assert result.details["unexpected"] == []
    assert result.details["undeclared"] == ["example.com/m.Handoff"]


def test_touches_naming_a_function_that_does_not_exist_is_flagged(vanilla, patched):
    result = asm.judge(vanilla, patched, [claim("typo", "example.com/m.Handof", "example.com/m.Handoff")])
    assert result.status == "fail"
    assert any("example.com/m.Handof," in p and "no such function" in p for p in result.problems)


def test_closures_fold_into_their_function(go, cache, vanilla, tmp_path):
    # Change only the closure inside Sched: the verdict is about Sched, which the author names.
    closure_changed = BASE.replace("return v + total", "return v - total")
    other = listing(go, tmp_path / "m", closure_changed, cache)
    result = asm.judge(vanilla, other, [claim("sched", "example.com/m.Sched")])
    assert result.status == "pass", result.problems


def test_empty_series_never_passes():
    result = asm.judge({}, {}, [])
    assert result.status == "fail" and "nothing to verify" in result.problems[0]


@pytest.mark.parametrize(("symbol", "owner"), [
    ("runtime.main.func1", "runtime.main"),
    ("runtime.forEachP.func1#2", "runtime.forEachP"),
    ("slices.Sort[go.shape.int]", "slices.Sort"),
    ("runtime.(*p).init", "runtime.(*p).init"),
    ("a.f.func2.1", "a.f"),
    ("a.f.gowrap3", "a.f"),
])
def test_owner(symbol, owner):
    assert asmtext.owner(symbol) == owner


@pytest.mark.parametrize(("fn", "pkg"), [
    ("runtime.handoffp", "runtime"),
    ("net/http.(*Server).Serve", "net/http"),
    ("internal/runtime/atomic.(*Int64).Add", "internal/runtime/atomic"),
])
def test_package_of(fn, pkg):
    assert asmtext.package_of(fn) == pkg


def test_packages_for_uses_functions_and_files():
    c = Claim(name="x", subject="", touches=("runtime.handoffp",), helpers=("sync.(*Mutex).Lock",), api=(),
              probe=None, files=("src/runtime/proc.go", "src/internal/runtime/atomic/types.go"))
    assert asm.packages_for([c]) == ["runtime", "sync", "internal/runtime/atomic"]


def test_abi_wrapper_does_not_hide_the_real_body(go, cache, tmp_path):
    # runtime.traceAdvance is linknamed, so the compiler also emits an ABI wrapper with the same
    # symbol name after the real function; keyed by name, the 37-byte wrapper used to replace the
    # real body and a patch to traceAdvance looked like "same machine code as vanilla".
    (tmp_path / "go.mod").write_text("module example.com/m\n\ngo 1.27\n")
    (tmp_path / "m.go").write_text("package main\n\nfunc main() {}\n")
    proc = subprocess.run([str(go / "bin" / "go"), "build", "-o", os.devnull, "-gcflags=runtime=-S", "."],
                          cwd=tmp_path, env=go_env(go, cache_dir=cache), capture_output=True, text=True, check=True)
    headers = [line for line in proc.stderr.splitlines() if line.startswith("runtime.traceAdvance STEXT")]
    assert len(headers) == 2  # the real function and its wrapper: the case this guards
    fn = asmtext.parse(proc.stderr)["runtime.traceAdvance"]
    assert fn.file == "src/runtime/trace.go"
    assert len(fn.code) > 100
