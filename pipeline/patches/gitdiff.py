"""Reading a patch the way `git apply` reads it.

`git apply` is gopatch's reference for what a diff means, so this module follows git's own
reader, ``apply.c`` (functions named in the comments: ``find_header``, ``parse_git_diff_header``,
``git_header_name``, ``parse_traditional_patch``, ``parse_fragment``, ``parse_single_patch``,
``parse_chunk``, ``parse_binary_hunk``), decision for decision: which lines start a file section,
which header lines count, how names are found and unquoted, what makes a hunk corrupt, what is
skipped as garbage. A diff that git refuses to read is refused here with the file and line; one
it reads is read into the same sections, in the same order, with the same names and modes.

Why not unidiff for this: unidiff reads the same text more leniently than git (a section cut
after its ``+++`` line or a hunk with impossible counts is silently left out, ``rename from``/
``rename to`` lines are ignored, one path may not appear twice), and each of those is a way to
ship a toolchain without part of a patch. unidiff still reads diffs where leniency is harmless
(``verify.claims`` lists the files a patch touches).

Lines are bytes split on b"\\n" only (Go's source has lone CRs and non-UTF-8 bytes inside lines)
and never decoded, except names, which are decoded with ``os.fsdecode``.

A few refusals go further than git, for safety; they are applied by ``hunks.parse_diff`` on
the sections this module returns, and listed in the README (section "Applying patches").
"""

from __future__ import annotations

import base64
import io
import re
import zlib
from dataclasses import dataclass, field
from itertools import accumulate

from ..errors import PatchFormatError

_WS = b" \t\n\v\f\r"  # C isspace() in the "C" locale
_HUNK_HEADER_RE = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_MODE_RE = re.compile(rb"[ \t\n\v\f\r]*([0-7]+)")
_EPOCH_RE = re.compile(rb"^[0-2][0-9]:([0-5][0-9]):00(\.0+)? ([-+][0-2][0-9]:?[0-5][0-9])\n")
_C_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11,
              ord("\\"): 92, ord('"'): 34}


@dataclass(slots=True)
class Hunk:
    """One ``@@`` fragment. ``old``/``new`` are the pre- and post-image lines as apply.c's
    ``apply_one_fragment`` builds them (a line before ``\\ No newline at end of file`` loses its
    newline); ``lead``/``trail`` are the context lines before the first and after the last change."""

    header: str  # the @@ line as written, for messages
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    old: list[bytes]
    new: list[bytes]
    lead: int
    trail: int
    line_no: int  # 1-based line of the @@ header in the patch file
    context: int = -1  # context lines anywhere in the hunk (-1: not known)

    def reversed(self) -> Hunk:
        return Hunk(f"@@ -{self.new_start},{self.new_len} +{self.old_start},{self.old_len} @@ (reversed)",
                    self.new_start, self.new_len, self.old_start, self.old_len, self.new, self.old,
                    self.lead, self.trail, self.line_no, self.context)


@dataclass(frozen=True, slots=True)
class BinaryHunk:
    method: str  # "literal" (the new bytes) or "delta" (a git delta against the old bytes)
    data: bytes  # inflated


@dataclass(slots=True)
class FileDiff:
    """One file section of a diff (apply.c's ``struct patch``)."""

    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    old_mode: str | None = None  # "100644"...; None when the diff does not say
    new_mode: str | None = None
    hunks: list[Hunk] = field(default_factory=list)
    line_no: int = 0
    # True/False, or None for a traditional diff that does not say: decided by the tree (git's -1).
    is_new: bool | None = False
    is_delete: bool | None = False
    is_rename: bool = False
    is_copy: bool = False
    is_binary: bool = False
    binary: tuple[BinaryHunk, ...] = ()  # forward hunk, then the optional reverse hunk
    old_oid: str = ""  # from the index line (may be abbreviated)
    new_oid: str = ""

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    def reversed(self) -> FileDiff:
        """The section as `git apply -R` sees it (apply.c ``reverse_patches``)."""
        old_mode, new_mode = self.old_mode, self.new_mode
        if new_mode is not None:
            old_mode, new_mode = new_mode, old_mode
        binary = (self.binary[1], self.binary[0]) if len(self.binary) == 2 else ()
        return FileDiff(self.new_path, self.old_path, old_mode, new_mode,
                        [h.reversed() for h in self.hunks], self.line_no, is_new=self.is_delete,
                        is_delete=self.is_new, is_rename=self.is_rename, is_copy=self.is_copy,
                        is_binary=self.is_binary, binary=binary if self.binary else (),
                        old_oid=self.new_oid, new_oid=self.old_oid)


