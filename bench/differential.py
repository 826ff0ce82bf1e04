"""gopatch's apply engine against `git apply`, N cases per category, without stopping.

The cases are the differential suite's (tests/unit/differential_cases.py draws them,
tests/unit/differential.py runs and judges them: the same hypothesis strategies, the same tree,
the same comparison and the same SAFETY_REFUSALS allow-list), but every disagreement is counted instead of failing: the table says, per category, how many cases
agree and how many disagree by kind (gopatch accepts what git refuses, gopatch refuses what git
accepts, both accept but the trees differ, gopatch crashed / exited 3 / changed the tree on a
refusal), and how many differences the allow-list excuses. The smallest diff of each
(category, kind) is written as a repro directory under --out.

    .venv/bin/python bench/differential.py [--cases 200] [--seed 0] [--category valid-edit ...]
                                           [--out out/differential] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "unit"))
sys.path.insert(0, str(REPO))

import differential as d  # noqa: E402
import differential_cases as dc  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from pipeline.source import gobin  # noqa: E402


def _first(text: str) -> str:
    noise = ("trailing whitespace.", "new blank line at EOF.", "space before tab in indent.", "whitespace error")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("warning", "Traceback", "  ", "+"))
             and not ln.rstrip().endswith(noise)]
    line = lines[0] if lines else ""
    line = re.sub(r"/\S*/case\.patch(:\d+)?:?", "", line)
    line = re.sub(r"'[^']*'|\"[^\"]*\"", "'P'", line)
    line = re.sub(r"(?<=: )\S+\.(go|txt|bash|dat)\b|\bsrc/\S+|VERSION", "P", line)
    return re.sub(r"\d+", "N", line).strip()[:90]


def _git_first(text: str) -> str:
    errors = [ln for ln in text.splitlines() if ln.startswith(("error:", "fatal:", "git:"))]
    return _first(errors[0]) if errors else ""


def signature(r: d.Result) -> str:
    """What a disagreement is about, read from the two messages (for grouping, not for judging)."""
    if r.verdict == "gopatch-broken":
        return r.gopatch.kind + ": " + _first(r.gopatch.message.strip().splitlines()[-1])
    return f"{_first(r.gopatch.message) or '(gopatch: ok)'} | {_git_first(r.git.message) or '(git: ok)'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="cases per category (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0: reproducible)")
    ap.add_argument("--category", action="append", choices=dc.CATEGORIES, help="only these categories")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "differential", help="repro directories")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    ap.add_argument("--examples", type=Path, help="write the smallest diff of each distinct message here")
    ap.add_argument("--go-version", default=d.GO_VERSION)
    args = ap.parse_args()

    cache = Path.home() / ".cache" / "gopatch-tests"
    go_root = gobin.ensure(cache, args.go_version)
    root = Path(tempfile.mkdtemp(prefix="bench-differential-"))
    world = d.World(root, go_root)
    tally = d.Tally()
    smallest: dict[tuple[str, str], d.Result] = {}
    causes: dict[tuple[str, str], int] = {}
    cause_example: dict[tuple[str, str], d.Result] = {}
    started = time.monotonic()
    try:
        for category in args.category or dc.CATEGORIES:
            t0 = time.monotonic()

            @seed(args.seed)
            @settings(max_examples=args.cases, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            @given(case=dc.cases(category))
            def run(case: dc.Case) -> None:
                r = world.run(case)
                tally.record(r)
                key = (case.category, r.verdict if r.verdict != "allowed" else "allowed:" + ",".join(r.allowed_by))
                if r.verdict != "agree":
                    sig = (r.verdict, signature(r))
                    causes[sig] = causes.get(sig, 0) + 1
                    if sig not in cause_example or len(r.diff) < len(cause_example[sig].diff):
                        cause_example[sig] = d.Result(r.category, r.verdict, r.diff, r.gopatch, r.git, r.detail,
                                                      r.allowed_by)
                    best = smallest.get(key)
                    if best is None or len(r.diff) < len(best.diff):
                        if best is not None:
                            world.discard(best)
                        smallest[key] = r
                        return
                world.discard(r)

            run()
            row = tally.counts.get(category, {})
            print(f"{category:22} {row.get('cases', 0):5} cases, {row.get('agree', 0):5} agree, "
                  f"{time.monotonic() - t0:6.1f} s", file=sys.stderr, flush=True)
        print()
        print(f"gopatch vs git apply: {args.cases} cases per category, seed {args.seed}, "
              f"{time.monotonic() - started:.0f} s in all")
        print(tally.table())
        if smallest:
            args.out.mkdir(parents=True, exist_ok=True)
            print(f"\nsmallest repro per (category, kind) under {args.out}:")
            for (category, kind), r in sorted(smallest.items()):
                dest = world.write_repro(r, args.out / f"{category}--{kind.replace(':', '-').replace(',', '+')}")
                print(f"  {category:22} {kind:32} {len(r.diff):6} bytes  {dest}")
        if causes:
            print("\ndisagreements by message (gopatch's first line | git's first line; numbers and paths blurred):")
            for (verdict, sig), n in sorted(causes.items(), key=lambda kv: (kv[0][0], -kv[1])):
                print(f"  {n:5}  {verdict:28} {sig}")
            if args.examples:
                args.examples.parent.mkdir(parents=True, exist_ok=True)
                with open(args.examples, "w", encoding="utf-8") as f:
                    for (verdict, sig), n in sorted(causes.items(), key=lambda kv: (kv[0][0], -kv[1])):
                        f.write(f"## {verdict} x{n}: {sig}\n\n{world.report(cause_example[(verdict, sig)])}\n\n")
                print(f"smallest diff per message: {args.examples}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"cases_per_category": args.cases, "seed": args.seed, **tally.to_json()},
                                            indent=2))
    finally:
        world.close()
        shutil.rmtree(root, ignore_errors=True)  # the template tree; repros are under --out
    disagreements = sum(tally.counts[c][k] for c in tally.counts for k in d.DISAGREEMENTS)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
