"""The build of the checkout's HEAD: the one answer that verify and release share.

A build lands in ``out/<stamped version>/<goos>_<goarch>/go``, and the stamped version is a
function of the committed HEAD (the release, the number of patches, the patched tree's hash:
``pipeline.build.stamp``). So "which toolchain does this command mean?" is answered by recomputing
the version from HEAD, never by looking at what happens to be newest in out/: every VERSION file
that distpack writes carries the same mtime, so "newest" picked an arbitrary build when out/
held two versions.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Options, Target
from ..errors import EnvironmentProblem
from ..git import GoTree
from ..journal import open_tree
from .run import SourceInfo, source_info
from .stamp import stamped_version


def head_version(opts: Options) -> tuple[GoTree, SourceInfo, str]:
    """The checkout, what HEAD carries, and the version its build is stamped with."""
    tree = open_tree(opts.source.dir)
    src = source_info(tree)
    version = stamped_version(src.release, label=opts.build.version_suffix, patches=len(src.patches),
                              tree_hash=src.tree_hash)
    return tree, src, version


def artifact_dir(opts: Options, target: Target) -> tuple[str, Path]:
    """(version, out/<version>/<goos>_<goarch>) of HEAD's build for ``target`` (may not exist)."""
    _, _, version = head_version(opts)
    return version, Path(opts.build.out) / version / target.slug


def head_toolchain(opts: Options, target: Target) -> Path:
    """The GOROOT that `gopatch build` made of HEAD for ``target``; a clear error when there is none."""
    try:
        version, d = artifact_dir(opts, target)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            f"{exc.message.rstrip('.')}; without --toolchain the toolchain to check is the build of that "
            "checkout's HEAD.",
            hint=f"run `gopatch checkout`, `gopatch apply --all` and `gopatch build --target {target}`, or pass "
                 "--toolchain DIR") from None
    goroot = d / "go"
    if not (goroot / "VERSION").is_file():
        others = sorted(p.parent.parent.name for p in Path(opts.build.out).glob(f"*/{target.slug}/go/VERSION"))
        seen = f" (out/ holds builds of {', '.join(others)}, none of them HEAD's)" if others else ""
        raise EnvironmentProblem(
            f"the checkout's HEAD ({version}) has not been built for {target}: {goroot} does not exist{seen}.",
            hint=f"run `gopatch build --target {target}` first, or pass --toolchain DIR",
        )
    return goroot
