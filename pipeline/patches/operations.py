"""Patch series on a Go tree: atomic apply, revert, status and extract.

The tree model (git-go-patch's): each applied patch is one commit on top of the tree's recorded
base commit, carrying a ``Gopatch-Patch: <name>`` trailer (pipeline/patches/commits.py).
Everything else is derived from that: status reads the commits and tries the rest of the series
in memory (pipeline/patches/overlay.py), revert rebuilds the chain without the named commits,
extract turns commits back into patch files. Every command that changes the tree computes all
of it in memory first and writes it all or nothing (pipeline/patches/worktree.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git, journal
from ..atomic import write_file_atomic
from ..errors import GopatchError, PatchDoesNotApply, PatchFormatError, UsageError
from ..git import GoTree
from ..locking import file_lock
from . import hunks
from .commits import (
    ChainCommit,
    CommitWriter,
    NewCommit,
    applied,
    base_of,
    body_of,
    chain,
    commit_date,
    commit_diff,
    strip_index_lines,
    write_commits,
)
from .hunks import FileDiff, Misfit
from .overlay import Overlay, State, apply_files, commit_reader, reverse, worktree_reader
from .series import (
    SERIES_FILE,
    Patch,
    parse_patch_bytes,
    render_patch,
    series_with,
    slug,
)
from .worktree import check_clean, dirty_paths, refusing, write_tree

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Outcome:
    name: str
    action: str  # applied | already-applied | committed | would-apply
    notes: list[str] = field(default_factory=list)
    commit: str | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "notes": self.notes, "commit": self.commit,
                "files": self.files}


def parse_files(patch: Patch) -> list[FileDiff]:
    return hunks.parse_diff(patch.diff, origin=str(patch.path), first_line=patch.diff_line)


def _misfit_error(patch: Patch, misfit: Misfit, *, action: str = "apply") -> PatchDoesNotApply:
    return PatchDoesNotApply(
        f"patch {patch.name} ({patch.path}) does not {action}; nothing was changed.\n{misfit.describe()}",
        hint="update the patch for this tree, or set [patches] fuzz / GOPATCH_PATCHES_FUZZ if only context moved",
    )


def plan_patch(overlay: Overlay, patch: Patch, files: list[FileDiff], *, fuzz: int) -> tuple[str, dict[str, State], list[str]]:
    """Decide what one patch does to ``overlay``: ('applied', changes, notes) or
    ('already-applied', {}, notes). The order matters: an exact forward fit wins; else a patch
    whose reverse fits is already in the tree (never apply it twice); else offsets and fuzz."""
    try:
        changes, notes = apply_files(overlay, files, allow_offset=False)
        return "applied", changes, notes
    except Misfit as first:
        try:
            apply_files(overlay, reverse(files))
            return "already-applied", {}, [f"{patch.name} is already in the tree (its reverse applies); skipped"]
        except Misfit:
            pass
        try:
            changes, notes = apply_files(overlay, files, fuzz=fuzz)
            return "applied", changes, notes
        except Misfit:
            raise _misfit_error(patch, first) from None


def apply_patches(tree: GoTree, patches: Sequence[Patch], *, fuzz: int = 0, dry_run: bool = False,
                  force: bool = False, log: Log = _quiet) -> list[Outcome]:
    """Apply ``patches`` in order, one commit each, all or nothing."""
    with file_lock(Path(tree.repo.git_dir) / journal.LOCK):
        # open_tree recovered before we held the lock; a command killed since then is
        # recovered here (and a caller that did not use open_tree is covered too).
        journal.recover(tree.path, Path(tree.repo.git_dir), log=log, locked=True)
        committed = {a.name: a.commit for a in applied(tree, patches) if a.name}
        dirty = dirty_paths(tree)
        check_clean(tree, dirty, (), force=force)
        parsed = [(p, parse_files(p)) for p in patches]  # every patch is well-formed before anything else
        overlay = Overlay(refusing(worktree_reader(tree.path), dirty, tree))
        outcomes: list[Outcome] = []
        steps: list[tuple[Patch, dict[str, State]]] = []
        for patch, files in parsed:
            if patch.name in committed:
                c = committed[patch.name]
                outcomes.append(Outcome(patch.name, "committed", [f"{patch.name} is already applied (commit {c.sha[:12]}); skipped"], c.sha))
                continue
            action, changes, notes = plan_patch(overlay, patch, files, fuzz=fuzz)
            overlay.update(changes)
            outcomes.append(Outcome(patch.name, action, notes, files=sorted(changes)))
            if action == "applied":
                steps.append((patch, changes))
        for o in outcomes:
            for note in o.notes:
                log(note)
        final = overlay.effective_changes()
        if not steps:
            return outcomes
        check_clean(tree, dirty, overlay.original, force=force)
        if dry_run:
            for o in outcomes:
                if o.action == "applied":
                    o.action = "would-apply"
            return outcomes
        head = git.head(tree.path)
        date = commit_date(tree, base_of(tree, head))
        new = [NewCommit(p.message, p.author or git.FALLBACK_IDENT, date, p.author or git.FALLBACK_IDENT, date, ch)
               for p, ch in steps]
        writer = CommitWriter(tree, head, new)
        shas: list[str] = []

        def commits_done() -> str:
            shas.extend(writer.result())
            return shas[-1]

        names = [p.name for p, _ in steps]
        try:
            write_tree(tree, final, overlay.original, new_head=commits_done, old_head=head,
                       reflog=f"gopatch apply {' '.join(names)}")
        finally:
            writer.abort()  # a no-op once result() has run
        by_name = dict(zip(names, shas, strict=True))
        for o in outcomes:
            if o.name in by_name:
                o.commit = by_name[o.name]
                log(f"applied {o.name} ({len(o.files)} file(s)) as {o.commit[:12]}")
        return outcomes


# --------------------------------------------------------------------------------------------
# revert
# --------------------------------------------------------------------------------------------


def revert_patches(tree: GoTree, names: Sequence[str] | None, *, dry_run: bool = False, force: bool = False,
                   log: Log = _quiet) -> list[Outcome]:
    """Remove the commits of ``names`` (None = every gopatch commit) from the chain, all or nothing.
    Commits after them are re-created on the new parent; one that needed a reverted patch stops
    the whole command with the usual misfit message."""
    with file_lock(Path(tree.repo.git_dir) / journal.LOCK):
        # open_tree recovered before we held the lock; a command killed since then is
        # recovered here (and a caller that did not use open_tree is covered too).
        journal.recover(tree.path, Path(tree.repo.git_dir), log=log, locked=True)
        commits = chain(tree)
        by_name = {c.name: c for c in commits if c.name}
        if names is None:
            drop = {c.sha for c in commits if c.name}
        else:
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise UsageError(f"patch(es) {', '.join(unknown)} are not applied in {tree.path}; "
                                 f"applied: {', '.join(by_name) or 'none'}.")
            drop = {by_name[n].sha for n in names}
        if not drop:
            log("no gopatch commits on top of the base; nothing to revert")
            return []
        dirty = dirty_paths(tree)
        check_clean(tree, dirty, (), force=force)
        first = next(i for i, c in enumerate(commits) if c.sha in drop)
        start = commits[first].parent
        with commit_reader(tree, start) as start_reader:
            overlay = Overlay(start_reader)
            rebuilt: list[NewCommit] = []
            outcomes: list[Outcome] = []
            touched: set[str] = set()
            for c in commits[first:]:
                diff = commit_diff(tree, c.parent, c.sha)
                label = c.name or c.subject
                files = hunks.parse_diff(diff, origin=f"commit {c.sha[:12]}") if diff.strip() else []
                for fd in files:
                    touched.update(p for p in (fd.old_path, fd.new_path) if p)
                if c.sha in drop:
                    outcomes.append(Outcome(label, "reverted" if not dry_run else "would-revert", commit=c.sha,
                                            files=sorted({p for fd in files for p in (fd.old_path, fd.new_path) if p})))
                    continue
                try:
                    changes, notes = apply_files(overlay, files)
                except Misfit as m:
                    raise PatchDoesNotApply(
                        f"cannot revert: commit {c.sha[:12]} ({label}) depends on a patch being reverted; "
                        f"nothing was changed.\n{m.describe()}",
                        hint="revert that commit too, or revert in a different order") from None
                overlay.update(changes)
                rebuilt.append(NewCommit(c.message, c.author, c.author_date, c.committer, c.committer_date, changes))
                outcomes.append(Outcome(label, "rebased", notes, files=sorted(changes)))
            # The work tree holds HEAD's bytes for these paths (checked below); the new state is
            # the overlay's, whose originals come from the start commit.
            current = Overlay(worktree_reader(tree.path))
            for p in touched:
                current.get(p)
            final = {p: overlay.get(p) for p in touched}
            final = {p: s for p, s in final.items() if s != current.original[p]}
            check_clean(tree, dirty, touched, force=force)
            for o in outcomes:
                for note in o.notes:
                    log(note)
            if dry_run:
                return outcomes
            head = git.head(tree.path)
            shas = write_commits(tree, start, rebuilt)
            new_head = shas[-1] if shas else start
            write_tree(tree, final, current.original, new_head=new_head, old_head=head, op="revert",
                       reflog=f"gopatch revert {' '.join(o.name for o in outcomes if o.action == 'reverted')}")
            kept = iter(shas)
            for o in outcomes:
                if o.action == "rebased":
                    o.commit = next(kept)
                log(f"{o.action} {o.name}")
            return outcomes


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


@dataclass
class PatchStatus:
    name: str
    state: str  # applied | applies | applies-with-offset | present | conflicts
    detail: str = ""
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "detail": self.detail, "commit": self.commit}


def status(tree: GoTree, patches: Sequence[Patch], *, fuzz: int = 0) -> tuple[list[PatchStatus], list[ChainCommit]]:
    """Per series patch: applied (its commit is on the chain), applies (cleanly, or at an
    offset), present (its change is in the tree without its commit), or conflicts. Unapplied
    patches are tried in series order on top of each other in memory, as `apply --all` would.
    Also returns the chain commits that belong to no series patch (candidates for extract)."""
    carried = applied(tree, patches)
    committed = {a.name: a.commit for a in carried if a.name}
    overlay = Overlay(worktree_reader(tree.path))
    out: list[PatchStatus] = []
    for patch in patches:
        if patch.name in committed:
            out.append(PatchStatus(patch.name, "applied", commit=committed[patch.name].sha))
            continue
        try:
            files = parse_files(patch)
        except PatchFormatError as exc:
            out.append(PatchStatus(patch.name, "malformed", exc.message))
            continue
        try:
            action, changes, notes = plan_patch(overlay, patch, files, fuzz=fuzz)
        except PatchDoesNotApply as exc:
            out.append(PatchStatus(patch.name, "conflicts", exc.message.split("\n", 1)[-1]))
            continue
        if action == "already-applied":
            out.append(PatchStatus(patch.name, "present", "its change is in the tree but not as a gopatch commit"))
        else:
            overlay.update(changes)
            out.append(PatchStatus(patch.name, "applies-with-offset" if notes else "applies", "\n".join(notes)))
    extra = [a.commit for a in carried if not a.name]
    return out, extra


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------


@dataclass
class Extracted:
    name: str
    file: str
    action: str  # unchanged | updated | new
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "action": self.action, "commit": self.commit}


def _same_effect(tree: GoTree, c: ChainCommit, existing: Patch, commit_files: list[FileDiff]) -> bool:
    with commit_reader(tree, c.parent) as before, commit_reader(tree, c.sha) as after:
        try:
            files = parse_files(existing)
            overlay = Overlay(before)
            changes, _ = apply_files(overlay, files)
        except (Misfit, GopatchError):
            return False
        paths = set(changes) | {p for fd in commit_files for p in (fd.old_path, fd.new_path) if p}
        return all((changes[p] if p in changes else overlay.get(p)) == after(p) for p in paths)


def extract(tree: GoTree, series_dir: Path, patches: Sequence[Patch], *, dry_run: bool = False,
            log: Log = _quiet) -> list[Extracted]:
    """Write each commit on top of the base back as a patch file, deterministically; a file whose
    message and effect did not change keeps its bytes; new commits become new series entries
    (after the entry of the commit before them). All files are checked before any is written."""
    series_dir = Path(series_dir)
    by_name = {p.name: p for p in patches}
    results: list[Extracted] = []
    writes: dict[Path, bytes] = {}
    used: set[str] = set(by_name)
    order: list[str] = []
    for a in applied(tree, patches):
        c = a.commit
        diff = commit_diff(tree, c.parent, c.sha)
        if not diff.strip():
            log(f"commit {c.sha[:12]} ({c.subject}) changes nothing; skipped")
            continue
        name = a.name
        if name is None:
            base = slug(c.subject)
            name, n = base, 2
            while name in used:
                name, n = f"{base}-{n}", n + 1
        used.add(name)
        order.append(name)
        body = body_of(c.message)
        data = render_patch(author=c.author, subject=c.subject, body=body, diff=strip_index_lines(diff))
        path = series_dir / f"{name}.patch"
        try:
            candidate = parse_patch_bytes(data, path=path, name=name)
        except PatchFormatError as exc:  # e.g. a commit made by hand without a Touches: trailer
            raise PatchFormatError(f"commit {c.sha[:12]} ({c.subject}) cannot become {path.name}: "
                                   f"{exc.message.split(': ', 1)[-1]}",
                                   hint="amend the commit message (git commit --amend, git rebase -i) "
                                        "and run extract again; nothing was written") from None
        commit_files = parse_files(candidate)
        existing = by_name.get(name)
        if existing is not None and existing.message == candidate.message and _same_effect(tree, c, existing, commit_files):
            results.append(Extracted(name, path.name, "unchanged", c.sha))
            continue
        if existing is None and path.exists():
            raise UsageError(f"{path} exists but is not in {series_dir / SERIES_FILE}; move it away or add it.")
        writes[path] = data
        results.append(Extracted(name, path.name, "updated" if existing else "new", c.sha))
    new_names = [r.name for r in results if r.action == "new"]
    series_text = series_with(series_dir, order, set(new_names)) if new_names else None
    for r in results:
        log(f"{r.action:9} {r.file}")
    if dry_run:
        return results
    for path, data in writes.items():
        write_file_atomic(path, data)
    if series_text is not None:
        write_file_atomic(series_dir / SERIES_FILE, series_text.encode())
    return results
