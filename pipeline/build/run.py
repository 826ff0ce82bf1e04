"""Running a build: committed HEAD -> the plan of each target (``plan.py``) -> an ``Executor`` ->
the artifact store, each finished target published atomically."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Options, Target, host_target
from ..errors import BuildFailed, TreeNotClean
from ..git import GoTree
from ..patches.commits import applied
from ..patches.series import Patch
from ..progress import PlainProgress, Progress, stage_of
from ..records import BUILD_JSON, BuildBootstrap, BuildPatch, BuildRecord, BuildSource, BuildStep
from .artifacts import BUILD_LOG, Artifact, ArtifactStore, materialize
from .bootstrap import Bootstrap
from .executor import Executor, Mount
from .plan import BuildConfig, Step, TargetPlan, cache_key, plan_cross, plan_host
from .stamp import write_version_file

Log = Callable[[str], None]

# --------------------------------------------------------------------------------------------
# Source: committed HEAD -> a build tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    dir: Path
    head: str
    tree_hash: str
    base: str
    release: str  # first line of VERSION at HEAD
    patches: tuple[tuple[str, str, str], ...]  # (sha, subject, Gopatch-Patch name or "")




def source_info(tree: GoTree, series: Sequence[Patch] = ()) -> SourceInfo:
    """What HEAD carries. Its patches are read by ``pipeline.patches.commits.applied``, the one
    reading that status shares: given the ``series``, a commit without a trailer is named by its
    message there as here."""
    repo = tree.repo
    head = repo.head.commit
    carried = applied(tree, series)
    base = tree.base_commit
    patches = [(a.commit.sha, a.commit.subject, a.name or "") for a in carried]
    release = (head.tree / "VERSION").data_stream.read().decode("utf-8", "replace").split("\n", 1)[0].strip()
    return SourceInfo(dir=tree.path, head=head.hexsha, tree_hash=head.tree.hexsha, base=base,
                      release=release, patches=tuple(patches))


def export_head(tree: GoTree, dest: Path) -> None:
    """The committed HEAD into ``dest`` (git archive): never the user's work tree or its products."""
    dest.mkdir(parents=True)
    archive = dest.parent / "source.tar"
    with archive.open("wb") as fh:
        tree.repo.archive(fh, treeish="HEAD", format="tar")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    archive.unlink()


# --------------------------------------------------------------------------------------------
# Failure analysis
# --------------------------------------------------------------------------------------------

_FILE_REF = re.compile(r"(?:^|[\s(])(/?(?:[\w.+-]+/)*[\w.+-]+\.(?:go|s|c|h)):\d+(?::\d+)?:")


def blame_patch(log_lines: Sequence[str], patches: Sequence[tuple[str, str, str, tuple[str, ...]]]) -> str | None:
    """The patch (name or subject) that touched a file a compiler error names, if any.

    ``patches``: (sha, subject, name, touched repo paths). Error paths come in several spellings
    (absolute in the build tree, under pkg/bootstrap/src, relative to src/), so they match a
    touched path when one ends with the other at a '/' boundary.
    """
    for line in log_lines:
        for m in _FILE_REF.finditer(line):
            ref = m.group(1)
            for marker in ("/pkg/bootstrap/src/", "/go/src/", "/src/"):
                if marker in ref:
                    ref = ref.rsplit(marker, 1)[1]
                    break
            ref = ref.removeprefix("./")
            for sha, subject, name, touched in reversed(patches):
                for path in touched:
                    if path == ref or path.endswith("/" + ref):
                        label = f"patch {name!r}" if name else f"commit {sha[:12]}"
                        return f"{label} ({subject}) touched {path}, where the build failed: {line.strip()}"
    return None


def touched_files(tree: GoTree, sha: str) -> tuple[str, ...]:
    commit = tree.repo.commit(sha)
    parent = commit.parents[0] if commit.parents else None
    if parent is None:
        return ()
    return tuple(sorted({d.b_path or d.a_path for d in parent.diff(commit)}))


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class TargetResult:
    target: Target
    key: str
    artifact: Artifact
    out: Path
    cached: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"target": str(self.target), "key": self.key, "version": self.artifact.version,
                "artifact": str(self.artifact.path), "goroot": str(self.out / "go"), "out": str(self.out),
                "cached": self.cached, "seconds": round(self.seconds, 2)}


