"""Layer 2, assembly: does the machine code of exactly the claimed functions differ from vanilla?

Both toolchains compile the touched packages for the same GOOS/GOARCH with ``-S``
(``go build -gcflags=<pkg>=-S <pkg>``); ``asmtext`` normalises the listings; ``judge`` compares
them per source-level function and checks the result against the patches' ``Touches:`` claims.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..cmd import run
from ..errors import EnvironmentProblem, GopatchError, VerificationFailed
from . import asmtext
from .asmtext import AsmFunction
from .claims import Claim
from .cpumeter import submit
from .goenv import go_env
from .model import FAIL, PASS, LayerResult
from .toolchains import Toolchains
from .vcache import VanillaCache, code_identity, write_json_atomic


def packages_for(claims: Iterable[Claim]) -> list[str]:
    """Import paths to compile: packages of the claimed functions and of the changed files."""
    pkgs: dict[str, None] = {}
    for c in claims:
        for fn in (*c.touches, *c.helpers):
            pkgs[asmtext.package_of(fn)] = None
        for f in c.files:
            pkgs[str(Path(f).parent.relative_to("src"))] = None
    return list(pkgs)


def compile_listing(
    goroot: Path,
    packages: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    log: Callable[[str], None] | None = None,
    error: type[GopatchError] = EnvironmentProblem,
) -> str:
    """The `-S` output of ``packages`` compiled by ``goroot``'s go command (it goes to stderr).

    A cache hit replays the stored compiler output, so a warm run prints the same listing."""
    flags = [f"-gcflags={p}=-S" for p in packages]  # repeated -gcflags: one pattern per package
    with tempfile.TemporaryDirectory(prefix="gopatch-asm-") as cwd:  # main packages land here
        proc = run([goroot / "bin" / "go", "build", *flags, *packages], cwd=Path(cwd), env=env,
                   log=log, check=False, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(x for x in proc.stderr.splitlines() if not x.startswith("\t"))[-2000:]
        raise error(f"{goroot}/bin/go build -S of {' '.join(packages)} failed "
                                 f"(exit {proc.returncode}):\n{tail}")
    return proc.stderr


def parse_cached(text: str, cache_dir: Path) -> dict[str, AsmFunction]:
    """``asmtext.parse(text)``, remembered by the listing's sha256 (and the parser's code): a warm
    run replays the same 40 MB of -S output from the Go build cache, and parsing it again would
    take seconds where reading the stored result takes a fraction of one."""
    key = hashlib.sha256(code_identity().encode() + b"\0" + text.encode()).hexdigest()
    memo = cache_dir / "verify" / "asmparse" / f"{key}.json"
    try:
        return from_json(json.loads(memo.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        pass
    parsed = asmtext.parse(text)
    write_json_atomic(memo, to_json(parsed))
    return parsed


def to_json(parsed: dict[str, AsmFunction]) -> dict[str, list]:
    return {n: [f.file, list(f.code)] for n, f in parsed.items()}


def from_json(stored: dict[str, list]) -> dict[str, AsmFunction]:
    return {name: AsmFunction(name=name, file=f, code=tuple(code)) for name, (f, code) in stored.items()}


def _by_owner(funcs: dict[str, AsmFunction]) -> dict[str, list[AsmFunction]]:
    groups: dict[str, list[AsmFunction]] = defaultdict(list)
    for f in funcs.values():
        groups[asmtext.owner(f.name)].append(f)
    return groups


def _code(group: list[AsmFunction]) -> tuple[str, ...]:
    if len(group) == 1:
        return group[0].code
    lines: list[str] = []
    for f in sorted(group, key=lambda f: f.name):
        lines += [f"; {f.name}", *f.code]
    return tuple(lines)


def judge(
    vanilla: dict[str, AsmFunction],
    patched: dict[str, AsmFunction],
    claims: Sequence[Claim],
    *,
    must_not_change: Sequence[str] = (),
) -> LayerResult:
    """The verdict, from two parsed listings and the series' claims (pure: unit-tested on real
    listings). ``must_not_change``: fnmatch patterns of functions that must keep their code;
    empty = every function of the files the patches touch."""
    van, pat = _by_owner(vanilla), _by_owner(patched)
    owners = set(van) | set(pat)
    changed = {o for o in owners if _code(van.get(o, [])) != _code(pat.get(o, []))}
    declared = {fn for c in claims for fn in (*c.touches, *c.helpers)}

    def file_of(o: str) -> str:
        group = pat.get(o) or van.get(o) or []
        primary = [f for f in group if f.name == o] or group
        return primary[0].file if primary else ""

    problems: list[str] = []
    per_patch = []
    missing: dict[str, list[str]] = {}
    for c in claims:
        states = {}
        for fn in c.touches:
            if fn not in owners:
                states[fn] = "not found"
                problems.append(f"patch {c.name}: Touches names {fn}, but the compiler emitted no such "
                                "function (misspelt, inlined everywhere, or not built for this GOOS/GOARCH).")
            elif fn in changed:
                states[fn] = "changed"
            else:
                states[fn] = "unchanged"
                missing.setdefault(c.name, []).append(fn)
                problems.append(f"patch {c.name}: {fn} has the same machine code as vanilla: the toolchain "
                                "does not carry this patch, or its Touches: claims a function it does not change.")
        per_patch.append({"patch": c.name, "subject": c.subject, "touches": states})

    if must_not_change:
        protected = {o for o in owners if any(fnmatch.fnmatchcase(o, p) for p in must_not_change)}
        rule = "must_not_change = " + ", ".join(must_not_change)
    else:
        files = {f for c in claims for f in c.files} | {file_of(fn) for fn in declared if fn in owners}
        protected = {o for o in owners if file_of(o) in files}
        rule = "other functions of the touched files: " + ", ".join(sorted(f for f in files if f))
    undeclared = sorted(changed - declared)
    unexpected = [o for o in undeclared if o in protected]
    for o in unexpected:
        problems.append(f"{o} ({file_of(o)}) changed but no patch declares it in Touches: or Helpers:.")

    functions = []
    claimed_by = defaultdict(list)
    for c in claims:
        for fn in (*c.touches, *c.helpers):
            claimed_by[fn].append(c.name)
    for o in sorted(changed | {fn for fn in declared if fn in owners}):
        before, after = _code(van.get(o, [])), _code(pat.get(o, []))
        status = ("unexpected" if o in unexpected else "undeclared" if o in undeclared
                  else "changed" if o in changed else "unchanged")
        functions.append({
            "name": o, "file": file_of(o), "status": status, "claimed_by": claimed_by.get(o, []),
            "diff": asmtext.unified(o, before, after), "vanilla": list(before), "patched": list(after),
        })
    ok = not problems and bool(declared)
    if not declared:
        problems.append("the series claims no functions (no Touches: trailers): nothing to verify.")
    n_touch = sum(len(c.touches) for c in claims)
    summary = (f"{len(changed)} function(s) changed; {n_touch - sum(map(len, missing.values()))}/{n_touch} "
               f"claimed changed; {len(unexpected)} unexpected; {len(undeclared) - len(unexpected)} "
               "undeclared outside the must-not-change set")
    return LayerResult(
        layer="asm", status=PASS if ok else FAIL, summary=summary, problems=problems,
        details={"patches": per_patch, "missing": missing, "unexpected": unexpected,
                 "undeclared": [o for o in undeclared if o not in unexpected],
                 "must_not_change": rule, "functions": functions,
                 "compared": len(owners)},
    )


def check(
    tc: Toolchains,
    claims: Sequence[Claim],
    *,
    cache_dir: Path,
    extra_env: Sequence[tuple[str, str]] = (),
    must_not_change: Sequence[str] = (),
    timeout: float = 600,
    log: Callable[[str], None] | None = None,
    vanilla_cache: bool = True,
    compiled: Callable[[str], None] | None = None,
) -> LayerResult:
    """``compiled("patched")``/``compiled("vanilla")``: said as soon as that side's go build is over
    (the runner lets the behaviour lanes of that compiler start then; see runner.py)."""
    t0 = time.monotonic()
    packages = packages_for(claims)
    if not packages:
        return judge({}, {}, claims, must_not_change=must_not_change)

    def listing(root: Path, error: type[GopatchError]) -> dict[str, AsmFunction]:
        env = go_env(root, cache_dir=cache_dir, target=tc.target, extra=extra_env)
        text = compile_listing(root, packages, env=env, timeout=timeout, log=log, error=error)
        if compiled is not None:
            compiled("patched")
        return parse_cached(text, cache_dir)

    # The vanilla listing depends only on the distribution, the packages, the target and the
    # build environment: from the vanilla cache after the first run of this release.
    vc = VanillaCache(cache_dir, tc.vanilla, enabled=vanilla_cache)
    parts = {"packages": list(packages), "target": str(tc.target), "extra_env": [list(kv) for kv in extra_env]}
    say = log or (lambda _: None)

    def vanilla_listing() -> dict[str, AsmFunction]:
        env = go_env(tc.vanilla, cache_dir=cache_dir, target=tc.target, extra=extra_env)
        text = compile_listing(tc.vanilla, packages, env=env, timeout=timeout, log=log, error=EnvironmentProblem)
        if compiled is not None:
            compiled("vanilla")
        parsed = asmtext.parse(text)
        vc.put("asm", parts, to_json(parsed),
               files={"listing.txt.gz": gzip.compress(text.encode(), compresslevel=1)})
        return parsed

    # The two compiles are independent; go build itself uses every core, overlap still helps.
    # The patched one is needed either way, so it starts before the vanilla cache's key is known:
    # the key's first computation for a distribution hashes all of it (a second or more).
    # Patched sources that do not compile are a verification failure; a broken vanilla is not.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pat_f = submit(pool, listing, tc.compiler, VerificationFailed)
        hit = vc.get("asm", parts)
        if hit is not None:
            if compiled is not None:
                compiled("vanilla")  # nothing to compile on that side
            say(f"asm: vanilla listing of {' '.join(packages)} from the vanilla cache ({hit[1].name[:12]})")
            say(f"asm: compiling {' '.join(packages)} with -S (patched) ...")
            vanilla = from_json(hit[0])
        else:
            say(f"asm: compiling {' '.join(packages)} with -S (vanilla and patched, side by side) ...")
            vanilla = submit(pool, vanilla_listing).result()
        patched = pat_f.result()
    result = judge(vanilla, patched, claims, must_not_change=must_not_change)
    result.details["packages"] = packages
    result.details["vanilla_cached"] = hit is not None
    result.seconds = time.monotonic() - t0
    return result
