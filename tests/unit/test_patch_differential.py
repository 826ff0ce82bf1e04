"""gopatch's apply engine against `git apply`, the oracle: a differential property suite.

Hypothesis draws a case per category (see ``differential.py`` for how a case becomes a diff
and how both sides run): valid diffs that ``git diff`` wrote of random edits of a small real
tree, and broken ones (truncated, wrong counts, garbage, mixed sections, path tricks, bad
headers). Each case runs through ``git apply`` and through gopatch's engine on identical copies
of the tree; the exit class (accepted / refused) and the resulting trees must be the same. The
only tolerated difference is a gopatch refusal that ``differential.SAFETY_REFUSALS`` (the one
documented allow-list) explains.

A disagreement fails the test with a repro directory (the diff, the base tree, both results and
a README with both messages) under the session's tmp dir; hypothesis shrinks it first, within a
time budget (``DIFFTEST_SHRINK_SECONDS``), so the repro is small.

Profiles: ``difftest-ci`` (default; reproducible: derandomized, no example database) runs
``DIFFTEST_EXAMPLES`` (default 120) cases per category in the unit suite; ``make fuzz`` sets
``DIFFTEST_PROFILE=difftest-fuzz``: random seeds and 2,000 cases per category. The counts per
category are printed at the end of the session and written to ``difftest-summary.json`` (path in
the output; ``DIFFTEST_SUMMARY`` overrides it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from differential import (
    CATEGORIES,
    Case,
    DiffOptions,
    Edit,
    LineOp,
    Mutation,
    Result,
    Tally,
    World,
    cases,
    head_entries,
    snapshot,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# No deadline: a case runs a dozen git processes, whose time depends on the machine's load. No
# explain phase: it reruns failing cases many times for a hint the repro directory gives better.
_COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck), "print_blob": True,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]}
settings.register_profile("difftest-ci", max_examples=int(os.environ.get("DIFFTEST_EXAMPLES", "120")),
                          derandomize=True, database=None, **_COMMON)
settings.register_profile("difftest-fuzz", max_examples=int(os.environ.get("DIFFTEST_EXAMPLES", "2000")),
                          derandomize=False, **_COMMON)
PROFILE_NAME = os.environ.get("DIFFTEST_PROFILE", "difftest-ci")
PROFILE = settings.get_profile(PROFILE_NAME)
SHRINK_SECONDS = float(os.environ.get("DIFFTEST_SHRINK_SECONDS", "30" if PROFILE_NAME == "difftest-ci" else "300"))


class Summary:
    """A pytest plugin registered by the ``world`` fixture: prints the per-category table at the
    end of the session and writes it as JSON."""

    def __init__(self, path: Path) -> None:
        self.tally = Tally()
        self.path = path
        self.failures: dict[str, Path] = {}

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"profile": PROFILE_NAME, "max_examples": PROFILE.max_examples,
                                         **self.tally.to_json(),
                                         "repros": {k: str(v) for k, v in self.failures.items()}}, indent=2))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.tally.counts:
            return
        terminalreporter.section("gopatch vs git apply (differential suite)")
        terminalreporter.write_line(f"profile {PROFILE_NAME}: up to {PROFILE.max_examples} cases per category "
                                    "(counts include hypothesis' shrink steps after a disagreement)")
        terminalreporter.write_line(self.tally.table())
        for cat, path in self.failures.items():
            terminalreporter.write_line(f"repro of the {cat} disagreement: {path}")
        terminalreporter.write_line(f"summary: {self.path}")


@pytest.fixture(scope="module")
def world(request, tmp_path_factory, go_dist):
    w = World(tmp_path_factory.mktemp("difftest"), go_dist("1.27.3"))
    summary = Summary(Path(os.environ.get("DIFFTEST_SUMMARY", tmp_path_factory.getbasetemp() / "difftest-summary.json")))
    request.config.pluginmanager.register(summary, "difftest-summary")
    w.summary = summary
    yield w
    summary.write()  # now: pytest may rotate its tmp dirs before the terminal summary
    w.close()


class Shrinker:
    """Bounds hypothesis' shrinking: once a category has failed for SHRINK_SECONDS, cases already
    seen to fail fail again from memory and every other case passes at once, so the shrinker
    stops quickly and its final replay (of a case known to fail) reports the smallest one found."""

    def __init__(self) -> None:
        self.first_failure: dict[str, float] = {}
        self.failed: dict[str, dict[Case, str]] = {}

    def over_budget(self, category: str) -> bool:
        t = self.first_failure.get(category)
        return t is not None and time.monotonic() - t > SHRINK_SECONDS

    def remember(self, case: Case, message: str) -> None:
        self.first_failure.setdefault(case.category, time.monotonic())
        self.failed.setdefault(case.category, {})[case] = message


SHRINKER = Shrinker()


@pytest.mark.parametrize("category", CATEGORIES)
@settings(PROFILE)
@given(data=st.data())
def test_gopatch_agrees_with_git_apply(world, category, data):
    case = data.draw(cases(category), label="case")
    if SHRINKER.over_budget(category):
        known = SHRINKER.failed[category].get(case)
        if known is not None:
            raise AssertionError(known)
        return
    result = world.run(case)
    world.summary.tally.record(result)
    if result.agrees:
        world.discard(result)
        return
    dest = world.write_repro(result, world.root / "repros" / category)
    world.summary.failures[category] = dest
    world.discard(result)
    message = f"gopatch and git apply disagree ({result.verdict}):\n{world.report(result, dest)}"
    SHRINKER.remember(case, message)
    raise AssertionError(message)


# A few cases through the real command line: the in-process path the suite uses is the CLI's.
CLI_CASES = [
    Case("valid-edit", (Edit("modify", 3, (LineOp("insert", 20, (b"caf\xe9\r\n",)), LineOp("eol", 0))),
                        Edit("chmod", 5), Edit("add", 0, name=2)), DiffOptions(context=1)),
    Case("valid-rename-copy", (Edit("rename", 1, name=9, ops=(LineOp("delete", 4),)),), DiffOptions(renames="M")),
    Case("valid-edit", (Edit("delete", 8), Edit("binary", 0, data=b"\x00\x01zz")), DiffOptions(binary=True)),
    Case("broken-truncate", (Edit("modify", 2, (LineOp("replace", 10, (b"x\n",)),)),), mutations=(Mutation("lines", 9),)),
    Case("broken-paths", (Edit("modify", 4, (LineOp("insert", 2, (b"y\n",)),)),),
         mutations=(Mutation("all", 0, text=b"../outside.go"),)),
    Case("broken-counts", (Edit("modify", 6, (LineOp("delete", 3, count=2),)),), mutations=(Mutation("count", 0, 1, 40),)),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[f"{c.category}-{i}" for i, c in enumerate(CLI_CASES)])
def test_cli_is_the_in_process_engine(world, case):
    result: Result = world.run(case, keep=True)
    try:
        cli_dir = world.fresh_copy(result.workdir / "cli")
        with world.environ():
            code, err = world.gopatch_cli(cli_dir, result.workdir / "case.patch")
        assert code == result.gopatch.code, (
            f"the CLI exited {code}, the in-process engine's exit code is {result.gopatch.code}\n"
            f"CLI: {err}\nin-process: {result.gopatch.message}")
        assert snapshot(cli_dir) == snapshot(result.workdir / "gopatch")
        assert head_entries(cli_dir) == head_entries(result.workdir / "gopatch")
    finally:
        shutil.rmtree(result.workdir, ignore_errors=True)