@dataclass(kw_only=True)
class BuildRequest:
    tree: GoTree
    targets: tuple[Target, ...]
    bootstrap: Bootstrap
    executor: Executor
    store: ArtifactStore
    out_dir: Path
    config: BuildConfig = field(default_factory=BuildConfig)
    label: str = "gopatch"
    jobs: int = 1
    log: Log = print
    progress: Progress | None = None
    verbose: bool = False


class _Builder:
    def __init__(self, req: BuildRequest, src: SourceInfo, version: str) -> None:
        self.req = req
        self.src = src
        self.version = version
        self.host = host_target()
        self.describe = req.executor.describe()
        self.progress = req.progress or PlainProgress(req.log)
        self._pack_lock = threading.Lock()

    def key(self, target: Target, host_key: str = "") -> str:
        return cache_key(tree_hash=self.src.tree_hash, version=self.version,
                         bootstrap_version=self.req.bootstrap.version, target=target, host=self.host,
                         config=self.req.config, executor=self.describe, host_key=host_key)

    def out_path(self, target: Target) -> Path:
        return self.req.out_dir / self.version / target.slug

    def ensure(self, target: Target, key: str, make: Callable[[Path], TargetPlan]) -> tuple[Artifact, bool, float]:
        """The artifact of ``key``: from the store, or built under the key's lock."""
        store = self.req.store
        found = store.get(key)
        if found is not None:
            return found, True, 0.0

        def waiting(holder: str) -> None:
            self.req.log(f"{target}: waiting for {holder}, which is building the same thing "
                         f"(lock {store.root / '.locks' / (key + '.lock')})")

        with store.lock(key, on_wait=waiting):
            found = store.get(key)
            if found is not None:
                return found, True, 0.0
            start = time.monotonic()
            workdir = store.workdir(key)
            try:
                plan = make(workdir)
                staged = self.run_plan(plan, key)
                artifact = store.publish(staged, key)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            return artifact, False, time.monotonic() - start

    def run_plan(self, plan: TargetPlan, key: str) -> Path:
        target = str(plan.target)
        plan.home.mkdir(parents=True, exist_ok=True)
        log_path = plan.workdir / BUILD_LOG
        tail: list[str] = []
        steps_meta = []
        mounts = [Mount(path=plan.workdir)]
        if plan.kind == "host":
            mounts.append(Mount(path=self.req.bootstrap.goroot, read_only=True))
        with log_path.open("w", encoding="utf-8") as log_file:
            for step in plan.steps:
                if self.req.verbose:
                    self.req.log(f"{target}: + cd {shlex.quote(str(step.cwd))} && env -i "
                                 + " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env) + " " + shlex.join(step.argv))
                log_file.write(f"+ {' '.join(step.argv)}\n")
                self.progress.stage(target, step.name if step.name != "make.bash" else "make.bash")

                def on_line(line: str) -> None:
                    log_file.write(line + "\n")
                    tail.append(line)
                    del tail[:-40]
                    label = stage_of(line)
                    if label:
                        self.progress.stage(target, label)
                        log_file.flush()

                # Two distpacks must not write the shared <version>.src.tar.gz name at once.
                lock = self._pack_lock if step.name == "distpack" else _NoLock()
                with lock:
                    result = self.req.executor.run(list(step.argv), cwd=step.cwd, env=step.environ,
                                                   mounts=mounts, on_line=on_line)
                steps_meta.append({"name": step.name, "argv": tuple(step.argv), "cwd": str(step.cwd),
                                   "env": step.environ, "exit_code": result.exit_code,
                                   "seconds": round(result.seconds, 2)})
                if result.exit_code != 0:
                    log_file.close()
                    self.progress.finish(target, f"FAILED ({step.name}, exit {result.exit_code})")
                    self.fail(plan, step, result.exit_code, tail, log_path, key)
        return self.assemble(plan, key, steps_meta, log_path)

    def fail(self, plan: TargetPlan, step: Step, code: int, tail: list[str], log_path: Path, key: str) -> None:
        kept = self.req.store.failed_log(key, log_path)
        touched = [(sha, subject, name, touched_files(self.req.tree, sha)) for sha, subject, name in self.src.patches]
        culprit = blame_patch(tail, touched)
        message = (f"{step.name} failed for {plan.target} (exit {code}). Last lines of the build log:\n"
                   + "\n".join(tail[-40:]) + f"\nFull log: {kept}")
        if culprit:
            message += f"\nLikely cause: {culprit}"
        raise BuildFailed(message, hint="fix the patch (gopatch apply/revert), commit, and build again"
                          if culprit else None)

    def assemble(self, plan: TargetPlan, key: str, steps_meta: list[dict[str, Any]], log_path: Path) -> Path:
        """workdir/artifact: go/ (the target's archive, extracted), distpack/, build.json, build.log."""
        staged = plan.workdir / "artifact"
        (staged / "distpack").mkdir(parents=True)
        packs = plan.tree / "pkg" / "distpack"
        t = plan.target
        dash = f"{t.goos}-{t.goarch}"
        # The source archive, the target's binary archive and its golang.org/toolchain module files.
        wanted = [p for p in packs.iterdir() if p.name.endswith(".src.tar.gz") or f".{dash}." in p.name]
        hashes = {}
        for p in sorted(wanted):
            shutil.copy2(p, staged / "distpack" / p.name)
            hashes[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        archive = next((p for p in wanted if p.name in (f"{self.version}.{dash}.tar.gz", f"{self.version}.{dash}.zip")), None)
        if archive is None:
            raise BuildFailed(f"{plan.target}: distpack wrote no {self.version}.{dash} archive in {packs} "
                              f"(found: {', '.join(sorted(p.name for p in packs.iterdir()))}).")
        _extract(archive, staged)  # archives hold go/...
        shutil.move(str(log_path), staged / BUILD_LOG)
        record = BuildRecord(
            version=self.version, target=str(t), key=key, kind=plan.kind,
            source=BuildSource(dir=str(self.src.dir), head=self.src.head, tree=self.src.tree_hash,
                               base=self.src.base, release=self.src.release,
                               patches=tuple(BuildPatch(commit=s, subject=sub, name=n) for s, sub, n in self.src.patches)),
            bootstrap=BuildBootstrap(goroot=str(self.req.bootstrap.goroot), version=self.req.bootstrap.version,
                                     origin=self.req.bootstrap.origin),
            config=asdict(self.req.config), host=str(self.host),
            executor=dict(self.describe), gopatch=__version__, steps=tuple(BuildStep(**s) for s in steps_meta),
            seconds=round(sum(s["seconds"] for s in steps_meta), 2),
            archives=hashes, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        record.write(staged / BUILD_JSON)
        return staged


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _extract(archive: Path, dest: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="tar")


def build(req: BuildRequest, *, version: str, src: SourceInfo) -> list[TargetResult]:
    """Build every requested target (host first, then the others in parallel); publish to out/."""
    b = _Builder(req, src, version)
    host = b.host
    host_key = b.key(host)
    cross = [t for t in req.targets if t != host]
    results: list[TargetResult] = []

    def make_host(workdir: Path) -> TargetPlan:
        export_head(req.tree, workdir / "go")
        write_version_file(workdir / "go" / "VERSION", version)
        return plan_host(target=host, workdir=workdir, bootstrap=req.bootstrap.goroot, config=req.config)

    host_artifact, cached, seconds = b.ensure(host, host_key, make_host)
    b.progress.finish(str(host), f"{'cached' if cached else 'built'} {host_artifact.path}")
    # The host toolchain of the same build always lands in out/ too: verify compiles a cross
    # target's sources with it.
    results.append(TargetResult(target=host, key=host_key, artifact=host_artifact, out=b.out_path(host),
                                cached=cached, seconds=seconds))

    def one(target: Target) -> TargetResult:
        key = b.key(target, host_key)

        def make_cross(workdir: Path) -> TargetPlan:
            shutil.copytree(host_artifact.goroot, workdir / "go", symlinks=True)
            return plan_cross(target=target, workdir=workdir, config=req.config)

        artifact, hit, secs = b.ensure(target, key, make_cross)
        b.progress.finish(str(target), f"{'cached' if hit else 'built'} {artifact.path}")
        return TargetResult(target=target, key=key, artifact=artifact, out=b.out_path(target), cached=hit, seconds=secs)

    if cross:
        pool = ThreadPoolExecutor(max_workers=max(1, req.jobs), thread_name_prefix="gopatch-build")
        futures = [pool.submit(one, t) for t in cross]
        try:
            results.extend(f.result() for f in futures)
        except BaseException:
            req.executor.cancel()  # Ctrl-C or a failed target: stop the others' steps now
            for f in futures:
                f.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
    for r in results:
        materialize(r.artifact, r.out)
    return results


@dataclass(frozen=True, kw_only=True)
class PlannedTarget:
    """What ``gopatch build --dry-run`` reports for one target: its cache key, whether the
    cache already holds it, and the steps a build would run."""

    target: Target
    key: str
    cached: bool
    out: Path
    plan: TargetPlan

    def to_json(self) -> dict[str, object]:
        return {"target": str(self.target), "key": self.key, "cached": self.cached, "out": str(self.out),
                "kind": self.plan.kind,
                "steps": [{"name": st.name, "argv": list(st.argv), "cwd": str(st.cwd), "env": dict(st.env)}
                          for st in self.plan.steps]}


def plan_build(req: BuildRequest, *, version: str, src: SourceInfo) -> list[PlannedTarget]:
    """The build of ``req`` as data, without running a step (the work directories named in
    the steps are the ones a build would create)."""
    b = _Builder(req, src, version)
    host_key = b.key(b.host)
    out = []
    for target in (b.host, *[t for t in req.targets if t != b.host]):
        key = host_key if target == b.host else b.key(target, host_key)
        workdir = req.store.root / ".tmp" / f"{key[:16]}-XXXXXXXX"  # mkdtemp picks the suffix
        plan = (plan_host(target=target, workdir=workdir, bootstrap=req.bootstrap.goroot, config=req.config)
                if target == b.host else plan_cross(target=target, workdir=workdir, config=req.config))
        out.append(PlannedTarget(target=target, key=key, cached=req.store.get(key) is not None,
                                 out=b.out_path(target), plan=plan))
    return out


def build_from_options(opts: Options, *, targets: Sequence[Target], force: bool = False,
                       log: Log = print, progress: Progress | None = None,
                       verbose: bool = False, dry_run: bool = False) -> list[TargetResult] | list[PlannedTarget]:
    """``gopatch build``: the committed HEAD of [source] dir -> stamped toolchains in out/."""
    from ..journal import open_tree
    from .bootstrap import check_minimum, resolve
    from .executor import choose_executor
    from .stamp import stamped_version

    tree = open_tree(opts.source.dir)
    if tree.is_dirty():
        if not force:
            raise TreeNotClean(
                f"{tree.path} has uncommitted changes; gopatch builds the committed HEAD, so they "
                "would silently be left out.",
                hint="commit them (or gopatch apply/revert), or pass --force to build HEAD anyway",
            )
        log(f"notice: {tree.path} has uncommitted changes; building the committed HEAD without them (--force).")
    src = source_info(tree)
    version = stamped_version(src.release, label=opts.build.version_suffix, patches=len(src.patches),
                              tree_hash=src.tree_hash)
    bootstrap = resolve(opts.bootstrap.go, cache_dir=opts.cache.dir, path_env=os.environ.get("PATH"), log=log)
    check_minimum(bootstrap, tree.path)
    executor = choose_executor(opts, log)
    config = BuildConfig(cgo_enabled=opts.build.cgo_enabled, goexperiment=opts.build.goexperiment,
                         extra_env=opts.build.extra_env)
    if verbose:
        log(f"version {version}; bootstrap {bootstrap.version} at {bootstrap.goroot} ({bootstrap.origin}); "
            f"executor {executor.describe()}")
    req = BuildRequest(tree=tree, targets=tuple(targets), bootstrap=bootstrap, executor=executor,
                       store=ArtifactStore(opts.cache.dir), out_dir=opts.build.out, config=config,
                       label=opts.build.version_suffix, jobs=opts.build.jobs, log=log, progress=progress,
                       verbose=verbose)
    if dry_run:
        return plan_build(req, version=version, src=src)
    return build(req, version=version, src=src)
