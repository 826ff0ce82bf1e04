"""Unified diffs as data, and applying their hunks to bytes in memory.

Nothing here touches a tree or git: ``parse_diff`` turns diff bytes into ``FileDiff`` objects and
``apply_file`` turns the old bytes of one file into its new bytes (or raises ``Misfit`` saying
where and why). ``pipeline.patches`` does the file system and git work around it.

Parsing is split on purpose. unidiff reads the structure (file headers, git extended headers,
hunk headers, line counts) in its ``metadata_only`` mode, which validates counts and is 4x faster
than its full mode (1 s instead of 4 s on the 40 MB go1.26.6 -> go1.27.2 diff). The hunk bodies
are then sliced here as *bytes*: Go's source holds non-UTF-8 bytes and lone CRs inside lines, so
lines are split on b"\\n" only (``BytesIO.readlines``) and never decoded, and the bytes written
back are exactly the bytes of the diff.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import unidiff
from unidiff.errors import UnidiffParseError

from .errors import PatchFormatError

DEV_NULL = "/dev/null"
_HUNK_RE = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_OCTAL_RE = re.compile(r"\\([0-7]{3})")
_C_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
# Modes git writes for a regular file; 120000 (symlink) and 160000 (submodule) are refused.
REGULAR_MODES = ("100644", "100755", "100664")


@dataclass(slots=True)
class Hunk:
    header: str  # the @@ line as written, for messages
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    old: list[bytes]  # context + removed lines, each with its b"\n" unless at a missing EOF newline
    new: list[bytes]  # context + added lines
    lead: int  # leading context lines (shared by old and new)
    trail: int  # trailing context lines
    line_no: int  # 1-based line of the @@ header in the patch file

    def reversed(self) -> Hunk:
        return Hunk(self.header_reversed(), self.new_start, self.new_len, self.old_start, self.old_len,
                    self.new, self.old, self.lead, self.trail, self.line_no)

    def header_reversed(self) -> str:
        return f"@@ -{self.new_start},{self.new_len} +{self.old_start},{self.old_len} @@ (reversed)"


@dataclass(slots=True)
class FileDiff:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    old_mode: str | None
    new_mode: str | None
    hunks: list[Hunk] = field(default_factory=list)
    line_no: int = 0

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def is_rename(self) -> bool:
        return self.old_path is not None and self.new_path is not None and self.old_path != self.new_path

    def reversed(self) -> FileDiff:
        return FileDiff(self.new_path, self.old_path, self.new_mode, self.old_mode,
                        [h.reversed() for h in self.hunks], self.line_no)


@dataclass(frozen=True)
class Misfit(Exception):
    """A hunk (or a whole-file condition) does not fit the bytes it was given."""

    path: str
    reason: str
    hunk: Hunk | None = None
    at: int | None = None  # 0-based line of the closest place in the file
    actual: tuple[bytes, ...] = ()

    def describe(self) -> str:
        if self.hunk is None:
            return f"{self.path}: {self.reason}"
        h = self.hunk
        lines = [f"{self.path}: hunk {h.header} (patch line {h.line_no}) {self.reason}"]
        if self.at is not None:
            lines.append(f"closest place: line {self.at + 1} of the file; expected (-) versus actual (+):")
            total = max(len(h.old), len(self.actual))
            for i in range(min(total, 24)):
                want = h.old[i] if i < len(h.old) else None
                got = self.actual[i] if i < len(self.actual) else None
                if want == got:
                    lines.append("    " + show_line(want))
                else:
                    if want is not None:
                        lines.append("  - " + show_line(want))
                    if got is not None:
                        lines.append("  + " + show_line(got))
            if total > 24:
                lines.append(f"    ... ({total - 24} more line(s))")
        return "\n".join(lines)


def show_line(line: bytes | None) -> str:
    """One diff or file line for a message: without its newline, CR and non-UTF-8 bytes escaped."""
    if line is None:
        return ""
    text = line[:-1] if line.endswith(b"\n") else line + b"  (no newline at end of file)"
    return text.decode("utf-8", "backslashreplace").replace("\r", "\\r")


@dataclass(frozen=True)
class Applied:
    data: bytes
    offsets: tuple[tuple[str, int], ...] = ()  # (hunk header, offset in lines) for moved hunks
    fuzzed: tuple[tuple[str, int], ...] = ()  # (hunk header, context lines ignored)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def unquote_path(text: str) -> str:
    """A diff path as written (latin-1 decoded, maybe C-quoted by git) -> a file system path str."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        body = text[1:-1]
        out = bytearray()
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 1 < len(body):
                m = _OCTAL_RE.match(body, i)
                if m:
                    out.append(int(m.group(1), 8))
                    i += 4
                    continue
                out += _C_ESCAPES.get(body[i + 1], body[i + 1]).encode("latin-1")
                i += 2
                continue
            out += c.encode("latin-1")
            i += 1
        raw = bytes(out)
    else:
        raw = text.encode("latin-1")
    return os.fsdecode(raw)


