"""The build plan, pure: a target -> small ``Step`` values (argv, cwd, exact environment), and
the cache key of what those steps would make. Unit-tested without Docker or make.bash.

Only the host target pays for a full ``make.bash -distpack``. Every further target starts from the
host artifact and runs the measured shortcut (README: "Facts the design rests on"): ``go install``
of the ten commands a distribution ships, with the flags make.bash uses for them, then
``go tool distpack``; that gave archives with the same sha256 as a full cross make.bash at about a
quarter of its time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..config import Target

# The fixed PATH of every step, the same on the host and in the builder image: make.bash needs
# only bash and a few file tools from it (README: "Facts the design rests on"), and the user's PATH must not decide which.
STEP_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What a Go binary distribution ships (cmd/dist build.go toolsIncludedInDistpack and
# binExesIncludedInDistpack), built for the target by the cross shortcut.
DIST_COMMANDS = ("cmd/go", "cmd/gofmt", "cmd/asm", "cmd/cgo", "cmd/compile", "cmd/cover",
                 "cmd/fix", "cmd/link", "cmd/preprofile", "cmd/vet")
# The flags make.bash builds those commands with; without them the binaries differ from a full
# cross make.bash (measured: README, "Facts the design rests on").
CROSS_GOFLAGS = "-trimpath -ldflags=-w -gcflags=cmd/...=-dwarf=false"

# Variables that can carry host settings into a toolchain. Steps never inherit the caller's
# environment, so these are absent unless configured; the list documents why (and tests check it).
LEAKY = ("CC", "CXX", "CC_FOR_TARGET", "CXX_FOR_TARGET", "CGO_CFLAGS", "CGO_LDFLAGS", "GOFLAGS",
         "GOROOT", "GOROOT_FINAL", "GOPATH", "GOBIN", "GO_GCFLAGS", "GO_LDFLAGS", "GO_EXTLINK_ENABLED",
         "GOAMD64", "GOARM", "GOARM64", "GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64",
         "GOWASM", "GOEXPERIMENT", "GODEBUG", "GOENV", "GOCACHE", "GOTOOLCHAIN", "GOPROXY")


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """The build-affecting settings (all of them go into the cache key)."""

    cgo_enabled: bool = False
    goexperiment: str = ""
    extra_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str  # make.bash | install | distpack
    argv: tuple[str, ...]
    cwd: Path
    env: tuple[tuple[str, str], ...]

    @property
    def environ(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True, kw_only=True)
class TargetPlan:
    target: Target
    kind: str  # host | cross
    workdir: Path
    steps: tuple[Step, ...]

    @property
    def tree(self) -> Path:
        return self.workdir / "go"

    @property
    def home(self) -> Path:
        return self.workdir / "home"


def base_env(*, home: Path, target: Target, config: BuildConfig) -> dict[str, str]:
    """The environment every step starts from, built from nothing (never inherited)."""
    env = {
        "PATH": STEP_PATH,
        "HOME": str(home),  # fresh: no go env file, no user GOCACHE/GOFLAGS/GOPROXY from it
        "GOOS": target.goos,
        "GOARCH": target.goarch,
        "GOTOOLCHAIN": "local",  # never download or switch toolchains mid-build
    }
    if config.goexperiment:
        env["GOEXPERIMENT"] = config.goexperiment
    for name, value in config.extra_env:
        env[name] = value
    return env


def plan_host(*, target: Target, workdir: Path, bootstrap: Path, config: BuildConfig) -> TargetPlan:
    """Full ``make.bash -distpack`` of the tree at workdir/go with the bootstrap toolchain."""
    home = workdir / "home"
    env = base_env(home=home, target=target, config=config)
    env["GOROOT_BOOTSTRAP"] = str(bootstrap)
    env["CGO_ENABLED"] = "1" if config.cgo_enabled else "0"
    step = Step(name="make.bash", argv=("bash", "make.bash", "-distpack"), cwd=workdir / "go" / "src",
                env=tuple(sorted(env.items())))
    return TargetPlan(target=target, kind="host", workdir=workdir, steps=(step,))


def plan_cross(*, target: Target, workdir: Path, config: BuildConfig) -> TargetPlan:
    """The shortcut for a further target, in a copy of the host artifact at workdir/go."""
    home = workdir / "home"
    go = str(workdir / "go" / "bin" / "go")
    install_env = base_env(home=home, target=target, config=config)
    # cgo off: a cross cgo build needs the target's C toolchain; this is what make.bash does for
    # the distributed commands anyway (they are pure Go).
    install_env.update(CGO_ENABLED="0", GOFLAGS=CROSS_GOFLAGS)
    pack_env = base_env(home=home, target=target, config=config)
    src = workdir / "go" / "src"
    return TargetPlan(target=target, kind="cross", workdir=workdir, steps=(
        Step(name="install", argv=(go, "install", *DIST_COMMANDS), cwd=src, env=tuple(sorted(install_env.items()))),
        Step(name="distpack", argv=(go, "tool", "distpack"), cwd=src, env=tuple(sorted(pack_env.items()))),
    ))


def executor_identity(describe: Mapping[str, str]) -> dict[str, str]:
    """The part of ``executor.describe()`` that can change what gets built (not limits or users).

    The build user is left out on purpose: a toolchain's bytes do not depend on the uid that ran
    make.bash (distpack writes every archive member as uid/gid 0; the e2e suite's Docker build,
    run as 65532 under a root caller, is bit-identical to the host build run as root). Builds by
    different users still get different keys through ``image_id``, as the scratch image's
    /etc/passwd names its build user: over-keying, never a wrong hit.
    """
    return {k: describe[k] for k in ("executor", "image_id", "machine") if k in describe}


def cache_key(*, tree_hash: str, version: str, bootstrap_version: str, target: Target, host: Target,
              config: BuildConfig, executor: Mapping[str, str], host_key: str = "") -> str:
    """sha256 over everything that decides the artifact's bytes."""
    inputs = {
        "tree": tree_hash, "version": version, "bootstrap": bootstrap_version,
        "target": str(target), "host": str(host), "config": asdict(config),
        "executor": executor_identity(executor), "gopatch": __version__, "host_key": host_key,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
