"""The AST layer: the Go helper (built with the real vanilla toolchain) and the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Target
from pipeline.verify import ast
from pipeline.verify.claims import Claim

BASE = """package m

// Limit is exported.
const Limit = 3

type Exported struct {
	Name string
	hidden int
}

func Handoff(n int) int {
	if n > Limit {
		return n
	}
	return n + 1
}

func (e *Exported) Size() int { return len(e.Name) }

func helper() {}

func init() {}
"""
LINUX = Target(goos="linux", goarch="amd64")


@pytest.fixture(scope="module")
def helper(go_dist, shared_cache) -> Path:
    # The shared test cache: the helper (and the std packages it imports) build once per machine.
    return ast.build_helper(go_dist("1.27.3"), shared_cache)


def describe(helper: Path, root: Path, source: str) -> dict:
    pkg = root / "src" / "m"
    pkg.mkdir(parents=True)
    (pkg / "m.go").write_text(source)
    (pkg / "m_test.go").write_text("package m\n\nfunc TestIgnored() {}\n")
    (pkg / "m_windows.go").write_text("package m\n\nfunc onlyWindows() {}\n")
    return ast.describe(helper, root, "m", LINUX)


def claim(*touches: str, api: tuple[str, ...] = (), helpers: tuple[str, ...] = ()) -> Claim:
    return Claim(name="p", subject="", touches=touches, helpers=helpers, api=api, probe=None, files=("src/m/m.go",))


def test_helper_is_built_once_into_the_cache(helper, go_dist, tmp_path):
    assert helper.is_file()
    assert ast.build_helper(go_dist("1.27.3"), helper.parent.parent.parent) == helper


def test_describe_follows_build_constraints_and_names_like_the_compiler(helper, tmp_path):
    d = describe(helper, tmp_path, BASE)
    names = {f["name"] for f in d["functions"]}
    assert {"m.Handoff", "m.(*Exported).Size", "m.helper", "m.init@m.go"} <= names
    assert "m.onlyWindows" not in names and "m.TestIgnored" not in names
    handoff = next(f for f in d["functions"] if f["name"] == "m.Handoff")
    assert handoff["flow"]["branches"] == 1 and handoff["flow"]["returns"] == 2 and handoff["exported"]


def test_body_change_with_control_flow_summary(helper, tmp_path):
    patched = BASE.replace("\tif n > Limit {", "\tfor i := 0; i < n; i++ {\n\t\thelper()\n\t}\n\tif n > Limit {")
    result = ast.compare(describe(helper, tmp_path / "v", BASE), describe(helper, tmp_path / "p", patched),
                         [claim("m.Handoff", helpers=("m.helper",))])
    assert result["problems"] == []
    (change,) = result["changed"]
    assert change["name"] == "m.Handoff" and change["kind"] == "body"
    assert (change["before"]["loops"], change["after"]["loops"]) == (0, 1)


def test_comments_and_formatting_do_not_count(helper, tmp_path):
    patched = BASE.replace("\treturn n + 1", "\t// a new comment\n\treturn n+1")
    result = ast.compare(describe(helper, tmp_path / "v", BASE), describe(helper, tmp_path / "p", patched),
                         [claim("m.Handoff")])
    assert result["changed"] == []
    assert result["problems"] == ["patch p: Touches names m.Handoff, but its source is unchanged."]


def test_undeclared_change_is_flagged(helper, tmp_path):
    patched = BASE.replace("func helper() {}", "func helper() { println() }")
    result = ast.compare(describe(helper, tmp_path / "v", BASE), describe(helper, tmp_path / "p", patched),
                         [claim("m.Handoff")])
    assert any("m.helper" in p and "no patch declares it" in p for p in result["problems"])


def test_exported_signature_change_needs_api_trailer(helper, tmp_path):
    patched = BASE.replace("func Handoff(n int) int {", "func Handoff(n int, k int) int {")
    v, p = describe(helper, tmp_path / "v", BASE), describe(helper, tmp_path / "p", patched)
    flagged = ast.compare(v, p, [claim("m.Handoff")])
    assert any("exported API change (signature) of m.Handoff" in x for x in flagged["problems"])
    assert ast.compare(v, p, [claim("m.Handoff", api=("m.Handoff",))])["problems"] == []


def test_unexported_struct_field_is_not_api_but_exported_one_is(helper, tmp_path):
    v = describe(helper, tmp_path / "v", BASE)
    hidden = describe(helper, tmp_path / "h", BASE.replace("\thidden int", "\thidden int\n\tmore int"))
    assert ast.compare(v, hidden, [claim()])["api_changes"] == []
    public = describe(helper, tmp_path / "e", BASE.replace("\thidden int", "\thidden int\n\tMore int"))
    assert ast.compare(v, public, [claim()])["api_changes"] == ["declaration m.Exported"]


def test_several_init_functions_in_one_file_keep_their_identity(helper, tmp_path):
    # runtime/proc.go has two func init(); an unstable order once made an unchanged init look
    # edited. Each keeps its own name (init@file, init@file#2) whatever else the file holds.
    two = BASE + "\nfunc init() { helper() }\n"
    a = describe(helper, tmp_path / "a", two)
    b = describe(helper, tmp_path / "b", two.replace("func helper() {}", "func helper() {}\n\nfunc extra() {}"))
    names = [f["name"] for f in a["functions"] if f["name"].startswith("m.init")]
    assert names == ["m.init@m.go", "m.init@m.go#2"]
    hashes_a = {f["name"]: f.get("body_hash", f.get("BodyHash")) for f in a["functions"]}
    hashes_b = {f["name"]: f.get("body_hash", f.get("BodyHash")) for f in b["functions"]}
    assert hashes_a["m.init@m.go"] == hashes_b["m.init@m.go"]
    assert hashes_a["m.init@m.go#2"] == hashes_b["m.init@m.go#2"]
    assert hashes_a["m.init@m.go"] != hashes_a["m.init@m.go#2"]
