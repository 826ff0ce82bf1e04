"""Layer 3, source (AST): compare the vanilla and patched source of the touched packages.

A small Go program (``pipeline/gohelpers/astdiff``, standard library only) describes each package
for the target's GOOS/GOARCH: every function's signature, a hash of its printed body (formatting
and comments do not count) and a control-flow count, plus the exported declarations. It is built
once per helper source and Go version into the cache with the vanilla toolchain.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..cmd import run
from ..config import Target
from ..errors import EnvironmentProblem
from ..locking import file_lock
from .asm import packages_for
from .asmtext import owner, package_of
from .claims import Claim
from .goenv import go_env
from .model import FAIL, PASS, LayerResult
from .toolchains import Toolchains
from .vcache import VanillaCache


def helper_source() -> bytes:
    return resources.files("pipeline").joinpath("gohelpers/astdiff/main.go").read_bytes()


def build_helper(go_root: Path, cache_dir: Path, *, log: Callable[[str], None] | None = None) -> Path:
    """The astdiff binary, built on first use; keyed by its source and the building Go's VERSION."""
    src = helper_source()
    key = hashlib.sha256(src + (go_root / "VERSION").read_bytes()).hexdigest()[:16]
    binary = cache_dir / "verify" / "helpers" / f"astdiff-{key}"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(binary.parent / ".astdiff.lock"):
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(prefix="astdiff-", dir=binary.parent) as tmp:
            (Path(tmp) / "main.go").write_bytes(src)
            out = Path(tmp) / "astdiff"
            run([go_root / "bin" / "go", "build", "-o", out, "./main.go"], cwd=Path(tmp),
                env=go_env(go_root, cache_dir=cache_dir), log=log)
            os.replace(out, binary)  # whole binary or nothing, even if interrupted
    return binary


def describe(helper: Path, root: Path, package: str, target: Target, *, log=None) -> dict[str, Any]:
    pkg_dir = root / "src" / package
    if not pkg_dir.is_dir():
        return {"package": package, "files": [], "functions": [], "exported": [], "errors": [], "absent": True}
    proc = run([helper, "-goos", target.goos, "-goarch", target.goarch, "-pkg", package, pkg_dir], log=log,
               error=EnvironmentProblem)
    return json.loads(proc.stdout)


def compare(vanilla: dict[str, Any], patched: dict[str, Any], claims: Sequence[Claim]) -> dict[str, Any]:
    """Pure comparison of two package descriptions against the claims (unit-tested)."""
    van = {f["name"]: f for f in vanilla["functions"]}
    pat = {f["name"]: f for f in patched["functions"]}
    declared = {fn for c in claims for fn in (*c.touches, *c.helpers)}
    api_declared = {a for c in claims for a in c.api}
    touches = {fn: c.name for c in claims for fn in c.touches}
    problems: list[str] = []
    changed = []
    api_changes = []

    def api_ok(name: str) -> bool:
        short = name.split(".", 1)[-1] if "/" not in name else name.rsplit("/", 1)[-1].split(".", 1)[-1]
        return name in api_declared or short in api_declared or any(name.endswith("." + a) for a in api_declared)

    for name in sorted(set(van) | set(pat)):
        a, b = van.get(name), pat.get(name)
        if a and b and a["signature"] == b["signature"] and a["body_hash"] == b["body_hash"]:
            continue
        kind = "added" if a is None else "removed" if b is None else (
            "signature" if a["signature"] != b["signature"] else "body")
        f = b or a
        entry = {"name": name, "kind": kind, "file": f["file"], "exported": f["exported"],
                 "before": a and {"signature": a["signature"], **a["flow"]},
                 "after": b and {"signature": b["signature"], **b["flow"]}}
        changed.append(entry)
        if f["exported"] and kind in ("added", "removed", "signature"):
            api_changes.append(f"{kind} {name}")
            if not api_ok(name):
                problems.append(f"exported API change ({kind}) of {name} in {f['file']}: "
                                "declare it in the patch's API: trailer if it is intended.")
        if owner(name) not in declared and name not in declared:
            problems.append(f"{name} ({f['file']}) {'was ' + kind if kind in ('added', 'removed') else 'changed'} "
                            "but no patch declares it in Touches: or Helpers:.")
    changed_names = {c["name"] for c in changed}
    for fn, patch in touches.items():
        if package_of(fn) != vanilla["package"]:
            continue
        if fn not in van and fn not in pat:
            problems.append(f"patch {patch}: Touches names {fn}, but package {vanilla['package']} declares "
                            "no such function for this GOOS/GOARCH.")
        elif fn not in changed_names:
            problems.append(f"patch {patch}: Touches names {fn}, but its source is unchanged.")
    van_types = {d["name"]: d for d in vanilla["exported"]}
    pat_types = {d["name"]: d for d in patched["exported"]}
    for name in sorted(set(van_types) | set(pat_types)):
        a, b = van_types.get(name), pat_types.get(name)
        if a != b:
            full = f"{vanilla['package']}.{name}"
            api_changes.append(f"declaration {full}")
            if not api_ok(full):
                problems.append(f"exported declaration {full} changed: declare it in an API: trailer if intended.")
    return {"package": vanilla["package"], "changed": changed, "api_changes": api_changes, "problems": problems,
            "functions": len(set(van) | set(pat))}


def check(
    tc: Toolchains,
    claims: Sequence[Claim],
    *,
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
    vanilla_cache: bool = True,
) -> LayerResult:
    t0 = time.monotonic()
    if shutil.which(str(tc.vanilla / "bin" / "go")) is None:
        raise EnvironmentProblem(f"{tc.vanilla}/bin/go is missing: cannot build the AST helper.")
    say = log or (lambda _: None)
    say("ast: building the AST helper (cached after the first run) ...")
    helper = build_helper(tc.vanilla, cache_dir, log=log)
    # A vanilla package's description depends on the distribution, the package, the target and
    # the helper's source (part of the cache's code identity).
    vc = VanillaCache(cache_dir, tc.vanilla, enabled=vanilla_cache)
    packages = []
    problems: list[str] = []
    cached = 0
    for pkg in packages_for(claims):
        parts = {"package": pkg, "target": str(tc.target)}
        hit = vc.get("ast", parts)
        if hit is not None:
            vanilla, cached = hit[0], cached + 1
        else:
            vanilla = describe(helper, tc.vanilla, pkg, tc.target, log=log)
            vc.put("ast", parts, vanilla)
        result = compare(vanilla, describe(helper, tc.patched, pkg, tc.target, log=log), claims)
        packages.append(result)
        problems += result["problems"]
    n = sum(len(p["changed"]) for p in packages)
    summary = (f"{n} function(s) changed in {len(packages)} package(s); "
               f"{sum(len(p['api_changes']) for p in packages)} API change(s); {len(problems)} problem(s)")
    return LayerResult(layer="ast", status=FAIL if problems else PASS, summary=summary, problems=problems,
                       details={"packages": packages, "vanilla_cached": cached}, seconds=time.monotonic() - t0)
