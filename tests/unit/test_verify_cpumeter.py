"""Per-layer CPU seconds while layers run side by side, and the behaviour lanes' hold (the runner's
scheduling): real child processes, real threads."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