def _strip_prefix(path: str) -> str:
    # git's a/ b/ prefixes (and the mnemonic ones unidiff knows); `--no-prefix` diffs are not supported
    # because a path such as "a/b.go" would be ambiguous.
    if len(path) > 2 and path[1] == "/" and path[0] in "abciow12":
        return path[2:]
    raise PatchFormatError(f"diff path {path!r} has no a/ or b/ prefix")


def safe_relpath(path: str, *, where: str) -> str:
    """Refuse anything that could leave the tree or reach into .git; return the normal form."""
    problem = None
    if not path or "\0" in path:
        problem = "is empty or holds a NUL byte"
    elif path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        problem = "is absolute"
    else:
        parts = path.split("/")
        if any(p == ".." for p in parts):
            problem = "contains '..'"
        elif any(p in ("", ".") for p in parts):
            problem = "is not a normal relative path (empty or '.' component)"
        elif any(p.lower() == ".git" for p in parts):
            problem = "points into .git"
    if problem:
        raise PatchFormatError(f"{where}: refusing path {path!r}: it {problem}.",
                               hint="patch paths must be relative to the GOROOT root (src/runtime/proc.go)")
    return path


def parse_diff(data: bytes, *, origin: str = "<diff>", first_line: int = 1) -> list[FileDiff]:
    """Parse unified diff bytes (several files, git extended headers, no-newline markers).

    ``origin`` and ``first_line`` (the line of ``data``'s start in its patch file) make every
    error name the file and line. Raises PatchFormatError for anything malformed or unsupported.
    """
    lines = io.BytesIO(data).readlines()
    try:
        ps = unidiff.PatchSet(lines, encoding="latin-1", metadata_only=True)
    except UnidiffParseError as exc:
        raise PatchFormatError(f"{origin}:{first_line + _fail_line(lines)}: malformed diff: {exc}") from None
    if not ps:
        raise PatchFormatError(f"{origin}:{first_line}: no diff found (expected `diff --git` or `---`/`+++` lines).")
    files: list[FileDiff] = []
    binary = []
    for pf in ps:
        at = first_line + (pf.diff_line_no or 1) - 1
        where = f"{origin}:{at}"
        if pf.is_binary_file:
            binary.append(pf.path)
            continue
        info = [str(x) for x in (pf.patch_info or ())]
        if any(x.startswith(("copy from ", "copy to ")) for x in info):
            raise PatchFormatError(f"{where}: git copy entries are not supported ({pf.path}).")
        for mode in (pf.source_mode, pf.target_mode):
            if mode is not None and mode not in REGULAR_MODES:
                kind = {"120000": "a symlink", "160000": "a submodule"}.get(mode, f"mode {mode}")
                raise PatchFormatError(f"{where}: {pf.path} is {kind}; gopatch only patches regular files.")
        old = None if pf.source_file == DEV_NULL else unquote_path(pf.source_file)
        new = None if pf.target_file == DEV_NULL else unquote_path(pf.target_file)
        try:
            old = None if old is None else safe_relpath(_strip_prefix(old), where=where)
            new = None if new is None else safe_relpath(_strip_prefix(new), where=where)
        except PatchFormatError as exc:
            if exc.message.startswith(where):
                raise
            raise PatchFormatError(f"{where}: {exc.message}") from None
        if old is None and new is None:
            raise PatchFormatError(f"{where}: both sides of the diff are /dev/null.")
        old_mode = None if old is None else pf.source_mode
        new_mode = None if new is None else pf.target_mode
        fd = FileDiff(old, new, old_mode, new_mode, line_no=at)
        fd.hunks = _slice_hunks(lines, pf, origin, first_line)
        if not fd.hunks and old is not None and new is not None and old == new and old_mode == new_mode:
            continue  # a header without any change (e.g. only an index line)
        files.append(fd)
    if binary:
        raise PatchFormatError(
            f"{origin}: binary patches are not supported; the diff changes binary file(s): "
            + ", ".join(binary[:10]) + (f" and {len(binary) - 10} more" if len(binary) > 10 else ""),
            hint="leave binary files out of the patch (they are test data in the Go tree)",
        )
    seen: set[str] = set()
    for fd in files:
        for p in {fd.old_path, fd.new_path} - {None}:
            if p in seen:
                raise PatchFormatError(f"{origin}:{fd.line_no}: {p} appears twice in one diff.")
            seen.add(p)  # type: ignore[arg-type]
    return files