class _Section:
    """apply.c's ``struct patch`` while it is being read: git keeps some fields across a failed
    header attempt, and so does this (``find_header`` resets only what git resets)."""

    def __init__(self) -> None:
        self.def_name: bytes | None = None
        self.old_name: bytes | None = None
        self.new_name: bytes | None = None
        self.old_mode = 0
        self.new_mode = 0
        self.is_new = -1
        self.is_delete = -1
        self.is_rename = 0
        self.is_copy = 0
        self.old_oid = b""
        self.new_oid = b""
        self.extension_line = 0
        self.line_no = 0


def _show(text: bytes) -> str:
    """A line of the patch for a message: without its newline, non-UTF-8 bytes escaped."""
    return text.rstrip(b"\n").decode("utf-8", "backslashreplace")


def _isspace(c: int) -> bool:
    return c in _WS


def unquote_c_style(text: bytes, start: int = 0) -> tuple[bytes, int] | None:
    """git's ``unquote_c_style``: ``text[start]`` is a double quote; returns the unquoted bytes
    and the index just past the closing quote, or None when the quoting is invalid."""
    if start >= len(text) or text[start] != 0x22:
        return None
    out = bytearray()
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x22:
            return bytes(out), i + 1
        if c == 0x0A:
            return None
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= n:
            return None
        c = text[i]
        if c in _C_ESCAPES:
            out.append(_C_ESCAPES[c])
            i += 1
        elif 0x30 <= c <= 0x33:  # \ooo, first digit 0-3
            if i + 2 >= n or not all(0x30 <= d <= 0x37 for d in text[i + 1:i + 3]):
                return None
            out.append(int(text[i:i + 3], 8))
            i += 3
        else:
            return None
    return None


def _squash_slash(name: bytes) -> bytes:
    return re.sub(rb"/{2,}", b"/", name)


def _find_name_gnu(line: bytes, p_value: int) -> bytes | None:
    got = unquote_c_style(line)
    if got is None:
        return None
    name = got[0]
    cp = 0
    for _ in range(p_value):
        slash = name.find(b"/", cp)
        if slash < 0:
            return None
        cp = slash + 1
    return _squash_slash(name[cp:])


def _find_name_common(line: bytes, default: bytes | None, p_value: int, end: int | None,
                      terminate: int) -> bytes | None:
    """git's ``find_name_common``; ``terminate``: 1 = a space ends the name, 2 = a tab does."""
    start = 0 if p_value == 0 else None
    i = 0
    stop = len(line) if end is None else end
    while i < stop:
        c = line[i]
        if end is None and c in _WS:
            if c == 0x0A:
                break
            if not ((c == 0x20 and not terminate & 1) or (c == 0x09 and not terminate & 2)):
                break
        i += 1
        if c == 0x2F:
            p_value -= 1
            if p_value == 0:
                start = i
    if start is None or i - start == 0:
        return None if default is None else _squash_slash(default)
    name = line[start:i]
    if default is not None and len(default) < len(name) and name.startswith(default):
        return _squash_slash(default)  # git prefers the shorter name ("file" over "file.orig")
    return _squash_slash(name)


def _find_name(line: bytes, default: bytes | None, p_value: int, terminate: int) -> bytes | None:
    if line[:1] == b'"':
        name = _find_name_gnu(line, p_value)
        if name is not None:
            return name
    return _find_name_common(line, default, p_value, None, terminate)


def _digits(text: bytes) -> bool:
    return all(0x30 <= c <= 0x39 for c in text)


