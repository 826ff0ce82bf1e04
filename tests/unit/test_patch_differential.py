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
from differential import Result, Tally, World, head_entries, safety_reasons, snapshot
from differential_cases import CATEGORIES, Case, DiffOptions, Edit, LineOp, Mutation, cases
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


# Hand-written shapes, each a known way to get `git apply` wrong (issue 10). Nothing here says
# what the result should be: `git apply` decides, as for the generated cases.
KNOWN_SHAPES: dict[str, bytes] = {
    # Two equally near places for a hunk (its header is 2 lines off both): git tries forwards first.
    "tie-forward-first": b"diff --git a/src/repeat.go b/src/repeat.go\n--- a/src/repeat.go\n+++ b/src/repeat.go\n"
                         b"@@ -7,3 +7,3 @@ func f0(err error) error {\n \t\treturn err\n-\t}\n+\tm++\n \tn++\n",
    # The first hunk lands 12 lines later than its header says; the second fits exactly at its own
    # header and again 12 lines later: git starts each hunk's search at its own header.
    "each-hunk-from-its-own-header": b"diff --git a/src/repeat.go b/src/repeat.go\n--- a/src/repeat.go\n"
        b"+++ b/src/repeat.go\n@@ -2,3 +2,3 @@\n \n-func f1(err error) error {\n+func f1(err error) error { // x\n"
        b" \tif err != nil {\n@@ -30,3 +30,3 @@\n \t}\n-\tn++\n+\tn += 2\n \tif err != nil {\n",
    # -U0: without --unidiff-zero git makes a hunk without trailing context match at the end.
    "u0-insert": b"diff --git a/src/run.bash b/src/run.bash\n--- a/src/run.bash\n+++ b/src/run.bash\n"
                 b"@@ -2,0 +3 @@ set -e\n+set -u\n",
    "u0-change": b"diff --git a/VERSION b/VERSION\n--- a/VERSION\n+++ b/VERSION\n@@ -1 +1 @@\n-go1.27.3\n+go1.27.4\n",
    # golang-fips' shape: one section creates a file, a later one edits it.
    "create-then-edit": b"diff --git a/src/hostfips.go b/src/hostfips.go\nnew file mode 100644\n--- /dev/null\n"
                        b"+++ b/src/hostfips.go\n@@ -0,0 +1,2 @@\n+package x\n+var a = 1\n"
                        b"diff --git a/src/hostfips.go b/src/hostfips.go\n--- a/src/hostfips.go\n+++ b/src/hostfips.go\n"
                        b"@@ -1,2 +1,2 @@\n package x\n-var a = 1\n+var a = 2\n",
    "rename-from-to-wins": b"diff --git a/src/zz.go b/src/zz.go\nsimilarity index 100%\nrename from src/nonl.go\n"
                           b"rename to src/renamed.go\n",
    "copy": b"diff --git a/src/nonl.go b/src/copied.go\nsimilarity index 100%\ncopy from src/nonl.go\ncopy to src/copied.go\n",
    "headers-only": b"diff --git a/src/nonl.go b/src/nonl.go\n--- a/src/nonl.go\n+++ b/src/nonl.go\n",
    "cut-after-plus-plus-plus": b"diff --git a/src/nonl.go b/src/nonl.go\n--- a/src/nonl.go\n+++ b/src/nonl.go\n"
                                b"diff --git a/VERSION b/VERSION\n--- a/VERSION\n+++ b/VERSION\n"
                                b"@@ -1,2 +1,2 @@\n-go1.27.3\n+go1.27.4\n time 2026-10-19T22:20:36Z\n",
    "nonsense-counts": b"diff --git a/VERSION b/VERSION\n--- a/VERSION\n+++ b/VERSION\n"
                       b"@@ -1,9 +1,9 @@\n-go1.27.3\n+go1.27.4\n time 2026-10-19T22:20:36Z\n",
    "index-line-mode": b"diff --git a/VERSION b/VERSION\nindex de50f2a..1234567 100755\n--- a/VERSION\n+++ b/VERSION\n"
                       b"@@ -1,2 +1,2 @@\n-go1.27.3\n+go1.27.4\n time 2026-10-19T22:20:36Z\n",
    "stray-mode-after-garbage": b"diff --git a/VERSION b/VERSION\n--- a/VERSION\n+++ b/VERSION\n"
                                b"@@ -1,2 +1,2 @@\n-go1.27.3\n+go1.27.4\n time 2026-10-19T22:20:36Z\n"
                                b"some garbage\nold mode 100644\nnew mode 100755\n",
    "dotgit-8.3-alias": b"diff --git a/git~1/config b/git~1/config\nnew file mode 100644\n--- /dev/null\n"
                        b"+++ b/git~1/config\n@@ -0,0 +1 @@\n+[core]\n",
    "dotgit-trailing-space": b"diff --git a/.git /config b/.git /config\nnew file mode 100644\n--- /dev/null\n"
                             b"+++ b/.git /config\n@@ -0,0 +1 @@\n+[core]\n",
    "component-over-255-bytes": b"diff --git a/src/" + b"L" * 300 + b".go b/src/" + b"L" * 300 + b".go\n"
                                b"new file mode 100644\n--- /dev/null\n+++ b/src/" + b"L" * 300 + b".go\n"
                                b"@@ -0,0 +1 @@\n+package x\n",
}


@pytest.mark.parametrize("name", list(KNOWN_SHAPES))
def test_known_shape_agrees_with_git_apply(world, name):
    result = world.run(Case("known-shape", (), raw=KNOWN_SHAPES[name]))
    world.summary.tally.record(result)
    if not result.agrees:
        dest = world.write_repro(result, world.root / "repros" / f"known-{name}")
        world.discard(result)
        raise AssertionError(f"gopatch and git apply disagree ({result.verdict}):\n{world.report(result, dest)}")
    world.discard(result)


@pytest.mark.parametrize(("path", "rule"), [
    ("/etc/passwd", "absolute-path"), ("src/../../x.go", "dot-dot"), (".git/config", "dot-git"),
    ("git~1/config", "dot-git"), (".GIT./hooks/x", "dot-git"), (".git /config", "dot-git"),
    (".git::$INDEX_ALLOCATION/config", "dot-git"), ("src/.g\u200cit/x", "dot-git"), ("src//x.go", "invalid-name"),
    ("src/x\0y.go", "invalid-name"), ("src/" + "L" * 256, "long-component"), ("src/linkdir/keep.txt", "through-symlink"),
])
def test_safety_rules_excuse_only_the_refusal_that_names_the_path(world, path, rule):
    header = b"diff --git a/x b/x\n--- /dev/null\n+++ b/" + os.fsencode(path) + b"\n"
    assert rule in safety_reasons(header, world, f"refusing {path!r}: unsafe")
    # the same diff refused for another reason is not excused
    assert safety_reasons(header, world, "malformed diff: Target without source: +++ b/x") == []
    # and an ordinary name is never excused
    assert safety_reasons(b"diff --git a/src/ok.go b/src/ok.go\n", world, "refusing 'src/ok.go'") == []