def _fail_line(lines: list[bytes]) -> int:
    """0-based line where unidiff gave up: re-run it on a counting iterator (error path only)."""
    count = 0

    def counted():
        nonlocal count
        for line in lines:
            count += 1
            yield line

    with contextlib.suppress(UnidiffParseError):
        unidiff.PatchSet(counted(), encoding="latin-1", metadata_only=True)
    return max(count - 1, 0)


def _slice_hunks(lines: list[bytes], pf, origin: str, first_line: int) -> list[Hunk]:
    """Cut the hunk bodies of one file out of ``lines``; unidiff already checked their counts."""
    hunks: list[Hunk] = []
    i = (pf.diff_line_no or 1) - 1
    n = len(lines)
    for meta in pf:
        while i < n and not lines[i].startswith(b"@@ -"):
            i += 1
        if i >= n:  # unidiff found a hunk we cannot: never silently drop it
            raise PatchFormatError(f"{origin}: cannot locate hunk {meta!r} of {pf.path}.")
        header_line = i
        header = lines[i].rstrip(b"\r\n").decode("latin-1")
        m = _HUNK_RE.match(lines[i])
        if not m:
            raise PatchFormatError(f"{origin}:{first_line + i}: malformed hunk header {header!r}.")
        i += 1
        fast = _fast_body(lines, i, meta.source_length, meta.target_length)
        if fast is not None:
            old, new, lead, trail, i = fast
        else:
            old, new, lead, trail, i = _slow_body(lines, i, meta.source_length, meta.target_length,
                                                  origin, first_line, header_line, header)
        if i < n and _stray(lines[i]):
            raise PatchFormatError(f"{origin}:{first_line + i}: line {lines[i][:60]!r} follows hunk {header} "
                                   "although the hunk's line counts are complete (wrong counts in the @@ line?).")
        hunks.append(Hunk(header, meta.source_start, meta.source_length, meta.target_start,
                          meta.target_length, old, new, lead, trail, first_line + header_line))
    return hunks


def _stray(line: bytes) -> bool:
    """A hunk line right after a complete hunk: its header's counts are wrong. unidiff would
    silently take it for commentary, and the change it carries would be lost."""
    c = line[:1]
    if c == b"+" or c == b" ":
        return True
    # "--- a/x" starts the next file of a plain diff; "-- " is format-patch's signature line.
    return c == b"-" and not line.startswith(b"--- ") and line != b"-- \n"