def _timestamp_len(line: bytes) -> int:
    """git's ``diff_timestamp_len``: how many bytes at the end of ``line`` (no newline) are the
    date that diff(1) writes after a name (``2010-07-05 19:41:17.620000023 -0500``), with the
    white space before it; 0 when there is none."""
    end = len(line)
    if not end or not _digits(line[-1:]):
        return 0
    # time zone: " +0500" or " +05:00"
    if end >= 6 and line[end - 6] == 0x20 and line[end - 5] in b"+-" and _digits(line[end - 4:end]):
        end -= 6
    elif end >= 7 and line[end - 7] == 0x20 and line[end - 6] in b"+-" and _digits(line[end - 5:end - 3]) \
            and line[end - 3] == 0x3A and _digits(line[end - 2:end]):
        end -= 7

    def short_time(e: int) -> int:  # " 07:01:32"
        t = line[e - 9:e] if e >= 9 else b""
        ok = len(t) == 9 and t[0] == 0x20 and _digits(t[1:3]) and t[3] == 0x3A and _digits(t[4:6]) \
            and t[6] == 0x3A and _digits(t[7:9])
        return 9 if ok else 0

    n = short_time(end)
    if not n and end and _digits(line[end - 1:end]):  # fractional seconds "19:41:17.620000023"
        p = end - 1
        while p > 0 and _digits(line[p:p + 1]):
            p -= 1
        if line[p:p + 1] == b".":
            m = short_time(p)
            n = end - p + m if m else 0
    end -= n
    d = line[end - 8:end] if end >= 8 else b""  # "72-02-05", maybe "1972-02-05"
    if not (len(d) == 8 and _digits(d[0:2]) and d[2] == 0x2D and _digits(d[3:5]) and d[5] == 0x2D
            and _digits(d[6:8])):
        return 0
    date = end - 8
    if date >= 2 and _digits(line[date - 2:date]):
        date -= 2
    end = date
    if end == 0:
        return 0
    if line[end - 1] == 0x09:
        return len(line) - (end - 1)
    if line[end - 1] != 0x20:
        return 0
    while end > 0 and line[end - 1] == 0x20:
        end -= 1
    return len(line) - end


def _find_name_traditional(line: bytes, default: bytes | None, p_value: int) -> bytes | None:
    if line[:1] == b'"':
        name = _find_name_gnu(line, p_value)
        if name is not None:
            return name
    nl = line.find(b"\n")
    length = len(line) if nl < 0 else nl
    date = _timestamp_len(line[:length])
    if not date:
        return _find_name_common(line, default, p_value, None, 2)
    return _find_name_common(line, default, p_value, length - date, 0)


def _is_dev_null(text: bytes) -> bool:
    return text.startswith(b"/dev/null") and len(text) > 9 and _isspace(text[9])


def _has_epoch_timestamp(nameline: bytes) -> bool:
    """GNU diff writes the epoch as the date of a created or deleted file (apply.c)."""
    tab = nameline.rfind(b"\t", 0, nameline.find(b"\n") if b"\n" in nameline else len(nameline))
    if tab < 0:
        return False
    stamp = nameline[tab + 1:]
    if stamp.startswith(b"1969-12-31 "):
        epoch_hour = 24
    elif stamp.startswith(b"1970-01-01 "):
        epoch_hour = 0
    else:
        return False
    stamp = stamp[11:]
    m = _EPOCH_RE.match(stamp)
    if not m:
        return False
    hour, minute = int(stamp[:2]), int(m.group(1))
    zone = m.group(3)
    sign = -1 if zone[:1] == b"-" else 1
    digits = zone[1:].replace(b":", b"")
    offset = int(digits[:2]) * 60 + int(digits[2:])
    return hour * 60 + minute - sign * offset == epoch_hour * 60


def _skip_tree_prefix(p_value: int, text: bytes) -> int | None:
    """Index after the first ``p_value`` components, or None (an absolute path, too few)."""
    if not p_value:
        return None if text[:1] == b"/" else 0
    nslash = p_value
    for i, c in enumerate(text):
        if c == 0x2F:
            nslash -= 1
            if nslash <= 0:
                return None if i == 0 else i + 1
    return None


