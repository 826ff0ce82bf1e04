"""Per-layer CPU seconds while layers run side by side, the behaviour lanes' hold and the runner's
schedule (which layer waits for which, errors, report order): real child processes, real threads."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.cmd import run
from pipeline.verify import behavior
from pipeline.verify.cpumeter import Meter, metered, submit

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"
IDLE = "import time; time.sleep({s})"


def test_each_layer_counts_only_its_own_commands_and_pool_threads():
    """Two 'layers' at the same time: one runs a CPU-bound child directly and one through a thread
    pool, the other a child that sleeps. The process-wide RUSAGE_CHILDREN would give each of them
    the sum; the meters must not."""
    busy, pooled, idle = Meter(), Meter(), Meter()

    def burn() -> None:
        run([sys.executable, "-c", BURN.format(s=0.6)])

    def through_pool() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            submit(pool, burn).result()

    def sleep() -> None:
        run([sys.executable, "-c", IDLE.format(s=1.0)])

    threads = [threading.Thread(target=metered, args=(m, fn)) for m, fn in
               ((busy, burn), (pooled, through_pool), (idle, sleep))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0.5 <= busy.children < 1.5, busy.children
    assert 0.5 <= pooled.children < 1.5, pooled.children
    assert idle.children < 0.4, idle.children  # the interpreter's start-up, not its neighbours' loops
    assert idle.seconds < 0.5


def test_the_meter_counts_gopatchs_own_threads():
    meter = Meter()

    def spin() -> None:
        t = time.thread_time()
        while time.thread_time() - t < 0.3:
            pass

    metered(meter, spin)
    assert meter.own >= 0.3 and meter.children == 0


def test_held_lanes_wait_and_the_runtime_test_lane_does_not():
    """behavior._run_lanes with a hold: the free lane runs while the others wait, and the free
    lane does not take one of the `jobs` places."""
    released = threading.Event()
    events: list[str] = []
    lock = threading.Lock()

    def step(name: str):
        def fn() -> None:
            with lock:
                events.append(f"{name}{'+' if released.is_set() else '-'}")
            if name == "test runtime":
                time.sleep(0.3)
                released.set()  # stands in for the asm layer finishing
        return fn

    lanes: dict[str, behavior.Lane] = {name: [(name, step(name))] for name in
                                       ("test runtime", "patched", "vanilla", "test sync")}
    asked: list[str] = []

    def hold(side: str) -> None:
        with lock:
            asked.append(side)
        released.wait()

    workers = behavior._run_lanes(lanes, jobs=2, log=lambda _: None, hold=hold, free={"test runtime"})
    assert workers == 3
    assert events[0] == "test runtime-"
    assert sorted(events[1:]) == ["patched+", "test sync+", "vanilla+"]
    assert sorted(asked) == ["patched", "test sync", "vanilla"]  # every lane but the free one waits


def _fake_layers(monkeypatch, events: list[str], *, asm_error: Exception | None = None):
    """Layer functions that only record when they ran (faults injected; the real layers are
    covered by the other verify tests and the e2e suite)."""
    from pipeline.verify import asm, ast, version
    from pipeline.verify.model import PASS, LayerResult

    def layer(name: str, before=None):
        def check(*args, **kwargs):
            if before is not None:
                before(kwargs)
            events.append(name)
            return LayerResult(layer=name, status=PASS, summary=name)
        return check

    def asm_check(*args, compiled=None, **kwargs):
        time.sleep(0.2)
        if asm_error is not None:
            raise asm_error
        compiled("vanilla")
        time.sleep(0.2)  # the patched compile and the parsing go on
        events.append("asm")
        compiled("patched")
        return LayerResult(layer="asm", status=PASS, summary="asm")

    monkeypatch.setattr(version, "check", layer("version"))
    monkeypatch.setattr(asm, "check", asm_check)
    monkeypatch.setattr(ast, "check", layer("ast"))
    monkeypatch.setattr(behavior, "check", layer("behavior", before=lambda kw: (kw["hold"]("patched"),
                                                                                kw["hold"]("vanilla"))))


def _run(tmp_path):
    from pathlib import Path

    from pipeline.config import load_options
    from pipeline.verify.goenv import host_target
    from pipeline.verify.runner import run_layers
    from pipeline.verify.toolchains import Toolchains

    opts = load_options(env={"GOPATCH_CACHE_DIR": str(tmp_path)})
    tc = Toolchains(target=host_target(), patched=Path("/p"), compiler=Path("/p"), vanilla=Path("/v"),
                    version="go1.27.3-x", release="go1.27.3")
    return run_layers(tc, [], opts, layers=("version", "asm", "ast", "behavior"))


def test_runner_overlaps_layers_and_reports_them_in_order(monkeypatch, tmp_path):
    events: list[str] = []
    _fake_layers(monkeypatch, events)
    report = _run(tmp_path)
    assert [x.layer for x in report.layers] == ["version", "asm", "ast", "behavior"]
    assert events.index("ast") < events.index("asm")  # ast starts after asm's vanilla compile
    assert events[-1] == "behavior"  # its vanilla lane waits for ast, its patched ones for asm
    assert all("cpu_seconds" in x.details for x in report.layers)


def test_runner_error_in_asm_skips_ast_and_waits_for_behaviour(monkeypatch, tmp_path):
    from pipeline.errors import EnvironmentProblem

    events: list[str] = []
    _fake_layers(monkeypatch, events, asm_error=EnvironmentProblem("vanilla go is broken"))
    with pytest.raises(EnvironmentProblem, match="broken"):
        _run(tmp_path)
    assert "ast" not in events and events[-1] == "behavior"  # joined, not left running