def _fast_body(lines: list[bytes], i: int, need_old: int, need_new: int):
    """The common hunk (only ' ', '-', '+' lines, no end-of-file marker) with list comprehensions:
    this halves the time to slice a 40 MB diff. None means: take the careful path."""
    j, n = i, len(lines)
    while (need_old > 0 or need_new > 0) and j < n:
        c = lines[j][0]
        if c == 32:
            need_old -= 1
            need_new -= 1
        elif c == 45:
            need_old -= 1
        elif c == 43:
            need_new -= 1
        else:
            return None
        j += 1
    if need_old or need_new or (j < n and lines[j][:1] == b"\\"):
        return None
    body = lines[i:j]
    old = [line[1:] for line in body if line[0] != 43]
    new = [line[1:] for line in body if line[0] != 45]
    lead = 0
    while lead < len(body) and body[lead][0] == 32:
        lead += 1
    trail = 0
    while trail < len(body) - lead and body[-1 - trail][0] == 32:
        trail += 1
    return old, new, lead, trail, j


def _slow_body(lines: list[bytes], i: int, need_old: int, need_new: int, origin: str, first_line: int,
               header_line: int, header: str):
    """Any hunk: empty context lines, ``\\ No newline at end of file`` markers, truncation."""
    n = len(lines)
    old: list[bytes] = []
    new: list[bytes] = []
    kinds: list[int] = []  # 0 context, 1 removed, 2 added
    while (need_old or need_new) and i < n:
        line = lines[i]
        c = line[:1]
        if c == b" ":
            old.append(line[1:])
            new.append(line[1:])
            kinds.append(0)
            need_old -= 1
            need_new -= 1
        elif c == b"-":
            old.append(line[1:])
            kinds.append(1)
            need_old -= 1
        elif c == b"+":
            new.append(line[1:])
            kinds.append(2)
            need_new -= 1
        elif c == b"\\":
            _no_newline(old, new, kinds)
        elif line in (b"\n", b"\r\n"):  # an empty context line whose space was stripped
            old.append(line)
            new.append(line)
            kinds.append(0)
            need_old -= 1
            need_new -= 1
        else:
            raise PatchFormatError(f"{origin}:{first_line + i}: expected a hunk line, found {line[:60]!r}.")
        i += 1
    if need_old or need_new:
        raise PatchFormatError(f"{origin}:{first_line + header_line}: hunk {header} is truncated.")
    if i < n and lines[i].startswith(b"\\"):
        _no_newline(old, new, kinds)
        i += 1
    lead = 0
    while lead < len(kinds) and kinds[lead] == 0:
        lead += 1
    trail = 0
    while trail < len(kinds) - lead and kinds[-1 - trail] == 0:
        trail += 1
    return old, new, lead, trail, i


def _no_newline(old: list[bytes], new: list[bytes], kinds: list[int]) -> None:
    """``\\ No newline at end of file`` refers to the line just before it."""
    if not kinds:
        return
    k = kinds[-1]
    if k in (0, 1) and old and old[-1].endswith(b"\n"):
        old[-1] = old[-1][:-1]
    if k in (0, 2) and new and new[-1].endswith(b"\n"):
        new[-1] = new[-1][:-1]


# --------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------


def split_lines(data: bytes) -> list[bytes]:
    """Lines split on b"\\n" only: a CR inside a line stays inside it."""
    return io.BytesIO(data).readlines()