def _git_header_name(p_value: int, line: bytes) -> bytes | None:
    """git's ``git_header_name``: the name in ``diff --git a/NAME b/NAME`` when both sides agree.
    ``line`` includes its newline (git counts it, which matters below)."""
    text = line[len(b"diff --git "):]
    llen = len(text)
    if text[:1] == b'"':
        got = unquote_c_style(text)
        if got is None:
            return None
        first, second = got
        cp = _skip_tree_prefix(p_value, first)
        if cp is None:
            return None
        first = first[cp:]
        while second < llen and _isspace(text[second]):
            second += 1
        if llen <= second:
            return None
        if text[second] == 0x22:
            got2 = unquote_c_style(text, second)
            if got2 is None:
                return None
            cp = _skip_tree_prefix(p_value, got2[0])
            if cp is None or got2[0][cp:] != first:
                return None
            return first
        rest = text[second:]
        cp = _skip_tree_prefix(p_value, rest)
        if cp is None or rest[cp:] != first:  # rest holds the newline: git's quirk, never equal
            return None
        return first
    start = _skip_tree_prefix(p_value, text)
    if start is None:
        return None
    name = text[start:]
    q = name.find(b'"')
    if q >= 0:
        got = unquote_c_style(name, q)
        if got is None:
            return None
        np = _skip_tree_prefix(p_value, got[0])
        if np is None:
            return None
        tail = got[0][np:]
        if len(tail) < q and name.startswith(tail) and _isspace(name[len(tail)]):
            return tail
        return None
    nl = name.find(b"\n")
    if nl < 0:
        return None
    line_len = nl
    for length, c in enumerate(name):
        if c == 0x0A:
            return None
        if c in (0x09, 0x20):
            if length + 1 >= len(name):
                return None
            other = name[length + 1:line_len]
            cp = _skip_tree_prefix(p_value, other)
            if cp is None:
                continue
            second = name[length + 1 + cp:]
            if second[length:length + 1] == b"\n" and second[:length] == name[:length]:
                return name[:length]
    return None


def _parse_mode(text: bytes, where: str) -> int:
    m = _MODE_RE.match(text)
    if not m or m.end() >= len(text) or not _isspace(text[m.end()]):
        raise PatchFormatError(f"{where}: invalid mode {_show(text)!r}.")
    return int(m.group(1), 8)


def fragment_header(line: bytes) -> tuple[int, int, int, int] | None:
    """git's ``parse_fragment_header``: counts default to 1; the line must end in a newline."""
    if not line.endswith(b"\n"):
        return None
    m = _HUNK_HEADER_RE.match(line)
    if not m:
        return None
    a, b, c, d = m.groups()
    return int(a), 1 if b is None else int(b), int(c), 1 if d is None else int(d)


def _inflate(data: bytes, size: int) -> bytes | None:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size + 1)
    except zlib.error:
        return None
    return out if d.eof and len(out) == size else None


