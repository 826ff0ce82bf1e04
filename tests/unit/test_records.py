"""The contract between stages (pipeline/records.py) and the atomic writes (pipeline/atomic.py).

Each record is produced by the stage that writes it (a build through the real build code with a
scripted executor, a verdict through the gate's writer, a manifest by a real `gopatch release`),
then loaded and dumped again: the bytes must be the writer's bytes, because release
reproducibility rests on them. Every way a record can be unusable gets a RecordError that names
the file and the field, never a KeyError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_build_plan import LINUX_AMD64, LINUX_ARM64, ScriptedExecutor, _go_tree, _request
from test_release import make_work, release

from pipeline.atomic import build_dir_atomic, publish_dir, swap_dir, write_file_atomic
from pipeline.build import run as B
from pipeline.errors import ManifestError, RecordError, UsageError
from pipeline.records import BUILD_JSON, VERIFY_JSON, BuildRecord, Manifest, Verdict
from pipeline.release import gate
from pipeline.verify.model import LayerResult, Report
from pipeline.verify.verdict import write_verdict


@pytest.fixture
def built(tmp_path, monkeypatch):
    """A build of two targets through pipeline.build.run (make.bash scripted): (request, results)."""
    monkeypatch.setattr(B, "host_target", lambda: LINUX_AMD64)
    repo = _go_tree(tmp_path / "goroot")
    (tmp_path / "goroot" / "src" / "x.go").write_text("package x\n")
    repo.index.add(["src/x.go"])
    repo.index.commit("x: add\n\nGopatch-Patch: 0001-x.patch\n")
    req = _request(tmp_path, ScriptedExecutor(), targets=(LINUX_AMD64, LINUX_ARM64))
    src = B.source_info(req.tree)
    version = "go1.27.3-gopatch.1-" + src.tree_hash[:8]
    return req, src, version, B.build(req, version=version, src=src)


def test_build_record_round_trips_and_names_its_parts(built):
    _, src, version, results = built
    for r in results:
        path = r.out / BUILD_JSON
        raw = path.read_text(encoding="utf-8")
        record = BuildRecord.load(path)
        assert record.dump() == raw  # the bytes the build wrote
        assert json.loads(raw)["schema"] == "gopatch-build/1"
        assert record.version == version and record.target == str(r.target)
        assert [(p.name, p.commit) for p in record.source.patches] == [(n, c) for c, _, n in src.patches]
        assert record.steps and all(s.exit_code == 0 and s.argv for s in record.steps)


def test_a_cache_entry_of_an_older_gopatch_is_rebuilt_not_an_error(built):
    req, src, version, results = built
    entry = req.store.path(results[0].key)
    old = json.loads((entry / BUILD_JSON).read_text())
    del old["schema"]  # build.json as gopatch wrote it before records had a schema
    (entry / BUILD_JSON).write_text(json.dumps(old))
    assert req.store.get(results[0].key) is None and req.store.outdated() == [entry]
    again = B.build(req, version=version, src=src)
    assert [r.cached for r in again] == [False, True]  # the old entry was rebuilt, the other one reused
    assert BuildRecord.load(entry / BUILD_JSON).key == results[0].key  # and replaced by a current one
    assert BuildRecord.load(again[0].out / BUILD_JSON).key == results[0].key
    assert req.store.outdated() == []
    stray = req.store.root / ("f" * 64)  # an entry of an older gopatch under a key no longer made
    stray.mkdir()
    (stray / BUILD_JSON).write_text(json.dumps(old))
    assert req.store.outdated() == [stray] and stray.name not in [a.key for a in req.store.entries()]
    req.store.remove(stray)  # what `cache prune` does with it
    assert not stray.exists()


def test_verdict_round_trips(built):
    _, _, version, results = built
    d = results[0].out
    report = Report(target="linux/amd64", toolchain=str(d / "go"), vanilla="/vanilla", version=version,
                    patches=["0001-x"], layers=[LayerResult(layer="version", status="pass", summary="ok", seconds=1.5),
                                             LayerResult(layer="asm", status="fail", summary="1 changed")])
    path = write_verdict(report, series_dir=d)
    assert path == d / VERIFY_JSON
    raw = path.read_text(encoding="utf-8")
    verdict = Verdict.load(path)
    assert verdict.dump() == raw and json.loads(raw)["schema"] == "gopatch-verify/1"
    assert verdict.key == results[0].key and not verdict.passed and verdict.layers["asm"].status == "fail"
    assert gate.verdict_problem(verdict, key=results[0].key, patches=[{"name": "0001-x", "sha256": ""}]) == \
        ("failed", "verification failed in: asm")


def test_manifest_round_trips(tmp_path):
    work = make_work(tmp_path)
    assert release(work).returncode == 0
    path = work / "dist" / "manifest.json"
    manifest = Manifest.load(path)
    assert manifest.dump() == path.read_text(encoding="utf-8")
    assert manifest.targets[0].module.files and manifest.go.patched.tree and manifest.patches[0].name == "handoffp"
    # A verify.json of an older gopatch does not count as a verdict: verify again, says release.
    verify_json = next((work / "out").glob("*/linux_amd64/verify.json"))
    old = json.loads(verify_json.read_text())
    del old["schema"]
    verify_json.write_text(json.dumps(old))
    proc = release(work, "--force")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(verify_json) in proc.stderr and "gopatch verify" in proc.stderr
    # An out/ build.json of an older gopatch stops release with an error naming file and remedy.
    build_json = next((work / "out").glob("*/linux_amd64/build.json"))
    old = json.loads(build_json.read_text())
    del old["schema"]
    build_json.write_text(json.dumps(old))
    proc = release(work)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert str(build_json) in proc.stderr and "without a schema field" in proc.stderr and "gopatch build" in proc.stderr


def _good_build() -> dict:
    return {"schema": "gopatch-build/1", "version": "go1.27.3-x", "target": "linux/amd64", "key": "k", "kind": "host",
            "source": {"dir": "/g", "head": "h", "tree": "t", "base": "b", "release": "go1.27.3", "patches": []},
            "bootstrap": {"goroot": "/b", "version": "go1.27.3", "origin": "o"}, "config": {}, "host": "linux/amd64",
            "executor": {}, "gopatch": "0", "steps": [], "seconds": 1, "archives": {}, "created": ""}


@pytest.mark.parametrize(("edit", "field", "says"), [
    (lambda d: d.update(schema="gopatch-build/2"), "schema", "of schema 'gopatch-build/2'"),
    (lambda d: d.pop("schema"), "schema", "without a schema field"),
    (lambda d: d["source"].pop("tree"), "source.tree", "missing"),
    (lambda d: d.update(seconds="soon"), "seconds", "expected float, found str"),
    (lambda d: d["source"].update(patches=[{"commit": "c", "subject": "s"}]), "source.patches[0].name", "missing"),
])
def test_an_unusable_build_record_is_a_clear_error(tmp_path, edit, field, says):
    data = _good_build()
    BuildRecord.from_dict(data)  # the good one loads
    edit(data)
    path = tmp_path / BUILD_JSON
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as err:
        BuildRecord.load(path)
    e = err.value
    assert e.exit_code == 3 and e.field == field and str(path) in e.message and says in e.message
    assert "gopatch build" in e.render()  # what to do


def test_a_record_that_is_no_json_or_no_file_is_a_clear_error(tmp_path):
    bad = tmp_path / VERIFY_JSON
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON") as err:
        Verdict.load(bad)
    assert "gopatch verify" in err.value.render()
    with pytest.raises(RecordError, match="cannot read the verify verdict"):
        Verdict.load(tmp_path / "absent" / VERIFY_JSON)
    with pytest.raises(RecordError, match="not a gopatch verify verdict"):
        Verdict.loads("[1, 2]", source="x.json")


def test_an_old_or_broken_build_record_is_a_cache_miss_only_when_old(tmp_path):
    path = tmp_path / BUILD_JSON
    assert BuildRecord.load_cached(path) is None  # none
    data = _good_build()
    data["schema"] = "gopatch-build/0"
    path.write_text(json.dumps(data))
    assert BuildRecord.load_cached(path) is None  # another gopatch's
    data = _good_build()
    del data["key"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="'key'"):  # this gopatch's, broken: a bug or a hand edit
        BuildRecord.load_cached(path)


def test_an_unknown_manifest_is_a_usage_error(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": "gopatch-release/0", "version": "x"}))
    with pytest.raises(ManifestError) as err:
        Manifest.load(path)
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2
    assert "gopatch-release/0" in err.value.message and str(path) in err.value.message


def test_write_file_atomic_gives_the_umask_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "d" / "f"
    write_file_atomic(target, b"\x00bin")
    write_file_atomic(target, "text é", mode=0o755)
    assert target.read_bytes() == "text é".encode() and os.stat(target).st_mode & 0o777 == 0o755
    assert [p.name for p in target.parent.iterdir()] == ["f"]


def test_swap_dir_puts_the_old_directory_back_when_the_swap_fails(tmp_path, monkeypatch):
    dest = tmp_path / "dest"
    build_dir_atomic(dest, lambda d: (d / "v").write_text("1"))
    build_dir_atomic(dest, lambda d: (d / "v").write_text("2"))
    assert (dest / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    staged = tmp_path / ".dest.new-x"
    staged.mkdir()
    real = os.replace
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new directory into place
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        swap_dir(staged, dest)
    monkeypatch.setattr(os, "replace", real)
    assert (dest / "v").read_text() == "2"  # the old one, whole
    with pytest.raises(RuntimeError):
        build_dir_atomic(dest, lambda d: (_ for _ in ()).throw(RuntimeError("fill failed")))
    # and the failed swap's leftover was removed by the next build of dest
    assert (dest / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_publish_dir_first_one_wins(tmp_path):
    dest = tmp_path / "entry"
    for n in ("1", "2"):
        staged = tmp_path / f".tmp-{n}"
        staged.mkdir()
        (staged / "data").write_text(n)
        assert publish_dir(staged, dest) == (n == "1")
        assert not staged.exists()
    assert (dest / "data").read_text() == "1"


def test_records_are_the_only_readers_of_the_records():
    """No stage parses build.json, verify.json or manifest.json itself (issue 11)."""
    root = Path(__file__).resolve().parents[2] / "pipeline"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("records.py",):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "json.load" in line and any(x in line for x in ("BUILD_JSON", "VERIFY_JSON", "MANIFEST", "build.json",
                                                               "verify.json", "manifest.json", "meta")):
                offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert offenders == []
