"""The patch series: the ``series`` file and the patch files it names (see patches/README.md).

A patch file is git format-patch style: mail-like headers (From, Subject), a description whose
last paragraph holds ``Key: value`` trailers, a line ``---``, then the diff. This module only
reads and writes that text; applying the diff is ``pipeline.patches.operations``' job. Everything is bytes
until it is known to be header text, because a diff of Go's source is not always UTF-8.
"""

from __future__ import annotations

import email.errors
import email.header
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, PatchFormatError
from .gitdiff import fragment_header

SERIES_FILE = "series"
PATCH_SUFFIX = ".patch"
ZERO_FROM = b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
# The trailer gopatch adds to each commit it makes, so status/revert/extract can tell which
# series patch a commit came from without comparing diffs.
NAME_TRAILER = "Gopatch-Patch"
NAME_TRAILER_RE = re.compile(rf"^{NAME_TRAILER}:\s*(\S+)\s*$", re.MULTILINE)


def trailer_name(message: str) -> str | None:
    """The series patch a commit carries, from its last ``Gopatch-Patch:`` trailer: the one
    reading that status, build and release share."""
    names = NAME_TRAILER_RE.findall(message)
    return names[-1] if names else None
KNOWN_TRAILERS = {"touches": "Touches", "probe": "Probe", "helpers": "Helpers", "api": "API"}
_TRAILER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$")
_PATCH_PREFIX_RE = re.compile(r"^\[PATCH[^\]]*\]\s*", re.IGNORECASE)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DIFF_START = (b"diff --git ", b"--- ")


@dataclass(frozen=True, kw_only=True)
class Patch:
    name: str  # file name without .patch: what `gopatch apply NAME` takes
    path: Path
    subject: str
    description: str  # the body without its trailer paragraph
    author: str  # "Name <email>" from the From: header ("" when absent)
    touches: tuple[str, ...]
    helpers: tuple[str, ...]
    api: tuple[str, ...]
    probe: str | None  # as written: relative to the series directory or to the patches directory (probe_dir)
    trailers: tuple[tuple[str, str], ...]  # every trailer in order, known ones included
    diff: bytes
    diff_line: int  # 1-based line of the diff's first line in the file (for error messages)
    probe_line: int = 0  # 1-based line of the Probe: trailer (0: none)

    @property
    def message(self) -> str:
        """The commit message gopatch records: subject, description, trailers, name trailer."""
        parts = [self.subject]
        if self.description:
            parts.append(self.description)
        trailers = [f"{k}: {v}" for k, v in self.trailers if k != NAME_TRAILER]
        trailers.append(f"{NAME_TRAILER}: {self.name}")
        parts.append("\n".join(trailers))
        return "\n\n".join(parts) + "\n"


