"""Unified diffs as data, and applying their hunks to bytes in memory, as `git apply` does.

Nothing here touches a tree or git: ``parse_diff`` turns diff bytes into ``FileDiff`` sections
(read by ``pipeline.patches.gitdiff``, which follows git's own reader) and adds gopatch's safety
refusals; ``apply_file`` turns the old bytes of one file into its new bytes (or raises
``Misfit`` saying where and why). ``pipeline.patches.operations`` does the tree and git work around it.

Hunk placement follows apply.c's ``apply_one_fragment``, ``find_pos`` and ``match_fragment``:
- a hunk is first tried where its *new* start line says (``newpos - 1``): earlier hunks of the
  same file have already changed the image, so each hunk starts from its own header, not from
  the offset of the one before;
- then one line forwards, one backwards, two forwards... (forwards wins a tie);
- a hunk whose old start is 0 or 1 must match at the beginning of the file, and one without
  trailing context must match at its end;
- lines that an earlier hunk wrote are never matched again (no overlapping hunks);
- context is reduced only when asked (``fuzz``, like `git apply -C`): the larger side first,
  both when equal, as apply.c does.
The match itself is byte for byte; a CR or a non-UTF-8 byte is just a byte.
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import PatchFormatError
from . import binpatch
from .gitdiff import BinaryHunk, FileDiff, Hunk, read_sections

__all__ = ["Applied", "BinaryHunk", "FileDiff", "Hunk", "Misfit", "apply_file", "parse_diff", "safe_relpath",
           "show_line", "split_lines", "unquote_path"]

DEV_NULL = "/dev/null"
_OCTAL_RE = re.compile(r"\\([0-7]{3})")
_C_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
# Modes git writes for a regular file. Symlinks (120000) and submodules (160000) are refused.
REGULAR_MODES = ("100644", "100755", "100664")
_S_IFMT, _S_IFREG = 0o170000, 0o100000
NAME_MAX = 255  # bytes in one path component (Linux and macOS)
_WS = b" \t\n\v\f\r"
# Code points HFS+ ignores in names (git's is_hfs_dotgit): ".g\u200cit" is ".git" there.
_HFS_IGNORED = dict.fromkeys([0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
                              0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF])


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
# Parsing, and the refusals that go further than git
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


def _is_dotgit_alias(part: str) -> bool:
    """``.git`` as any file system may spell it: any case; NTFS's short name ``git~1``; NTFS's
    trailing dots and spaces and ``:stream`` suffix (git's is_ntfs_dotgit); HFS+'s ignored
    code points (git's is_hfs_dotgit). git itself refuses the NTFS forms (core.protectNTFS)."""
    name = part.split(":", 1)[0].split("\\", 1)[0].rstrip(". ").lower()
    if name in (".git", "git~1"):
        return True
    folded = unicodedata.normalize("NFC", part.translate(_HFS_IGNORED)).lower()
    return folded.rstrip(". ") == ".git"


def safe_relpath(path: str, *, where: str) -> str:
    """Refuse anything that could leave the tree, reach into .git, or that git calls invalid."""
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
        elif any(_is_dotgit_alias(p) for p in parts):
            problem = "points into .git (or a name a file system treats as .git)"
        elif any(len(os.fsencode(p)) > NAME_MAX for p in parts):
            problem = f"has a component longer than {NAME_MAX} bytes"
    if problem:
        raise PatchFormatError(f"{where}: refusing path {path!r}: it {problem}.",
                               hint="patch paths must be relative to the GOROOT root (src/runtime/proc.go)")
    return path


def _check_mode(mode: str | None, path: str, where: str) -> None:
    if mode is None:
        return
    kind = int(mode, 8) & _S_IFMT
    if kind not in (0, _S_IFREG):
        what = {0o120000: "a symlink", 0o160000: "a submodule (gitlink)", 0o040000: "a directory"}.get(
            kind, f"of mode {mode}")
        raise PatchFormatError(f"{where}: {path} is {what}; gopatch only patches regular files.")


def parse_diff(data: bytes, *, origin: str = "<diff>", first_line: int = 1) -> list[FileDiff]:
    """Parse a patch as `git apply` reads it, then refuse what gopatch never applies.

    ``origin`` and ``first_line`` (the line of ``data``'s start in its patch file) make every
    error name the file and line. Raises PatchFormatError for anything malformed or refused.
    """
    files = read_sections(data, origin=origin, first_line=first_line)
    for fd in files:
        where = f"{origin}:{fd.line_no}"
        for p in (fd.old_path, fd.new_path):
            if p is not None:
                safe_relpath(p, where=where)
        # A mode counts only for a side that exists (git ignores an index line's mode on a new file).
        if fd.old_path is not None:
            _check_mode(fd.old_mode, fd.old_path, where)
        if fd.new_path is not None:
            _check_mode(fd.new_mode, fd.new_path, where)
    return files


# --------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------


def split_lines(data: bytes) -> list[bytes]:
    """Lines split on b"\\n" only: a CR inside a line stays inside it."""
    return io.BytesIO(data).readlines()


def apply_file(fd: FileDiff, old: bytes | None, *, fuzz: int = 0, allow_offset: bool = True) -> Applied:
    """New bytes of ``fd``'s file given its old bytes (None = the file does not exist).

    ``fuzz`` > 0 lets a hunk drop up to that many context lines at each edge when it fits
    nowhere whole (git apply -C); ``allow_offset=False`` tries each hunk only where its header
    says (gopatch's "does it fit exactly?" question, which git has no option for).
    """
    path = fd.path
    if fd.old_path is None:
        if old is not None:
            raise Misfit(path, "creates a file that already exists")
        old = b""
    elif old is None:
        raise Misfit(fd.old_path, "changes a file that does not exist")
    if fd.is_binary:
        return Applied(_apply_binary(fd, old))
    img = split_lines(old)
    flags = bytearray(len(img))  # 1 = written by an earlier hunk: never matched again
    offsets: list[tuple[str, int]] = []
    fuzzed: list[tuple[str, int]] = []
    grown = -len(img)  # + len(img): how many lines the hunks so far have added
    for h in fd.hunks:
        if h.context == 0 and h.old_start > 1:
            _check_zero_context(path, h, img, grown + len(img))
        placed = _place(img, flags, h, fuzz=fuzz, allow_offset=allow_offset)
        if placed is None:
            if fd.new_path is None:
                lines = len(img)
                if lines != len(h.old):
                    raise Misfit(path, f"deletes the file, but {abs(lines - len(h.old))} line(s) would remain "
                                 "or are missing (the file differs from what the patch deletes)", hunk=h)
            at = _closest(img, h, 0)
            actual = tuple(img[at:at + len(h.old)]) if at is not None else ()
            raise Misfit(path, "does not apply", hunk=h, at=at, actual=actual)
        at, pre, post, pos, dropped = placed
        if at != pos:
            offsets.append((h.header, at - pos))
        if dropped:
            fuzzed.append((h.header, dropped))
        img[at:at + len(pre)] = post
        flags[at:at + len(pre)] = b"\x01" * len(post)
    data = b"".join(img)
    if fd.new_path is None and data:
        raise Misfit(path, f"deletes the file, but {len(split_lines(data))} line(s) would remain")
    return Applied(data, tuple(offsets), tuple(fuzzed))


def _check_zero_context(path: str, h: Hunk, img: list[bytes], grown: int) -> None:
    """A hunk without any context line (`git diff -U0`) that does not start at line 1 has no
    trailing context, so `git apply` must match it at the end of the file. That is right only
    when the change really is at the end; anywhere else git would put it there without a word
    (an insertion matches anywhere; removed lines may also stand at the end). gopatch applies
    it where git does when that is where the header says, and refuses otherwise. A hunk with
    context somewhere inside is placed by its content, as any hunk at an offset."""
    want = _expected(h) + grown
    at = len(img) - len(h.old)
    if at != want:
        raise Misfit(path, f"has no context lines and does not change the end of the file; git apply "
                     f"would put it at line {at + 1} instead of line {want + 1}, so gopatch refuses it "
                     "(regenerate the patch with context: git diff -U3 / git format-patch)", hunk=h)


def _apply_binary(fd: FileDiff, old: bytes) -> bytes:
    """apply.c ``apply_binary``: the ids on the index line must be complete; the old bytes must
    be the ones the patch was made from; the result must be the blob the patch names."""
    name = fd.old_path or fd.new_path or ""
    full = re.compile(r"^[0-9a-f]{40}$")
    if not (full.match(fd.old_oid) and full.match(fd.new_oid)):
        raise Misfit(name, "is a binary patch without the full index line; regenerate it with "
                     "`git diff --binary` (or `git format-patch --binary`)")
    if fd.old_path is not None:
        have = binpatch.blob_id(old)
        if have != fd.old_oid:
            raise Misfit(name, f"is a binary patch for blob {fd.old_oid[:12]}, but the file is {have[:12]}")
    elif old:
        raise Misfit(name, "is a binary patch that creates the file, but it is not empty")
    if fd.new_oid == binpatch.NULL_OID:
        return b""
    if not fd.binary:
        raise Misfit(name, "is a binary change without its data (`Binary files ... differ`, or a binary "
                     "patch without a reverse hunk); regenerate it with `git diff --binary`")
    hunk = fd.binary[0]
    if hunk.method == "literal":
        result = hunk.data
    else:
        try:
            result = binpatch.apply_delta(old, hunk.data)
        except binpatch.DeltaError as exc:
            raise Misfit(name, f"binary delta does not apply: {exc}") from None
    if binpatch.blob_id(result) != fd.new_oid:
        raise Misfit(name, f"binary patch creates an incorrect result (expected blob {fd.new_oid[:12]})")
    return result


def _place(img: list[bytes], flags: bytearray, h: Hunk, *, fuzz: int, allow_offset: bool):
    """apply.c ``apply_one_fragment``'s search: (line, pre, post, wanted line, context dropped)
    or None."""
    pre, post = h.old, h.new
    leading, trailing = h.lead, h.trail
    # `git apply -C<n>`: at least n context lines must match; gopatch's fuzz F drops up to F.
    p_context = max(h.lead, h.trail) - fuzz if fuzz > 0 else None
    match_beginning = h.old_start in (0, 1)
    match_end = trailing == 0
    pos = h.new_start - 1 if h.new_start else 0
    while True:
        at = _find_pos(img, flags, pre, pos, match_beginning, match_end, allow_offset)
        if at is not None:
            return at, pre, post, pos, max(h.lead - leading, h.trail - trailing)
        if p_context is None or (leading <= p_context and trailing <= p_context):
            return None
        if match_beginning or match_end:
            match_beginning = match_end = False
            continue
        if leading >= trailing:
            pre, post = pre[1:], post[1:]
            pos -= 1
            leading -= 1
        if trailing > leading:
            pre, post = pre[:-1], post[:-1]
            trailing -= 1


def _find_pos(img: list[bytes], flags: bytearray, pre: list[bytes], line: int, match_beginning: bool,
              match_end: bool, allow_offset: bool) -> int | None:
    """apply.c ``find_pos``: the line itself, then one forwards, one backwards, two forwards..."""
    nr, n = len(img), len(pre)
    if match_beginning:
        line = 0
    elif match_end:
        line = nr - n
    if line < 0 or line > nr:  # git compares as unsigned: a negative line is past the end too
        line = nr
    if match_beginning or match_end or not allow_offset:
        # Only one line can satisfy an anchored hunk (git walks the whole file to find it).
        if match_beginning and match_end:
            return 0 if n == nr and _match(img, flags, pre, 0, True) else None
        if match_end:
            at = nr - n
            return at if at >= 0 and _match(img, flags, pre, at, True) else None
        if match_beginning:
            return 0 if _match(img, flags, pre, 0, False) else None
        return line if _match(img, flags, pre, line, False) else None
    first = pre[0] if n and pre[0].endswith(b"\n") else None
    hi = nr - n
    for d in range(0, max(line, nr - line) + 1):
        for at in ((line,) if d == 0 else (line + d, line - d)):
            if 0 <= at <= hi and (first is None or img[at] == first) and _match(img, flags, pre, at, False):
                return at
    return None


def _match(img: list[bytes], flags: bytearray, pre: list[bytes], cur: int, match_end: bool) -> bool:
    """apply.c ``match_fragment`` without whitespace options: the preimage's bytes must be the
    image's bytes at ``cur``. (git compares the bytes of the whole preimage, so a last preimage
    line without its newline also matches a line that has one, unless the hunk must end the file.)"""
    n = len(pre)
    if cur + n > len(img) or (match_end and cur + n != len(img)):
        return False
    if not n:
        return True
    if 1 in flags[cur:cur + n]:
        return False
    if all(x.endswith(b"\n") for x in pre[:-1]):
        if img[cur:cur + n - 1] != pre[:-1]:
            return False
        have, want = img[cur + n - 1], pre[-1]
        if have == want:
            return True
        return (not match_end and not want.endswith(b"\n") and have.startswith(want)
                and all(c in _WS for c in have[len(want):]))
    # A newline missing in the middle of the preimage (a "\\ No newline" line inside a hunk):
    # compare as git does, the bytes of the preimage against the bytes from ``cur`` on.
    whole = b"".join(pre)
    rest = b"".join(img[cur:])
    if match_end and len(whole) != len(rest):
        return False
    return rest.startswith(whole) and all(_hash(a) == _hash(b) for a, b in zip(pre, img[cur:cur + n], strict=True))


def _hash(line: bytes) -> int:
    """apply.c ``hash_line``: white space does not count; kept to 24 bits."""
    h = 0
    for c in line:
        if c not in _WS:
            h = (h * 3 + c) & 0xFFFFFFFF
    return h & 0xFFFFFF


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


def _expected(h: Hunk) -> int:
    """0-based index where the hunk's old lines start according to its header."""
    if h.old_len == 0:
        return h.old_start  # "-N,0" means: insert after line N
    return max(h.old_start - 1, 0)
