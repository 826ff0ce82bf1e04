"""Run the selected layers and assemble one Report in layer order (the stage function the CLI calls).

Scheduling (cold runs are CPU-bound on small machines, so the point is to keep every core busy
without compiling anything twice): version first (a second); then the behaviour layer in its own
thread, side by side with asm and then ast in this one; stability (--soak) last and alone, since it
measures GC pauses and would measure its neighbours too. Work that compiles the same standard
packages with the same compiler as other work waits for it (two go commands compiling one package
at the same time both do the work): the ast layer, whose helper is built with the vanilla compiler,
starts in its own thread when the asm layer's vanilla compile is over; the behaviour lanes wait
too (behavior.check's ``hold``): the patched probes and tests for the asm layer's patched compile,
the vanilla probes for the ast layer. Its ``go test runtime`` lane, which shares nothing with them,
starts at once: from the first second three compiles (asm's two and that one) keep both cores busy.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..build.head import head_toolchain
from ..config import VERIFY_LAYERS, Options, Target
from ..errors import VerificationFailed
from . import asm, ast, behavior, stability, version
from .claims import Claim, load_claims
from .cpumeter import Meter, metered
from .model import FAIL, LayerResult, Report
from .toolchains import Toolchains, resolve
from .verdict import write_verdict

ORDER = VERIFY_LAYERS  # the one list of layer names, in the order they run (config.py)


def _guarded(name: str, fn: Callable[[], LayerResult]) -> LayerResult:
    """A layer that times out or finds patched code that does not even compile has failed; it must
    not hide the verdicts of the other layers. Environment problems still end the command (exit 3)."""
    t0 = time.monotonic()
    meter = Meter()
    try:
        result = metered(meter, fn)
        # CPU seconds of the layer's own threads and of every process it ran (cpumeter.py: layers
        # run side by side, so the process-wide counters cannot tell them apart): on a shared
        # machine the wall time says as much about the neighbours as about the layer.
        result.details["cpu_seconds"] = round(meter.seconds, 1)
        return result
    except subprocess.TimeoutExpired as exc:
        msg = f"timed out after {exc.timeout:.0f}s: {' '.join(map(str, exc.cmd))} (raise [verify] timeout)"
    except VerificationFailed as exc:
        msg = exc.message
    return LayerResult(layer=name, status=FAIL, summary=msg.splitlines()[0], problems=[msg],
                       seconds=time.monotonic() - t0)


def run_layers(
    tc: Toolchains,
    claims: Sequence[Claim],
    opts: Options,
    *,
    layers: Sequence[str],
    soak: str = "",
    log: Callable[[str], None] | None = None,
) -> Report:
    cache = opts.cache.dir
    v = opts.verify
    # Per compiler: set when the other layers' builds with it are over (or never run): the
    # behaviour lanes' gates. vanilla_compiled: the asm layer's vanilla compile is over.
    ready = {"patched": threading.Event(), "vanilla": threading.Event()}
    vanilla_compiled = threading.Event()

    def compiled(side: str) -> None:
        if side == "patched":
            ready["patched"].set()
        else:
            vanilla_compiled.set()

    extra = (*opts.build.extra_env, *((("GOEXPERIMENT", opts.build.goexperiment),) if opts.build.goexperiment else ()))
    steps: dict[str, Callable[[], LayerResult]] = {
        "version": lambda: version.check(tc, cache_dir=cache, suffix=opts.build.version_suffix,
                                         patch_count=len(claims), timeout=v.timeout, log=log),
        "asm": lambda: asm.check(tc, claims, cache_dir=cache, extra_env=extra, must_not_change=v.must_not_change,
                                 timeout=v.timeout, log=log, vanilla_cache=v.vanilla_cache, compiled=compiled),
        "ast": lambda: ast.check(tc, claims, cache_dir=cache, log=log, vanilla_cache=v.vanilla_cache),
        "behavior": lambda: behavior.check(tc, claims, cache_dir=cache, tests=v.tests, timeout=v.timeout, log=log,
                                           jobs=v.jobs, vanilla_cache=v.vanilla_cache, hold=lambda side: ready[side].wait()),
        "stability": lambda: stability.check(tc, soak=soak, cache_dir=cache, threshold=v.soak_threshold, log=log),
    }
    report = Report(target=str(tc.target), toolchain=str(tc.patched), vanilla=str(tc.vanilla),
                    version=tc.version, patches=[c.name for c in claims])
    results: dict[str, LayerResult] = {}

    def layer(name: str) -> None:
        if name not in layers:
            return
        if log:
            log(f"verify: {name} layer ...")
        results[name] = done = _guarded(name, steps[name])
        if log:
            log(f"verify: {name} layer {done.status.upper()} in {done.seconds:.1f}s")

    def ast_layer() -> None:
        try:
            vanilla_compiled.wait()
            if not asm_failed.is_set():
                layer("ast")
        finally:
            ready["vanilla"].set()

    layer("version")
    asm_failed = threading.Event()
    sides = [_Side(fn, name) for name, fn in (("behavior", lambda: layer("behavior")), ("ast", ast_layer))
             if name in layers]
    if "ast" not in layers:
        ready["vanilla"].set()
    try:
        try:
            layer("asm")
        except BaseException:
            asm_failed.set()
            raise
        finally:
            ready["patched"].set()
            vanilla_compiled.set()
    finally:
        for side in sides:
            side.join()  # an error of asm waits for the other layers' commands: none is left running
    for side in sides:
        side.reraise()
    layer("stability")
    assert set(results) == set(layers) & set(ORDER), "a layer the schedule above does not run"
    report.layers = [results[name] for name in ORDER if name in results]
    return report


class _Side(threading.Thread):
    """A layer run beside the others; reraise() raises what it raised (an EnvironmentProblem)."""

    def __init__(self, fn: Callable[[], None], name: str) -> None:
        super().__init__(name=f"verify-{name}", daemon=True)
        self._fn, self._error = fn, None
        self.start()

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # handed to the caller by reraise()
            self._error = exc

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error


def verify(
    opts: Options,
    *,
    target: Target,
    toolchain: Path | None = None,
    layers: Sequence[str] | None = None,
    soak: str = "",
    log: Callable[[str], None] | None = None,
) -> Report:
    claims = load_claims(opts.series_dir)
    selected = list(layers or opts.verify.layers)
    if soak and "stability" not in selected:
        selected.append("stability")
    if soak:
        stability.parse_duration(soak)  # a bad --soak is a usage error before minutes of work
    # Without --toolchain: the build of the checkout's HEAD, resolved as release resolves it.
    tc = resolve(target=target, toolchain=toolchain or head_toolchain(opts, target), cache_dir=opts.cache.dir,
                 source_files=[f for c in claims for f in c.files], log=log)
    report = run_layers(tc, claims, opts, layers=selected, soak=soak, log=log)
    if toolchain is None:
        # The verdict beside the artifact is what `gopatch release` requires (release/gate.py).
        # Only for the build of HEAD: a --toolchain DIR is checked, never vouched for.
        path = write_verdict(report, series_dir=opts.series_dir)
        if path is not None and log:
            log(f"verify: verdict recorded in {path}")
    return report


def verify_targets(
    opts: Options,
    *,
    targets: Sequence[Target],
    toolchain: Path | None = None,
    layers: Sequence[str] | None = None,
    soak: str = "",
    log: Callable[[str], None] | None = None,
) -> list[Report]:
    """``verify`` for each target in turn, one Report each, in the order given; the verdict of
    them all is the worst (every report must pass). Without ``toolchain`` every target's build of
    HEAD is looked up first, so a missing build ends the command before minutes of checks on the
    others rather than after them."""
    if toolchain is None and len(targets) > 1:
        for target in targets:
            head_toolchain(opts, target)
    return [verify(opts, target=t, toolchain=toolchain, layers=layers, soak=soak, log=log) for t in targets]
