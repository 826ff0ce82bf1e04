"""Reading `go tool compile -S` output: split it into functions and normalise each one.

The compiler prints, for every function, a header line (``runtime.handoffp STEXT size=783 ...``)
followed by one line per instruction::

    \t0x0004 00004 (/goroot/src/runtime/proc.go:3146)\tJLS\t762

and then hex dumps and relocations. Two builds of the same function from different trees differ in
everything except the instructions: the GOROOT path, the line numbers (a patch earlier in the file
shifts them), the PC offsets (an instruction inserted earlier shifts them), branch targets (which
are PCs), and package-wide counters in temporary symbol names. ``normalise`` removes exactly that
noise and keeps mnemonics and operands, so that two functions compare equal iff their machine
code does the same thing.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Symbol names may contain spaces (`type:.eq.[2]interface {}`), so match up to ` STEXT`.
_HEADER = re.compile(r"^(\S.*?) STEXT\b")
_SECTION = re.compile(r"^\S.*? S[A-Z]+\b")

# Metadata pseudo-instructions (stack maps, liveness tables) and inlining marks: a bare NOP at an
# inlined call site moves when line numbers move, without any change to the code around it.
_METADATA = frozenset({"PCDATA", "FUNCDATA"})
# (marker, pattern, replacement): the cheap substring test skips the regex on most lines.
_NOISE = [
    ("gclocals", re.compile(r"gclocals·[A-Za-z0-9+/=]+"), "gclocals·*"),  # hash of a liveness map
    ("autotmp", re.compile(r"\.\.autotmp_\d+"), "..autotmp"),  # compiler temporaries, numbered per function
    ("stmp", re.compile(r"\.\.stmp_\d+"), "..stmp"),  # static temporaries, numbered per package
    ("#", re.compile(r"#[A-Za-z0-9+/=]+#"), "#*#"),  # inlined closures: named by a position hash
    ("ABI", re.compile(r",\s*ABI(?:Internal|0)\b"), ""),  # calling-convention tag on TEXT
    ("ABI", re.compile(r"\|ABI(?:Internal|0)\b"), ""),
    ("ABI", re.compile(r"<ABI(?:Internal|0)>"), ""),
]
# A branch target is the last operand and is a bare decimal PC (constants carry `$`).
_TARGET = re.compile(r"(^|,\s*)(\d+)$")
# Suffixes the compiler appends to a function's own closures and wrappers.
_CLOSURE = re.compile(r"(\.(?:func|gowrap|deferwrap)\d+)+(\.\d+)*$")


@dataclass(frozen=True)
class AsmFunction:
    name: str  # symbol as the compiler prints it: runtime.handoffp, runtime.(*p).init
    file: str  # source file of the TEXT line, relative to GOROOT (src/runtime/proc.go)
    code: tuple[str, ...]  # normalised instructions


def relative_to_goroot(path: str) -> str:
    """/any/goroot/src/runtime/proc.go -> src/runtime/proc.go (the GOROOT differs per toolchain)."""
    idx = path.rfind("/src/")
    return path[idx + 1:] if idx >= 0 else path


def parse(text: str) -> dict[str, AsmFunction]:
    """All functions of one `-S` output, normalised, by symbol name."""
    out: dict[str, AsmFunction] = {}
    name: str | None = None
    rows: list[tuple[int, str, str, str]] = []  # (pc, position, mnemonic, operands)

    def flush() -> None:
        if name is None or not rows:
            return
        if rows[0][2] == "TEXT" and "ABIWRAPPER" in rows[0][3]:
            # The compiler's ABI0<->ABIInternal wrapper carries the same symbol name as the real
            # function (e.g. linknamed runtime.traceAdvance); keyed by name it would overwrite
            # the real body and hide a change in it. Wrappers are generated, never patched.
            return
        out[name] = _normalise(name, rows)

    for line in text.splitlines():
        if line.startswith("\t"):
            if name is not None and line.startswith("\t0x"):
                row = _instruction(line)
                if row:
                    rows.append(row)
            continue
        m = _HEADER.match(line)
        if m:
            flush()
            name, rows = _unique(m.group(1), out), []
        elif _SECTION.match(line) or line.startswith("#"):
            flush()
            name, rows = None, []
    flush()
    return out


def _instruction(line: str) -> tuple[int, str, str, str] | None:
    """`\t0x0004 00004 (/p/f.go:12)\tJLS\t762` -> (4, '/p/f.go:12', 'JLS', '762'); hex dump lines
    (`\t0x0000 65 48 8b ...`) -> None. str.split, not a regex: a listing has ~400,000 lines."""
    parts = line.split("\t", 3)
    if len(parts) < 3:
        return None
    head = parts[1]
    sp = head.find(" ")
    sp2 = head.find(" ", sp + 1)
    if sp2 < 0 or not head.startswith("(", sp2 + 1) or not head.endswith(")"):
        return None
    try:
        pc = int(head[sp + 1:sp2])
    except ValueError:
        return None
    return pc, head[sp2 + 2:-1], parts[2].strip(), parts[3].strip() if len(parts) > 3 else ""


def _unique(symbol: str, seen: dict[str, AsmFunction]) -> str:
    """A closure inlined at several call sites is compiled once per site, each copy named by a
    hash of its position (`runtime.forEachP.func1#cLa9Xkv7YXg=#`); positions move with line
    numbers, so copies are numbered in output order instead."""
    if not symbol.endswith("#") or "#" not in symbol[:-1]:
        return symbol
    base = symbol[: symbol.rindex("#", 0, len(symbol) - 1)]
    n = 1
    while f"{base}#{n}" in seen:
        n += 1
    return f"{base}#{n}"


def _normalise(name: str, rows: list[tuple[int, str, str, str]]) -> AsmFunction:
    file = ""
    for _pc, pos, mnemonic, _ops in rows:
        if mnemonic == "TEXT":
            file = relative_to_goroot(pos.rsplit(":", 1)[0])
            break
    pcs = {pc for pc, _, _, _ in rows}
    # Branch targets become labels numbered in address order, so an instruction inserted before
    # a target does not change every jump that follows it.
    targets = sorted({int(m.group(2)) for _, _, mn, ops in rows
                      for m in [_TARGET.search(ops)] if m and int(m.group(2)) in pcs})
    label = {pc: f"L{i}" for i, pc in enumerate(targets, start=1)}
    code: list[str] = []
    placed: set[int] = set()
    for pc, _pos, mnemonic, ops in rows:
        if mnemonic in _METADATA or (mnemonic == "NOP" and not ops):
            continue
        if pc in label and pc not in placed:
            placed.add(pc)
            code.append(f"{label[pc]}:")
        m = _TARGET.search(ops)
        if m and int(m.group(2)) in label:
            ops = ops[: m.start(2)] + label[int(m.group(2))]
        for marker, pattern, repl in _NOISE:
            if marker in ops:
                ops = pattern.sub(repl, ops)
        code.append(f"{mnemonic}\t{ops}".rstrip())
    return AsmFunction(name=name, file=file, code=tuple(code))


def owner(symbol: str) -> str:
    """The source-level function a symbol belongs to: closures and generic instantiations fold
    into their enclosing function (`runtime.main.func1` -> `runtime.main`,
    `slices.Sort[go.shape.int]` -> `slices.Sort`), because that is what a patch author names."""
    base = re.sub(r"#\d+$", "", symbol)
    base = re.sub(r"\[[^\]]*\]", "", base) if "[" in base else base
    return _CLOSURE.sub("", base)


def package_of(function: str) -> str:
    """`net/http.(*Server).Serve` -> `net/http`; `runtime.handoffp` -> `runtime`."""
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    return function[:dot] if dot > 0 else function


def unified(name: str, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    return list(difflib.unified_diff(before, after, f"vanilla/{name}", f"patched/{name}", n=3, lineterm=""))