class _Reader:
    """One `git apply` reading one patch file (apply.c ``apply_patch`` → ``parse_chunk``)."""

    def __init__(self, data: bytes, origin: str, first_line: int) -> None:
        self.lines = io.BytesIO(data).readlines()
        self.n = len(self.lines)
        self.ends = list(accumulate(len(x) for x in self.lines))  # byte offset after each line
        self.total = len(data)
        self.origin = origin
        self.first_line = first_line
        self.p_value = 1
        self.p_value_known = False

    def at(self, i: int) -> str:
        return f"{self.origin}:{self.first_line + i}"

    def fail(self, i: int, message: str, hint: str | None = None) -> PatchFormatError:
        return PatchFormatError(f"{self.at(i)}: {message}", hint=hint)

    def remaining(self, i: int) -> int:
        return self.total - (self.ends[i - 1] if i else 0)

    # -- file headers ------------------------------------------------------------------------

    def find_header(self, i: int, sec: _Section) -> tuple[int, int] | None:
        sec.is_rename = sec.is_copy = 0
        sec.is_new = sec.is_delete = -1
        sec.old_mode = sec.new_mode = 0
        sec.old_name = sec.new_name = None
        lines = self.lines
        while i < self.n:
            line = lines[i]
            ln = len(line)
            if ln < 6:
                i += 1
                continue
            if line.startswith(b"@@ -"):
                if fragment_header(line) is not None:
                    raise self.fail(i, "patch fragment without header: "
                                    f"{_show(line)!r} (a hunk with no "
                                    "`diff --git` or `---`/`+++` lines before it).")
                i += 1
                continue
            if self.remaining(i) < ln + 6:
                break
            if line.startswith(b"diff --git "):
                end = self.parse_git_header(i, sec)
                if end <= i + 1:
                    i += 1
                    continue
                sec.line_no = i
                return i, end
            if not line.startswith(b"--- ") or not lines[i + 1].startswith(b"+++ "):
                i += 1
                continue
            nextlen = len(lines[i + 1])
            if self.remaining(i) < nextlen + 14 or i + 2 >= self.n or not lines[i + 2].startswith(b"@@ -"):
                i += 1
                continue
            self.parse_traditional(i, sec)
            sec.line_no = i
            return i, i + 2
        return None

    def guess_p_value(self, nameline: bytes) -> int:
        if _is_dev_null(nameline):
            return -1
        name = _find_name_traditional(nameline, None, 0)
        if name is None:
            return -1
        return 0 if b"/" not in name else -1

    def parse_traditional(self, i: int, sec: _Section) -> None:
        first, second = self.lines[i][4:], self.lines[i + 1][4:]
        if not self.p_value_known:
            p, q = self.guess_p_value(first), self.guess_p_value(second)
            if p < 0:
                p = q
            if 0 <= p == q:
                self.p_value, self.p_value_known = p, True
        if _is_dev_null(first):
            sec.is_new, sec.is_delete = 1, 0
            name = sec.new_name = _find_name_traditional(second, None, self.p_value)
        elif _is_dev_null(second):
            sec.is_new, sec.is_delete = 0, 1
            name = sec.old_name = _find_name_traditional(first, None, self.p_value)
        else:
            first_name = _find_name_traditional(first, None, self.p_value)
            name = _find_name_traditional(second, first_name, self.p_value)
            if _has_epoch_timestamp(first):
                sec.is_new, sec.is_delete, sec.new_name = 1, 0, name
            elif _has_epoch_timestamp(second):
                sec.is_new, sec.is_delete, sec.old_name = 0, 1, name
            else:
                sec.old_name = sec.new_name = name
        if name is None:
            raise self.fail(i, "unable to find the file name in the ---/+++ lines.")

    def parse_git_header(self, i: int, sec: _Section) -> int:
        """apply.c ``parse_git_diff_header``: the index of the first line after the header."""
        sec.is_new = sec.is_delete = 0
        sec.def_name = _git_header_name(self.p_value, self.lines[i])
        sec.extension_line = 0
        j = i + 1
        while j < self.n:
            line = self.lines[j]
            if not line.endswith(b"\n"):
                break
            if self.header_line(j, line, sec):
                break
            j += 1
        if sec.old_name is None and sec.new_name is None:
            if sec.def_name is None:
                raise self.fail(j, f"git diff header lacks filename information when removing {self.p_value} "
                                "leading pathname component(s).")
            sec.old_name = sec.new_name = sec.def_name
        if (sec.new_name is None and not sec.is_delete) or (sec.old_name is None and not sec.is_new):
            raise self.fail(j, "git diff header lacks filename information.")
        return j

    def header_line(self, j: int, line: bytes, sec: _Section) -> bool:
        """One extended header line; True when it ends the header (git's ``optable``)."""
        where = self.at(j)
        p = self.p_value
        if line.startswith(b"@@ -"):
            return True
        if line.startswith(b"--- "):
            self.verify_name(j, line[4:], sec.is_new, "old", sec)
        elif line.startswith(b"+++ "):
            self.verify_name(j, line[4:], sec.is_delete, "new", sec)
        elif line.startswith(b"old mode "):
            sec.old_mode = _parse_mode(line[9:], where)
        elif line.startswith(b"new mode "):
            sec.new_mode = _parse_mode(line[9:], where)
        elif line.startswith(b"deleted file mode "):
            sec.is_delete = 1
            sec.old_name = sec.def_name
            sec.old_mode = _parse_mode(line[18:], where)
        elif line.startswith(b"new file mode "):
            sec.is_new = 1
            sec.new_name = sec.def_name
            sec.new_mode = _parse_mode(line[14:], where)
        elif line.startswith((b"copy from ", b"copy to ")):
            sec.is_copy = 1
            name = _find_name(line[line.index(b" ", 5) + 1:], None, p - 1 if p else 0, 0)
            if line.startswith(b"copy from "):
                sec.old_name = name
            else:
                sec.new_name = name
        elif line.startswith((b"rename old ", b"rename from ", b"rename new ", b"rename to ")):
            sec.is_rename = 1
            name = _find_name(line[line.index(b" ", 7) + 1:], None, p - 1 if p else 0, 0)
            if line.startswith((b"rename old ", b"rename from ")):
                sec.old_name = name
            else:
                sec.new_name = name
        elif line.startswith((b"similarity index ", b"dissimilarity index ")):
            pass
        elif line.startswith(b"index "):
            self.index_line(line[6:], where, sec)
        else:
            return True
        extensions = sum(x == 1 for x in (sec.is_delete, sec.is_new, sec.is_rename, sec.is_copy))
        if extensions > 1:
            raise self.fail(j, f"inconsistent header lines {self.first_line + sec.extension_line} and "
                            f"{self.first_line + j} (a section cannot be two of new, deleted, renamed, copied).")
        if extensions and not sec.extension_line:
            sec.extension_line = j
        return False

    def verify_name(self, j: int, text: bytes, isnull: int, side: str, sec: _Section) -> None:
        """git's ``gitdiff_verify_name``: ---/+++ must agree with what the header already said."""
        current = sec.old_name if side == "old" else sec.new_name
        if current is None and not isnull:
            name = _find_name(text, None, self.p_value, 2)
        elif current is not None:
            if isnull:
                raise self.fail(j, f"bad git diff: expected /dev/null, got {current.decode('latin-1')!r}.")
            another = _find_name(text, None, self.p_value, 2)
            if another != current:
                raise self.fail(j, f"bad git diff: inconsistent {side} file name "
                                f"({(another or b'').decode('latin-1')!r} after {current.decode('latin-1')!r}).")
            return
        else:
            if not _is_dev_null(text):
                raise self.fail(j, "bad git diff: expected /dev/null.")
            return
        if side == "old":
            sec.old_name = name
        else:
            sec.new_name = name

    @staticmethod
    def index_line(text: bytes, where: str, sec: _Section) -> None:
        """``index <old>..<new>[ <mode>]``: the mode is the *old* mode (git only warns when the
        file's mode differs); a malformed line is ignored, as git does."""
        dot = text.find(b".")
        if dot < 0 or text[dot + 1:dot + 2] != b"." or dot > 40:
            return
        old = text[:dot]
        rest = text[dot + 2:]
        nl = rest.find(b"\n")
        sp = rest.find(b" ")
        end = nl if nl >= 0 else len(rest)
        if 0 <= sp < end:
            end = sp
        if end > 40:
            return
        sec.old_oid, sec.new_oid = old, rest[:end]
        if rest[end:end + 1] == b" ":
            sec.old_mode = _parse_mode(rest[end + 1:], where)

    # -- hunks -------------------------------------------------------------------------------

    def parse_fragment(self, i: int) -> tuple[Hunk, int]:
        """apply.c ``parse_fragment`` + the pre/post images of ``apply_one_fragment``."""
        lines = self.lines
        header_line = lines[i]
        counts = fragment_header(header_line)
        header = header_line.rstrip(b"\r\n").decode("latin-1")
        if counts is None:
            raise self.fail(i, f"corrupt patch: malformed hunk header {header!r}.")
        oldpos, oldlines, newpos, newlines = counts
        need_old, need_new = oldlines, newlines
        lead = trail = 0
        added = deleted = 0
        j = i + 1
        n = self.n
        while j < n and (need_old or need_new):
            line = lines[j]
            if not line.endswith(b"\n"):
                raise self.fail(j, f"corrupt patch: hunk {header} ends in a line without a newline "
                                "(the patch file is cut short?).")
            c = line[0]
            if c == 0x20 or c == 0x0A:
                need_old -= 1
                need_new -= 1
                if not deleted and not added:
                    lead += 1
                trail += 1
            elif c == 0x2D:
                deleted += 1
                need_old -= 1
                trail = 0
            elif c == 0x2B:
                added += 1
                need_new -= 1
                trail = 0
            elif c == 0x5C:
                if len(line) < 12 or not line.startswith(b"\\ "):
                    raise self.fail(j, f"corrupt patch: {line[:60]!r} in hunk {header}.")
            else:
                raise self.fail(j, f"corrupt patch: expected a hunk line (Hunk diff line expected: ' ', '-', "
                                f"'+' or '\\'), found {line[:60]!r} in hunk {header}.")
            j += 1
        if need_old or need_new:
            if need_old < 0 or need_new < 0:
                raise self.fail(j - 1, f"corrupt patch: hunk {header} has more lines than its header counts.")
            raise self.fail(i, f"corrupt patch: hunk {header} is shorter than expected from its header "
                            f"({need_old} old and {need_new} new line(s) missing; truncated?).")
        if not added and not deleted:
            raise self.fail(i, f"corrupt patch: hunk {header} changes nothing.")
        end = j
        if j < n and self.remaining(j) > 12 and lines[j].startswith(b"\\ "):
            end = j + 1
        old, new = _images(lines, i + 1, end)
        return Hunk(header, oldpos, oldlines, newpos, newlines, old, new, lead, trail,
                    self.first_line + i, oldlines - deleted), end

    def parse_binary_hunk(self, i: int) -> tuple[BinaryHunk | None, int]:
        line = self.lines[i] if i < self.n else b""
        if line.startswith(b"delta "):
            method, size_text = "delta", line[6:]
        elif line.startswith(b"literal "):
            method, size_text = "literal", line[8:]
        else:
            return None, i
        m = re.match(rb"\s*(\d+)", size_text)
        size = int(m.group(1)) if m else 0
        j = i + 1
        chunks = []
        while True:
            data = self.lines[j] if j < self.n else b""
            if len(data) == 1:
                j += 1
                break
            llen = len(data)
            corrupt = self.fail(j, f"corrupt binary patch: {data[:60]!r}.")
            if llen < 7 or (llen - 2) % 5 or not data.endswith(b"\n"):
                raise corrupt
            max_len = (llen - 2) // 5 * 4
            c = data[0]
            if 0x41 <= c <= 0x5A:
                byte_len = c - 0x41 + 1
            elif 0x61 <= c <= 0x7A:
                byte_len = c - 0x61 + 27
            else:
                raise corrupt
            if max_len < byte_len or byte_len <= max_len - 4:
                raise corrupt
            try:
                chunks.append(base64.b85decode(data[1:-1])[:byte_len])
            except ValueError:
                raise corrupt from None
            j += 1
        out = _inflate(b"".join(chunks), size)
        if out is None:
            raise self.fail(i, f"corrupt binary patch: the {method} data does not inflate to {size} bytes.")
        return BinaryHunk(method, out), j

    # -- one section -------------------------------------------------------------------------

    def parse_chunk(self, i: int) -> tuple[FileDiff | None, int]:
        sec = _Section()
        found = self.find_header(i, sec)
        if found is None:
            return None, self.n
        start, j = found
        hunks: list[Hunk] = []
        oldlines = newlines = 0
        while j < self.n and self.remaining(j) > 4 and self.lines[j].startswith(b"@@ -"):
            hunk, j = self.parse_fragment(j)
            hunks.append(hunk)
            oldlines += hunk.old_len
            newlines += hunk.new_len
            # Stricter than git (which skips them as garbage): a hunk line right after a hunk
            # whose counts are complete means the counts are wrong and part of the change
            # would be lost.
            if j < self.n and _stray(self.lines[j]):
                raise self.fail(j, f"line {self.lines[j][:60]!r} follows hunk {hunk.header} although the "
                                "hunk's line counts are complete (wrong counts in the @@ line?).",
                                hint="regenerate the patch (git format-patch / git diff) instead of editing hunks by hand")
        if sec.is_new < 0 and (oldlines or len(hunks) > 1):
            sec.is_new = 0
        if sec.is_delete < 0 and (newlines or len(hunks) > 1):
            sec.is_delete = 0
        name = (sec.new_name or sec.old_name or b"").decode("latin-1")
        if sec.is_new > 0 and oldlines:
            raise self.fail(start, f"new file {name} depends on old contents.")
        if sec.is_delete > 0 and newlines:
            raise self.fail(start, f"deleted file {name} still has contents.")
        if sec.is_new > 0 and sec.old_name is not None:
            # A `diff --git` line without a header, then a traditional creation: git keeps the
            # first attempt's old name, and its check_preimage then aborts on an assertion.
            raise self.fail(start, f"the section creates {name} but also names an old file "
                            "(an incomplete `diff --git` header before it?); git apply aborts on this.")
        binary: tuple[BinaryHunk, ...] = ()
        is_binary = False
        if not hunks:
            line = self.lines[j] if j < self.n else b""
            if line == b"GIT binary patch\n":
                forward, k = self.parse_binary_hunk(j + 1)
                if forward is None:
                    raise self.fail(j + 1, "unrecognized binary patch.")
                reverse, k = self.parse_binary_hunk(k)
                binary = (forward,) if reverse is None else (forward, reverse)
                is_binary = True
                j = k
            elif line.endswith(b" differ\n") and line.startswith((b"Binary files ", b"Files ")):
                is_binary = True
                j += 1
            metadata = (sec.is_rename > 0 or sec.is_copy > 0 or sec.is_new > 0 or sec.is_delete != 0
                        or (sec.old_mode and sec.new_mode and sec.old_mode != sec.new_mode))
            if not is_binary and not metadata:
                raise self.fail(j if j < self.n else start, "patch with only garbage: a file section without any "
                                "change (cut short after its header?).")
        fd = FileDiff(
            _name(sec.old_name), _name(sec.new_name),
            f"{sec.old_mode:06o}" if sec.old_mode else None, f"{sec.new_mode:06o}" if sec.new_mode else None,
            hunks, self.first_line + start,
            is_new=None if sec.is_new < 0 else bool(sec.is_new),
            is_delete=None if sec.is_delete < 0 else bool(sec.is_delete),
            is_rename=bool(sec.is_rename), is_copy=bool(sec.is_copy), is_binary=is_binary, binary=binary,
            old_oid=sec.old_oid.decode("latin-1"), new_oid=sec.new_oid.decode("latin-1"),
        )
        if fd.is_new:
            fd.old_path = None
        if fd.is_delete:
            fd.new_path = None
        return fd, j


