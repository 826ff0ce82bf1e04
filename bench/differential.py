"""gopatch's apply engine against `git apply`, N cases per category, without stopping.

The cases are the differential suite's (tests/unit/differential.py: the same hypothesis
strategies, the same tree, the same comparison and the same SAFETY_REFUSALS allow-list), but
every disagreement is counted instead of failing: the table says, per category, how many cases
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
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "unit"))
sys.path.insert(0, str(REPO))

import differential as d  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from pipeline import gobin  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="cases per category (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0: reproducible)")
    ap.add_argument("--category", action="append", choices=d.CATEGORIES, help="only these categories")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "differential", help="repro directories")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    ap.add_argument("--go-version", default=d.GO_VERSION)
    args = ap.parse_args()

    cache = Path.home() / ".cache" / "gopatch-tests"
    go_root = gobin.ensure(cache, args.go_version)
    root = Path(tempfile.mkdtemp(prefix="bench-differential-"))
    world = d.World(root, go_root)
    tally = d.Tally()
    smallest: dict[tuple[str, str], d.Result] = {}
    started = time.monotonic()
    try:
        for category in args.category or d.CATEGORIES:
            t0 = time.monotonic()

            @seed(args.seed)
            @settings(max_examples=args.cases, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            @given(case=d.cases(category))
            def run(case: d.Case) -> None:
                r = world.run(case)
                tally.record(r)
                key = (case.category, r.verdict if r.verdict != "allowed" else "allowed:" + ",".join(r.allowed_by))
                if r.verdict != "agree":
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
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"cases_per_category": args.cases, "seed": args.seed, **tally.to_json()},
                                            indent=2))
    finally:
        world.close()
    disagreements = sum(tally.counts[c][k] for c in tally.counts for k in d.DISAGREEMENTS)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
