"""What the differential suite draws, and how a drawn case becomes an edited tree or a mutated diff.

Pure data and byte manipulation (no git, no file system): ``differential.World`` writes the
edited trees into git, asks ``git diff`` for the patch and runs both sides. The categories:

* valid-edit: ``git diff`` (-U0..-U5, with or without -M, --binary or not) of 1-3 random edits:
  line replacements, insertions, deletions, duplicated blocks, CRLF and final-newline flips,
  new files (names git quotes, deep directories), deletions, mode changes, binary changes;
* valid-rename-copy: the same plus renames and copies, diffed with -M, -C or -C -C;
* valid-multi-section: two successive diffs concatenated, the second often editing a file the
  first touched (several sections for one file; git applies them in order);
* valid-offset: a diff made on a slightly different tree (lines added or removed first) and/or
  with hunk headers moved, applied to the base: hunks found at an offset, ambiguous context in
  the file of repeated blocks;
* broken-*: a valid diff (without binary sections) truncated, with hunk counts changed, garbage
  lines, sections or hunks swapped, repeated or dropped, path tricks, or bad header lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from hypothesis import strategies as st

Tree = dict[str, tuple[str, bytes]]  # path -> (git mode, bytes); symlinks: mode 120000, bytes = target
_REPEAT_BLOCK = b"\tif err != nil {\n\t\treturn err\n\t}\n\tn++\n"
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


def _text_lines(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        out.append(data[pos:end])
        pos = end
    return out


def apply_edits(tree: Tree, eds: tuple[Edit, ...]) -> Tree:
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
        raw = os.fsencode(unquote(old))[2:]
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


_ESC = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


def unquote(raw: bytes) -> str:
    """A path as a diff header writes it (maybe C-quoted) -> str (surrogate-escaped bytes)."""
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