def _name(raw: bytes | None) -> str | None:
    import os

    return None if raw is None else os.fsdecode(raw)


def _stray(line: bytes) -> bool:
    c = line[:1]
    if c in (b"+", b" "):
        return True
    # "--- a/x" starts the next file of a plain diff; "-- " is format-patch's signature line.
    return c == b"-" and not line.startswith(b"--- ") and line not in (b"-- \n", b"--\n")


def _images(lines: list[bytes], start: int, end: int) -> tuple[list[bytes], list[bytes]]:
    """Pre- and post-image lines of a hunk body, as apply.c ``apply_one_fragment`` makes them:
    a line followed by a ``\\`` line loses its newline; an empty line is a blank context line,
    and nothing at all when a ``\\`` line follows it."""
    body = lines[start:end]
    if not any(line[0] in (0x5C, 0x0A) for line in body):  # the common case, at list speed
        return [x[1:] for x in body if x[0] != 0x2B], [x[1:] for x in body if x[0] != 0x2D]
    old: list[bytes] = []
    new: list[bytes] = []
    for k, line in enumerate(body):
        c = line[0]
        chomp = k + 1 < len(body) and body[k + 1][:1] == b"\\"
        if c == 0x0A:
            if chomp:
                continue
            old.append(b"\n")
            new.append(b"\n")
            continue
        if c == 0x5C:
            continue
        text = line[1:-1] if chomp else line[1:]
        if c != 0x2B:
            old.append(text)
        if c != 0x2D:
            new.append(text)
    return old, new


def read_sections(data: bytes, *, origin: str = "<diff>", first_line: int = 1) -> list[FileDiff]:
    """Every file section of a patch, in order, as `git apply` reads them. Garbage between and
    after sections (a commit message, a ``-- `` signature) is skipped as git skips it."""
    reader = _Reader(data, origin, first_line)
    out: list[FileDiff] = []
    i = 0
    while i < reader.n:
        fd, i = reader.parse_chunk(i)
        if fd is None:
            break
        out.append(fd)
    if not out:
        raise PatchFormatError(f"{origin}:{first_line}: no diff found (expected `diff --git` or `---`/`+++` "
                               "lines followed by a hunk); git apply says: no valid patches in input.")
    return out
