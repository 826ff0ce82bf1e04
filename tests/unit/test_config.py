"""build.cfg + env + flags -> Options: precedence, origins, and errors that name the culprit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import DEFAULT_TARGETS, SETTINGS, Target, load_options
from pipeline.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "build.cfg"
    path.write_text(text)
    return path


def test_defaults_without_a_config_file(tmp_path):
    opts = load_options(env={}, cwd=tmp_path)
    assert opts.config_file is None
    assert opts.source.ref == "go1.27.3"
    assert [str(t) for t in opts.build.targets] == list(DEFAULT_TARGETS)
    assert opts.build.cgo_enabled is False
    assert opts.source.dir == tmp_path / "goroot"
    assert opts.series_dir == tmp_path / "patches" / "go1.27"
    assert all(o.kind == "default" for o in opts.origins.values())
    assert set(opts.origins) == {s.name for s in SETTINGS}


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    cfg = write(tmp_path, "[build]\njobs = 3\ntargets = linux/arm64\nexecutor = host\n")
    opts = load_options(
        cfg,
        env={"GOPATCH_BUILD_JOBS": "5", "GOPATCH_BUILD_EXECUTOR": "docker"},
        overrides={"build.executor": ("auto", "--executor")},
        cwd=tmp_path,
    )
    assert opts.build.targets == (Target(goos="linux", goarch="arm64"),)
    assert str(opts.origins["build.targets"]) == f"{cfg}:3"
    assert opts.build.jobs == 5
    assert str(opts.origins["build.jobs"]) == "GOPATCH_BUILD_JOBS"
    assert opts.build.executor == "auto"
    assert str(opts.origins["build.executor"]) == "--executor"
    assert opts.origins["source.ref"].kind == "default"


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path):
    sub = tmp_path / "conf"
    sub.mkdir()
    cfg = sub / "build.cfg"
    cfg.write_text("[source]\ndir = trees/go\n[patches]\nseries = mine/go1.27\n")
    opts = load_options(cfg, env={"GOPATCH_BUILD_OUT": "rel-out"}, cwd=tmp_path)
    assert opts.source.dir == sub / "trees" / "go"
    assert opts.series_dir == sub / "mine" / "go1.27"
    # ...while env and flags are relative to where the user stands.
    assert opts.build.out == tmp_path / "rel-out"


def test_bad_target_names_file_line_key_and_allowed_values(tmp_path):
    cfg = write(tmp_path, "# comment\n[build]\ncgo_enabled = 0\ntargets = linux/amd64 linux/amd65\n")
    with pytest.raises(ConfigError) as err:
        load_options(cfg, env={}, cwd=tmp_path)
    msg = err.value.message
    assert f"{cfg}:4" in msg
    assert "[build] targets" in msg
    assert "'linux/amd65'" in msg
    assert "did you mean linux/amd64" in msg
    assert "windows/arm64" in msg  # the allowed values are listed
    assert err.value.exit_code == 2


def test_unknown_key_suggests_the_close_one(tmp_path):
    cfg = write(tmp_path, "[build]\njobs = 2\n\ntaregts = linux/amd64\n")
    with pytest.raises(ConfigError) as err:
        load_options(cfg, env={}, cwd=tmp_path)
    assert f"{cfg}:4" in err.value.message
    assert "did you mean 'targets'" in err.value.message


def test_unknown_section_is_rejected(tmp_path):
    cfg = write(tmp_path, "[biuld]\njobs = 2\n")
    with pytest.raises(ConfigError) as err:
        load_options(cfg, env={}, cwd=tmp_path)
    assert f"{cfg}:1" in err.value.message
    assert "did you mean [build]" in err.value.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[build]\nexecutor = podman\n", "auto, docker, host"),
        ("[build]\ncgo_enabled = maybe\n", "not a boolean"),
        ("[build]\njobs = 0\n", "outside the allowed range"),
        ("[patches]\nfuzz = lots\n", "not a whole number"),
        ("[docker]\nmemory = lots\n", "memory size"),
        ("[build]\nextra_env = goamd64\n", "NAME=VALUE"),
        ("[source]\nkind = svn\n", "git, tarball, dist"),
    ],
)
def test_bad_values_say_what_is_allowed(tmp_path, text, needle):
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_options(cfg, env={}, cwd=tmp_path)
    assert needle in err.value.message
    assert f"{cfg}:2" in err.value.message


def test_env_typo_is_caught_but_foreign_variables_are_left_alone(tmp_path):
    with pytest.raises(ConfigError, match="did you mean GOPATCH_BUILD_TARGETS"):
        load_options(env={"GOPATCH_BUILD_TARGTES": "linux/amd64"}, cwd=tmp_path)
    load_options(env={"GOPATCH_REQUIRE_DOCKER": "1", "GOPATCH_TEST_CACHE": "/x"}, cwd=tmp_path)


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_options(tmp_path / "nope.cfg", env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_options(env={"GOPATCH_CONFIG": str(tmp_path / "nope.cfg")}, cwd=tmp_path)


def test_malformed_ini_is_a_config_error(tmp_path):
    cfg = write(tmp_path, "jobs = 2\n")
    with pytest.raises(ConfigError, match="section"):
        load_options(cfg, env={}, cwd=tmp_path)


def test_series_dir_for_a_non_release_ref_asks_for_an_explicit_series(tmp_path):
    opts = load_options(env={"GOPATCH_SOURCE_REF": "master"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="series"):
        _ = opts.series_dir


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("[]=:#;\n \tabcdeuildjobstargetsx/0123456789%$")), max_size=200))
def test_any_config_text_gives_options_or_a_config_error(tmp_path, text):
    cfg = tmp_path / "fuzz.cfg"
    cfg.write_text(text)
    try:
        load_options(cfg, env={}, cwd=tmp_path)
    except ConfigError as exc:
        assert exc.message


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True)


def test_cli_config_show_json_reports_origins(tmp_path):
    write(tmp_path, "[build]\ntargets = linux/arm64 darwin/arm64\n")
    proc = run_cli("config", "show", "--json", cwd=tmp_path, env={"GOPATCH_BUILD_JOBS": "7"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["settings"]["build.targets"] == {
        "value": "linux/arm64 darwin/arm64", "origin": f"{tmp_path / 'build.cfg'}:2", "env": "GOPATCH_BUILD_TARGETS"}
    assert data["settings"]["build.jobs"]["value"] == "7"
    assert data["settings"]["build.jobs"]["origin"] == "GOPATCH_BUILD_JOBS"


def test_cli_bad_config_exits_2_with_one_message_and_no_traceback(tmp_path):
    write(tmp_path, "[build]\ntargets = linux/amd65\n")
    proc = run_cli("config", "show", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "build.cfg:2" in proc.stderr and "linux/amd65" in proc.stderr
    assert proc.stdout == ""


def test_cli_global_config_flag(tmp_path):
    other = tmp_path / "other.cfg"
    other.write_text("[source]\nref = go1.26.6\n")
    proc = run_cli("--config", str(other), "config", "show", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["settings"]["source.ref"]["value"] == "go1.26.6"


def test_a_misspelled_override_is_an_error_not_ignored(tmp_path):
    with pytest.raises(ConfigError, match=r"'build\.jbos' is not a setting; did you mean 'build\.jobs'\?"):
        load_options(None, env={}, overrides={"build.jbos": ("2", "--build__jbos")}, cwd=tmp_path)


def test_build_cfg_is_found_above_the_current_directory(tmp_path):
    (tmp_path / "build.cfg").write_text("[build]\njobs = 3\n")
    inside = tmp_path / "goroot" / "src" / "runtime"
    inside.mkdir(parents=True)
    opts = load_options(None, env={}, cwd=inside)
    assert opts.build.jobs == 3
    # Defaults are the project's, not the current directory's.
    assert opts.source.dir == tmp_path / "goroot" and opts.build.out == tmp_path / "out"


def test_a_go_tree_is_the_default_dir_when_no_build_cfg_is_above(tmp_path):
    tree = tmp_path / "mygo"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "make.bash").write_text("")
    (tree / "VERSION").write_text("go1.27.3\n")
    opts = load_options(None, env={}, cwd=tree)
    assert opts.source.dir == tree and "Go tree" in str(opts.origins["source.dir"])
    assert load_options(None, env={}, cwd=tmp_path).source.dir == tmp_path / "goroot"
