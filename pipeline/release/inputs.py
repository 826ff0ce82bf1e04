"""What a release is made of: the checkout's HEAD, its built artifacts in out/, their verdicts.

``gopatch release`` never builds: it takes what ``gopatch build`` left in
``out/<version>/<goos>_<goarch>/`` for the committed HEAD of the checkout (the version is
recomputed from HEAD exactly as the build stamps it, so an artifact of an older HEAD is never
picked up) and the distpack archives and golang.org/toolchain module files that build wrote in
the same make.bash run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..build.head import artifact_dir, head_version
from ..build.run import SourceInfo, source_info
from ..config import Options, Target
from ..errors import EnvironmentProblem, RecordError, VerificationFailed
from ..git import GoTree
from ..patches.series import SERIES_FILE, load_series
from ..records import BUILD_JSON, BuildRecord, Verdict
from . import gate
from .checksums import archive_name, sha256_file, source_archive_name
from .proxy import module_files


@dataclass(frozen=True, kw_only=True)
class TargetInput:
    target: Target
    dir: Path  # out/<version>/<goos>_<goarch>
    build: BuildRecord  # its build.json
    archive: Path  # distpack/<version>.<goos>-<goarch>.tar.gz (.zip)
    source_archive: Path  # distpack/<version>.src.tar.gz
    modules: dict[str, Path]  # zip|mod|info -> distpack/v0.0.1-<version>.<goos>-<goarch>.<ext> (golang.org/toolchain)
    verdict: Verdict | None  # verify.json, None with --skip-verify and none there


@dataclass(frozen=True, kw_only=True)
class ReleaseInputs:
    tree: GoTree
    src: SourceInfo
    version: str
    series_dir: Path
    patches: list[dict[str, str]]  # name, sha256 of the patch file, subject, commit
    targets: tuple[TargetInput, ...]


def _named(tree: GoTree, src: SourceInfo, series_dir: Path) -> SourceInfo:
    """``src`` with a commit that has no ``Gopatch-Patch`` trailer named by its message, as
    `gopatch status` names it (a commit made by hand, or by ``git am`` of a series file)."""
    if all(name for _, _, name in src.patches) or not (series_dir / SERIES_FILE).is_file():
        return src
    return source_info(tree, load_series(series_dir))


def _patches(src: SourceInfo, series_dir: Path) -> list[dict[str, str]]:
    names = [name for _, _, name in src.patches]
    if unnamed := [sha[:12] for sha, _, name in src.patches if not name]:
        raise EnvironmentProblem(
            f"the checkout carries commit(s) {', '.join(unnamed)} that are not patches of the series, so "
            "the release could not say what went into it.",
            hint="turn them into patch files with `gopatch extract`, or revert them",
        )
    digests = gate.patch_digests(series_dir, names)
    if missing := [d["name"] for d in digests if not d["sha256"]]:
        raise EnvironmentProblem(
            f"the checkout carries the patch(es) {', '.join(missing)}, but {series_dir} has no such patch file; "
            "a release records each patch file by its sha256.",
            hint="pass --series DIR with the series the checkout was patched from",
        )
    return [{"name": d["name"], "sha256": d["sha256"], "subject": subject, "commit": sha}
            for d, (sha, subject, _) in zip(digests, src.patches, strict=True)]


def collect(opts: Options, targets: tuple[Target, ...], *, skip_verify: bool) -> ReleaseInputs:
    """The artifacts of ``targets`` for HEAD, each checked to be built, intact and verified."""
    tree, src, version = head_version(opts)
    series_dir = opts.series_dir
    src = _named(tree, src, series_dir)
    patches = _patches(src, series_dir)
    gate_patches = [{"name": p["name"], "sha256": p["sha256"]} for p in patches]
    found: list[TargetInput] = []
    unverified: list[str] = []
    for target in targets:
        _, d = artifact_dir(opts, target)
        if not (d / BUILD_JSON).is_file():
            raise EnvironmentProblem(
                f"{d} holds no build of {target} for the checkout's HEAD ({version}).",
                hint=f"run `gopatch build --target {target}` first (release never builds)",
            )
        # Here an older gopatch's record is an error, not a miss: release never builds, so the
        # user has to (the error says how).
        build = BuildRecord.load(d / BUILD_JSON)
        archive = d / "distpack" / archive_name(version, target)
        source = d / "distpack" / source_archive_name(version)
        recorded = build.archives
        modules = {ext: d / "distpack" / name for ext, name in module_files(version, target).items()}
        for path in (archive, source, *modules.values()):
            if not path.is_file():
                raise EnvironmentProblem(f"{path} is missing: the build of {target} did not leave that distpack file.",
                                         hint=f"rebuild it: gopatch build --target {target} --force")
            if recorded.get(path.name) != sha256_file(path):
                raise EnvironmentProblem(
                    f"{path} does not have the sha256 its {d / BUILD_JSON} records: the file changed after the build.",
                    hint=f"remove {d} and run `gopatch build --target {target}` again (a cache hit restores it)",
                )
        verdict: Verdict | None
        try:
            verdict = gate.read_verdict(d)
            problem = gate.verdict_problem(verdict, key=build.key, patches=gate_patches, required=opts.verify.layers)
        except RecordError as e:  # an older gopatch's verdict (or a broken one): verify again
            verdict, problem = None, ("stale", f"{e.message} ({e.hint})")
        if problem is not None:
            if not skip_verify:
                unverified.append(f"{target}: {problem[1]}")
            verdict = None if problem[0] in ("missing", "stale") else verdict
        found.append(TargetInput(target=target, dir=d, build=build, archive=archive, source_archive=source,
                                 modules=modules, verdict=verdict))
    if unverified:
        raise VerificationFailed(
            "only verified toolchains are released, and " + "; ".join(unverified) + ".",
            hint="run `gopatch verify --target <os/arch>` for each, or pass --skip-verify (recorded in the manifest)",
        )
    return ReleaseInputs(tree=tree, src=src, version=version, series_dir=series_dir, patches=patches,
                         targets=tuple(found))