def apply_file(fd: FileDiff, old: bytes | None, *, fuzz: int = 0, allow_offset: bool = True) -> Applied:
    """New bytes of ``fd``'s file given its old bytes (None = the file does not exist).

    Each hunk is tried at its recorded place first, then at the nearest offset (searching outward,
    never before the end of the previous hunk, as GNU patch and git apply do); only when that
    fails, and ``fuzz`` > 0, with up to ``fuzz`` context lines dropped at each edge.
    """
    path = fd.path
    if fd.old_path is None:
        if old is not None:
            raise Misfit(path, "creates a file that already exists")
        old = b""
    elif old is None:
        raise Misfit(fd.old_path, "changes a file that does not exist")
    lines = split_lines(old)
    out: list[bytes] = []
    pos = 0  # first line of `lines` not yet copied to `out`
    shift = 0  # how far earlier hunks landed from their headers
    offsets: list[tuple[str, int]] = []
    fuzzed: list[tuple[str, int]] = []
    for h in fd.hunks:
        found = None
        for f in range(0, fuzz + 1):
            hh = _drop_context(h, f) if f else h
            if hh is None:
                break
            at = _locate(lines, hh, pos, shift, allow_offset=allow_offset, anchored=(f == 0))
            if at is not None:
                found = (at, hh, f)
                break
        if found is None:
            at = _closest(lines, h, pos)
            actual = tuple(lines[at:at + len(h.old)]) if at is not None else ()
            raise Misfit(path, "does not apply", hunk=h, at=at, actual=actual)
        at, hh, f = found
        delta = at - _expected(hh)
        if delta:
            offsets.append((h.header, delta))
        if f:
            fuzzed.append((h.header, f))
        shift = delta
        out.extend(lines[pos:at])
        out.extend(hh.new)
        pos = at + len(hh.old)
    out.extend(lines[pos:])
    data = b"".join(out)
    if fd.new_path is None and data:
        raise Misfit(path, f"deletes the file, but {len(split_lines(data))} line(s) would remain")
    # A line without its newline may only ever be the last one: anything else means the hunks
    # disagree with the file about where it ends.
    # (No element holds a newline except at its end, so counting them checks all lines at once.)
    if data.count(b"\n") != len(out) - (0 if not data or data.endswith(b"\n") else 1):
        raise Misfit(path, "would put text after a line that has no newline (end of file mismatch)")
    return Applied(data, tuple(offsets), tuple(fuzzed))


def _expected(h: Hunk) -> int:
    """0-based index where the hunk's old lines start according to its header."""
    if h.old_len == 0:
        return h.old_start  # "-N,0" means: insert after line N
    return max(h.old_start - 1, 0)


def _drop_context(h: Hunk, f: int) -> Hunk | None:
    lead, trail = min(f, h.lead), min(f, h.trail)
    if lead == 0 and trail == 0:
        return None
    end_old = len(h.old) - trail
    end_new = len(h.new) - trail
    return replace(h, old=h.old[lead:end_old], new=h.new[lead:end_new], old_start=h.old_start + lead,
                   lead=h.lead - lead, trail=h.trail - trail)


def _locate(lines: Sequence[bytes], h: Hunk, lo: int, shift: int, *, allow_offset: bool,
            anchored: bool) -> int | None:
    n = len(h.old)
    hi = len(lines) - n  # last possible start
    want = _expected(h) + shift
    # A hunk with less context on one side than the other was cut short by the start or the end
    # of the file (git apply's match_beginning/match_end): it must fit there and nowhere else.
    if anchored and h.lead < h.trail:
        return 0 if lo == 0 and _fits(lines, h.old, 0) else None
    if anchored and h.trail < h.lead:
        return hi if hi >= lo and _fits(lines, h.old, hi) else None
    if hi < lo:
        return None
    want = min(max(want, lo), hi)
    if _fits(lines, h.old, want):
        return want
    if not allow_offset:
        return None
    first = h.old[0] if n else None
    for d in range(1, max(want - lo, hi - want) + 1):
        for at in (want - d, want + d):
            if lo <= at <= hi and (first is None or lines[at] == first) and _fits(lines, h.old, at):
                return at
    return None


def _fits(lines: Sequence[bytes], old: list[bytes], at: int) -> bool:
    n = len(old)
    return lines[at:at + n] == old


def _closest(lines: Sequence[bytes], h: Hunk, lo: int) -> int | None:
    """Where the hunk's old lines agree best with the file (for the error message)."""
    n = len(h.old)
    if not lines or n == 0:
        return None
    best, best_score = None, -1
    want = min(max(_expected(h), 0), max(len(lines) - 1, 0))
    wanted = set(h.old)
    for at in range(0, max(len(lines) - n, 0) + 1):
        if lines[at] not in wanted and at != want:
            continue
        window = lines[at:at + n]
        score = sum(1 for a, b in zip(window, h.old, strict=False) if a == b)
        if score > best_score or (score == best_score and best is not None and abs(at - want) < abs(best - want)):
            best, best_score = at, score
    return best if best_score > 0 else want