def patch_name(path: Path) -> str:
    name = path.name
    for suffix in (PATCH_SUFFIX, ".diff"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def parse_patch_file(path: Path, *, strict: bool = True) -> Patch:
    """Read one patch file. ``strict=False`` (for `apply --file`) also takes a bare diff with no
    header at all, and a header without Touches:."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PatchFormatError(f"{path}: cannot read the patch file: {exc.strerror}.") from None
    return parse_patch_bytes(data, path=path, name=patch_name(path), strict=strict)


def parse_patch_bytes(data: bytes, *, path: Path, name: str, strict: bool = True) -> Patch:
    # Only the lines up to the diff are split here: the diff itself may be tens of megabytes.
    lines: list[bytes] = []
    starts: list[int] = []
    pos = 0
    sep = diff_at = None
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        i = len(lines)
        lines.append(line)
        starts.append(pos)
        pos = end
        if sep is None:
            # The header ends at the first line that is exactly "---", or where the diff starts.
            if line.rstrip(b"\r\n") == b"---":
                sep = i
                continue
            if line.startswith(b"diff --git ") or (line.startswith(b"--- ") and data.startswith(b"+++ ", end)):
                sep = i - 1
        if sep is not None and line.startswith(_DIFF_START):
            diff_at = i
            break
    if sep is None:
        raise PatchFormatError(f"{path}:{len(lines) or 1}: no diff found: a patch needs a line `---` and "
                               "then the diff (`diff --git a/... b/...`).")
    if diff_at is None:
        raise PatchFormatError(f"{path}:{sep + 1}: the header ends here but no diff follows.")
    for i, line in enumerate(lines[:diff_at]):
        # git apply reads the whole file: a hunk header above the first file header is a
        # "patch fragment without header" there, so it must be here too.
        if len(line) >= 6 and fragment_header(line) is not None:
            shown = line.rstrip(b"\r\n")[:60].decode("utf-8", "replace")
            raise PatchFormatError(f"{path}:{i + 1}: patch fragment without header: a hunk line "
                                   f"{shown!r} before any "
                                   "`diff --git` or `---`/`+++` lines.")
    header = lines[: max(sep, 0)]
    diff = data[starts[diff_at]:]
    fields = _parse_header(header, path, strict=strict)
    subject = fields.get("subject")
    if subject is None:
        if strict:
            raise PatchFormatError(f"{path}:1: the Subject: header is missing.",
                                   hint="start the patch with `From: Name <mail>` and `Subject: pkg: what it does`")
        subject = f"Apply {path.name}"
    body, body_line = fields.get("body", ""), int(fields.get("body_line", 1) or 1)
    description, trailers = _split_trailers(body)
    known: dict[str, list[str]] = {k: [] for k in KNOWN_TRAILERS}
    for key, value in trailers:
        k = key.lower()
        if k in known:
            known[k].extend(v.strip() for v in value.split(",") if v.strip())
    if strict and not known["touches"]:
        raise PatchFormatError(
            f"{path}:{body_line}: the Touches: trailer is missing; it names the Go functions whose "
            "machine code the patch changes (Touches: runtime.handoffp).",
            hint="add it to the last paragraph of the description, before the `---` line",
        )
    for fn in known["touches"] + known["helpers"]:
        if any(c.isspace() for c in fn) or "." not in fn:
            raise PatchFormatError(f"{path}:{body_line}: {fn!r} is not a package-qualified Go function "
                                   "(runtime.handoffp, runtime.(*p).init).")
    probe = known["probe"][0] if known["probe"] else None
    probe_line = _trailer_line(header, "probe") if probe is not None else 0
    if probe is not None and (probe.startswith("/") or ".." in probe.split("/")):
        raise PatchFormatError(f"{path}:{probe_line or body_line}: Probe: {probe!r} must be a relative path "
                               "(probes/NAME: looked up in the series directory, then in the patches directory).")
    return Patch(
        name=name, path=path, subject=subject, description=description,
        author=fields.get("from", ""), touches=tuple(known["touches"]), helpers=tuple(known["helpers"]),
        api=tuple(known["api"]), probe=probe, trailers=tuple(trailers), diff=diff, diff_line=diff_at + 1,
        probe_line=probe_line,
    )


def _trailer_line(header: list[bytes], key: str) -> int:
    """1-based file line of the first ``key:`` trailer in the header's last paragraph (0: none)."""
    paragraphs: list[list[tuple[int, str]]] = [[]]
    for i, raw in enumerate(header, 1):
        text = raw.decode("utf-8", "replace").strip()
        if text:
            paragraphs[-1].append((i, text))
        elif paragraphs[-1]:
            paragraphs.append([])
    last = paragraphs[-1] or (paragraphs[-2] if len(paragraphs) > 1 else [])
    for n, text in last:
        m = _TRAILER_RE.match(text)
        if m and m.group(1).lower() == key:
            return n
    return 0


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


def probe_candidates(series_dir: Path, probe: str) -> tuple[Path, Path]:
    """Where a ``Probe:`` path is looked for, first match wins: the series directory (a release's
    own override, ``patches/go1.25/probes/NAME``), then the patches directory that holds the series
    (the copy every series shares, ``patches/probes/NAME``). A probe is the same program for every
    Go release it runs on, so it lives once; a release that needs a different one gets its own."""
    # abspath, not resolve(): the parent of "." must be "..", and a symlinked series directory
    # still finds the shared probes beside the link.
    series_dir = Path(os.path.abspath(series_dir))
    return series_dir / probe, series_dir.parent / probe


def find_probe(series_dir: Path, probe: str) -> Path | None:
    """The probe directory ``probe`` names from ``series_dir`` (absolute), or None."""
    return next((c for c in probe_candidates(series_dir, probe) if c.is_dir()), None)


def probe_dir(patch: Patch, series_dir: Path) -> Path | None:
    """The probe directory of ``patch`` (None when it declares no Probe:); a Probe: that names no
    directory is a malformed series, reported at the trailer's line."""
    if patch.probe is None:
        return None
    found = find_probe(series_dir, patch.probe)
    if found is None:
        local, shared = probe_candidates(series_dir, patch.probe)
        raise PatchFormatError(
            f"{patch.path}:{patch.probe_line or patch.diff_line}: Probe: {patch.probe} names no probe directory: "
            f"neither {local} (the series' own) nor {shared} (shared by every series) exists.",
            hint=f"add the probe to {shared.parent}/ (or to {local.parent}/ for this release only), "
                 "or fix the Probe: trailer")
    return found


def _parse_header(lines: list[bytes], path: Path, *, strict: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    key_line: dict[str, int] = {}
    i = 0
    if lines and lines[0].startswith(b"From ") and not lines[0].startswith(b"From: "):
        i = 1  # the mbox "From <hash> <date>" line carries nothing we keep
    current = None
    while i < len(lines):
        raw = lines[i]
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise PatchFormatError(f"{path}:{i + 1}: the header is not UTF-8 text.") from None
        if not text:
            i += 1
            break
        if text[0] in " \t" and current:  # a folded header line
            out[current] += " " + text.strip()
        else:
            key, colon, value = text.partition(":")
            if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key):
                if strict:
                    raise PatchFormatError(f"{path}:{i + 1}: malformed header line {text[:80]!r} "
                                           "(expected `Key: value`, then a blank line before the description).")
                break
            current = key.lower()
            out[current] = value.strip()
            key_line[current] = i + 1
        i += 1
    for key in ("subject", "from"):
        if key in out:
            try:
                out[key] = str(email.header.make_header(email.header.decode_header(out[key])))
            except (email.errors.HeaderParseError, ValueError, LookupError) as exc:
                # a broken RFC 2047 encoded word (=?charset?b?...?=), or an unknown charset
                raise PatchFormatError(f"{path}:{key_line[key]}: cannot decode the {key.title()}: header "
                                       f"({exc}).") from None
    if "subject" in out:
        out["subject"] = _PATCH_PREFIX_RE.sub("", out["subject"]).strip()
        if not out["subject"]:
            raise PatchFormatError(f"{path}:{key_line['subject']}: the Subject: header is empty.")
    for n, raw in enumerate(lines[i:], i + 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PatchFormatError(f"{path}:{n}: the description is not UTF-8 text (only the diff may hold "
                                   "other bytes).") from None
    body = b"".join(lines[i:]).decode("utf-8")
    out["body"] = body.replace("\r\n", "\n").strip("\n")
    out["body_line"] = str(i + 1)
    return out


def _split_trailers(body: str) -> tuple[str, list[tuple[str, str]]]:
    """The last paragraph is the trailer block when every line in it is `Key: value`."""
    paragraphs = body.rstrip().split("\n\n")
    last = paragraphs[-1].strip("\n")
    lines = [line for line in last.splitlines() if line.strip()]
    matches = [_TRAILER_RE.match(line) for line in lines]
    if not lines or not all(matches):
        return body.strip(), []
    trailers = [(m.group(1), m.group(2).strip()) for m in matches if m]
    trailers = [(KNOWN_TRAILERS.get(k.lower(), k), v) for k, v in trailers]
    return "\n\n".join(paragraphs[:-1]).strip(), trailers


# --------------------------------------------------------------------------------------------
# The series file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesEntry:
    file: str  # as written in the series file
    line: int


def read_series_entries(series_dir: Path) -> list[SeriesEntry]:
    series_file = Path(series_dir) / SERIES_FILE
    if not Path(series_dir).is_dir():
        raise ConfigError(f"the patch series directory {series_dir} does not exist.",
                          hint="set [patches] dir/series in build.cfg or pass --series DIR")
    try:
        data = series_file.read_bytes()
    except FileNotFoundError:
        raise PatchFormatError(f"{series_file}: missing; a series directory lists its patches, in order, "
                               "in a file named `series`.") from None
    except OSError as exc:
        raise PatchFormatError(f"{series_file}: cannot read it: {exc}.") from None
    entries = []
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PatchFormatError(f"{series_file}:{n}: not UTF-8 text.") from None
        word = line.split("#", 1)[0].strip()
        if word:
            entries.append(SeriesEntry(word, n))
    return entries


_RELEASE_RE = re.compile(r"^#\s*release\s*:\s*(.*?)\s*$", re.IGNORECASE)
_RELEASE_VALUE_RE = re.compile(r"^go\d+\.\d+(?:\.\d+)?$")


def series_release(series_dir: Path) -> str | None:
    """The Go release a series is meant for, pinned by a comment line ``# release: go1.27.3`` in
    its ``series`` file (None when there is none). The pin is what ``gopatch try`` takes as the
    vanilla distribution and what ``gopatch status --all-versions`` checks the series against.
    It is a comment, so everything that only reads the entries ignores it."""
    series_file = Path(series_dir) / SERIES_FILE
    try:
        text = series_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatchFormatError(f"{series_file}: cannot read it: {exc}.") from None
    found: tuple[str, int] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        m = _RELEASE_RE.match(line.strip())
        if not m:
            continue
        value = m.group(1)
        if not _RELEASE_VALUE_RE.match(value):
            raise PatchFormatError(f"{series_file}:{n}: {value!r} is not a Go release such as go1.27.3 "
                                   "(the `# release:` pin of the series).")
        if found is not None and found[0] != value:
            raise PatchFormatError(f"{series_file}:{n}: a second `# release:` pin ({value}); line {found[1]} "
                                   f"already pins {found[0]}.")
        found = found or (value, n)
    return found[0] if found else None


def load_series(series_dir: Path) -> tuple[Patch, ...]:
    """The patches of ``series_dir`` in the order of its ``series`` file.

    The order is the series file's and nothing else's: patches apply top to bottom, so a later
    patch may rely on an earlier one, and gopatch never sorts file names.
    """
    series_dir = Path(series_dir)
    series_file = series_dir / SERIES_FILE
    patches: list[Patch] = []
    seen: dict[str, int] = {}
    for entry in read_series_entries(series_dir):
        where = f"{series_file}:{entry.line}"
        if " " in entry.file or "/" in entry.file or not entry.file.endswith(PATCH_SUFFIX):
            raise PatchFormatError(f"{where}: {entry.file!r} is not a patch file name (NAME.patch, one per line).")
        name = patch_name(Path(entry.file))
        if not _NAME_RE.match(name):
            raise PatchFormatError(f"{where}: {name!r} is not a valid patch name (letters, digits, . _ + -).")
        if name in seen:
            raise PatchFormatError(f"{where}: patch {name!r} is listed twice (first on line {seen[name]}).")
        seen[name] = entry.line
        path = series_dir / entry.file
        if not path.is_file():
            raise PatchFormatError(f"{where}: {entry.file} does not exist in {series_dir}.")
        patches.append(parse_patch_file(path))
    return tuple(patches)


def select(patches: Sequence[Patch], names: Sequence[str], *, series_dir: Path) -> list[Patch]:
    """The named patches in series order; an unknown name is a usage error with a suggestion."""
    from difflib import get_close_matches

    from ..errors import UsageError

    by_name = {p.name: p for p in patches}
    for n in names:
        key = patch_name(Path(n))
        if key not in by_name:
            close = get_close_matches(key, list(by_name), n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"no patch named {n!r} in {series_dir / SERIES_FILE}{guess}; "
                             f"known: {', '.join(by_name) or 'none'}.")
    wanted = {patch_name(Path(n)) for n in names}
    return [p for p in patches if p.name in wanted]


def render_patch(*, author: str, subject: str, body: str, diff: bytes) -> bytes:
    """A patch file as `gopatch extract` writes it: nothing that changes from run to run (zero
    From hash, fixed date, no index lines, no diffstat, no signature)."""
    head = ZERO_FROM
    if author:
        head += f"From: {author}\n".encode()
    head += f"Subject: [PATCH] {subject}\n\n".encode()
    if body.strip():
        head += body.strip("\n").encode() + b"\n"
    return head + b"---\n" + diff


def slug(subject: str) -> str:
    """A file name from a commit subject: 'runtime: count handoffp' -> 'runtime-count-handoffp'."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", subject.lower()).strip("-")
    return (text[:50].rstrip("-") or "patch")


def series_with(series_dir: Path, order: list[str], new: set[str]) -> str:
    """The series file's text with the ``new`` names of ``order`` added, each after the entry of
    the name before it (at the end when that one is not in the file); the rest kept as it is."""
    series_file = series_dir / SERIES_FILE
    lines = series_file.read_text(encoding="utf-8").splitlines() if series_file.exists() else \
        ["# Patch series, applied in this order (top to bottom)."]
    line_of = {e.file[:-len(".patch")]: e.line - 1 for e in read_series_entries(series_dir)} if series_file.exists() else {}
    inserted: dict[int, list[str]] = {}
    tail: list[str] = []
    prev = None
    for name in order:
        if name in new:
            if prev is not None and prev in line_of:
                inserted.setdefault(line_of[prev], []).append(f"{name}.patch")
            else:
                tail.append(f"{name}.patch")
        prev = name
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        out.extend(inserted.get(i, []))
    out.extend(tail)
    return "\n".join(out) + "\n"
