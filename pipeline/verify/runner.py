"""Run the selected layers in order and assemble one Report (the stage function the CLI calls)."""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..build.head import head_toolchain
from ..config import VERIFY_LAYERS, Options, Target
from ..errors import VerificationFailed
from . import asm, ast, behavior, stability, version
from .claims import Claim, load_claims
from .model import FAIL, LayerResult, Report
from .toolchains import Toolchains, resolve
from .verdict import write_verdict

ORDER = VERIFY_LAYERS  # the one list of layer names, in the order they run (config.py)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _guarded(name: str, fn: Callable[[], LayerResult]) -> LayerResult:
    """A layer that times out or finds patched code that does not even compile has failed; it must
    not hide the verdicts of the other layers. Environment problems still end the command (exit 3)."""
    t0 = time.monotonic()
    cpu0 = _cpu()
    try:
        result = fn()
        # CPU seconds of gopatch and every process it waited for: on a shared machine the wall time
        # says as much about the neighbours as about the layer; the CPU time does not.
        result.details["cpu_seconds"] = round(_cpu() - cpu0, 1)
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
    extra = (*opts.build.extra_env, *((("GOEXPERIMENT", opts.build.goexperiment),) if opts.build.goexperiment else ()))
    steps: dict[str, Callable[[], LayerResult]] = {
        "version": lambda: version.check(tc, cache_dir=cache, suffix=opts.build.version_suffix,
                                         patch_count=len(claims), timeout=v.timeout, log=log),
        "asm": lambda: asm.check(tc, claims, cache_dir=cache, extra_env=extra, must_not_change=v.must_not_change,
                                 timeout=v.timeout, log=log, vanilla_cache=v.vanilla_cache),
        "ast": lambda: ast.check(tc, claims, cache_dir=cache, log=log, vanilla_cache=v.vanilla_cache),
        "behavior": lambda: behavior.check(tc, claims, cache_dir=cache, tests=v.tests, timeout=v.timeout, log=log,
                                           jobs=v.jobs, vanilla_cache=v.vanilla_cache),
        "stability": lambda: stability.check(tc, soak=soak, cache_dir=cache, threshold=v.soak_threshold, log=log),
    }
    report = Report(target=str(tc.target), toolchain=str(tc.patched), vanilla=str(tc.vanilla),
                    version=tc.version, patches=[c.name for c in claims])
    for name in ORDER:
        if name in layers:
            if log:
                log(f"verify: {name} layer ...")
            report.layers.append(_guarded(name, steps[name]))
            if log:
                done = report.layers[-1]
                log(f"verify: {name} layer {done.status.upper()} in {done.seconds:.1f}s")
    return report


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
