"""The builder image: render the Dockerfile, assemble its build context, build it once, tag it.

The engine may have **no images and no registry** (README: "Facts the design rests on"), so the default base is
``scratch`` and gopatch assembles the whole userland from files on this machine: Debian's static
bash (``bash-static``) and static busybox (``busybox-static``) with the applet links make.bash and
cmd/dist call (``/usr/bin/env`` for make.bash's shebang, uname, rm, mkdir, cp, mv, sed, grep...),
``/etc/passwd`` + ``/etc/group`` naming the build user and a world-writable ``/tmp``. Go is not in the image: the
bootstrap GOROOT is mounted read-only at its host path when a step runs.

Any other ``[docker] base`` (debian:bookworm-slim, golang:1.26) renders the same template with
``FROM <base>`` and no rootfs, for users who have a registry or a preloaded image.

The tag is ``gopatch-builder:<sha256(rendered Dockerfile + context)>[:12]``: an image whose tag
exists is reused without building, and any change of template, base or static binaries makes a
new tag. Building happens under a file lock so two gopatch processes never build it twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from .. import cmd
from ..atomic import publish_dir
from ..errors import ConfigError, EnvironmentProblem
from ..locking import file_lock
from .dockerclient import docker_client
from .ownership import build_user

if TYPE_CHECKING:
    from ..config import Options

Log = Callable[[str], None]

REPOSITORY = "gopatch-builder"
# containers/ at the top of the repository is the one copy; pipeline/containers links to it so
# that a wheel carries it as package data (pyproject.toml) and an installed gopatch finds it.
BUNDLED_TEMPLATE = Path(__file__).resolve().parent.parent / "containers" / "builder.Dockerfile.j2"

# Where the static binaries usually are once `apt-get install bash-static busybox-static` ran.
BASH_CANDIDATES = (Path("/bin/bash-static"), Path("/usr/bin/bash-static"))
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))

# What make.bash and cmd/dist call besides bash builtins (checked against go1.27.3's
# src/make.bash and src/cmd/dist: uname, the file tools, sed/grep in make.bash's bootstrap
# probe, env for the `#!/usr/bin/env bash` shebang). Every busybox applet is linked; these must be.
REQUIRED_TOOLS = ("usr/bin/env", "bin/sh", "bin/bash", "bin/uname", "bin/rm", "bin/mkdir", "bin/cp",
                  "bin/mv", "bin/cat", "bin/sed", "bin/grep", "bin/ls", "bin/ln", "bin/chmod",
                  "bin/touch", "bin/pwd", "bin/date", "usr/bin/find", "usr/bin/head", "usr/bin/tail",
                  "usr/bin/tr", "usr/bin/xargs", "bin/tar", "bin/gzip", "usr/bin/sha256sum")


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    tag: str  # gopatch-builder:<content_sha256[:12]>
    id: str  # sha256:... as the engine reports it
    dockerfile_sha256: str  # of the rendered Dockerfile alone
    content_sha256: str  # of the rendered Dockerfile and every context file: the tag's source
    base: str


@dataclass(frozen=True, kw_only=True)
class ContextEntry:
    """One member of the build context tar: a directory, a regular file or a symlink."""

    path: str  # relative, POSIX: "rootfs/bin/bash"
    mode: int
    data: bytes | None = None  # regular file
    link: str | None = None  # symlink target

    @property
    def kind(self) -> str:
        return "link" if self.link is not None else "file" if self.data is not None else "dir"


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    dockerfile: str
    entries: tuple[ContextEntry, ...] = field(default_factory=tuple)

    @property
    def dockerfile_sha256(self) -> str:
        return hashlib.sha256(self.dockerfile.encode()).hexdigest()

    @property
    def content_sha256(self) -> str:
        """Covers everything the image is made of, in a fixed order, with unambiguous framing."""
        h = hashlib.sha256()
        h.update(b"Dockerfile\0" + self.dockerfile.encode() + b"\0")
        for e in sorted(self.entries, key=lambda e: e.path):
            body = e.data if e.data is not None else (e.link or "").encode()
            h.update(f"{e.kind}\0{e.path}\0{e.mode:o}\0{len(body)}\0".encode())
            h.update(body)
        return h.hexdigest()

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.content_sha256[:12]}"

    def tar_bytes(self) -> bytes:
        """The context as a deterministic tar (root-owned, mtime 0), Dockerfile first."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, ContextEntry(path="Dockerfile", mode=0o644, data=self.dockerfile.encode()))
            for e in sorted(self.entries, key=lambda e: e.path):
                _add(tar, e)
        return buf.getvalue()


def _add(tar: tarfile.TarFile, e: ContextEntry) -> None:
    info = tarfile.TarInfo(e.path)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = e.mode, 0, 0, 0, "root", "root"
    if e.link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, e.link
        tar.addfile(info)
    elif e.data is not None:
        info.size = len(e.data)
        tar.addfile(info, io.BytesIO(e.data))
    else:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def template_path(opts: Options) -> Path:
    """``[docker] template``; the default falls back to the template shipped with gopatch when
    the working directory has no containers/ of its own."""
    path = opts.docker.template
    if path.is_file():
        return path
    origin = opts.origins.get("docker.template")
    if (origin is None or origin.kind == "default") and BUNDLED_TEMPLATE.is_file():
        return BUNDLED_TEMPLATE
    raise ConfigError(f"[docker] template = {path}: no such file ({origin or 'default'}).",
                      hint=f"point it at a jinja2 Dockerfile template such as {BUNDLED_TEMPLATE}")


def render_dockerfile(template: Path, *, base: str, labels: dict[str, str] | None = None) -> str:
    """Render the builder Dockerfile template; a template error names the file and line."""
    if not base or any(c.isspace() for c in base):
        raise ConfigError(f"[docker] base = {base!r} is not an image reference such as scratch or debian:bookworm-slim.")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template.parent)),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
    )
    try:
        text = env.get_template(template.name).render(
            base=base, scratch=base == "scratch",
            labels={"gopatch.builder": "1", "gopatch.base": base, **(labels or {})},
        )
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or template}:{exc.lineno}: Dockerfile template error: {exc.message}.") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"{template}: Dockerfile template uses an unknown variable: {exc.message}.",
                          hint="the template gets base, scratch and labels") from None
    except OSError as exc:
        raise ConfigError(f"{template}: cannot read the Dockerfile template: {exc.strerror}.") from None
    return text if text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------------------------
# The scratch rootfs
# --------------------------------------------------------------------------------------------


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP): it runs in an image
    that has no libc and no dynamic loader. Debian's plain ``busybox`` package is dynamic, so
    /bin/busybox alone proves nothing."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            end = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(end + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from(end + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


@dataclass(frozen=True, kw_only=True)
class StaticTools:
    bash: Path
    busybox: Path


def find_static_tools(cache_dir: Path, log: Log | None = None, *, fetch: bool = True,
                      bash_candidates: Sequence[Path] = BASH_CANDIDATES,
                      busybox_candidates: Sequence[Path] = BUSYBOX_CANDIDATES,
                      env: dict[str, str] | None = None) -> StaticTools:
    """Static bash and busybox: installed ones first, then a copy unpacked into the cache, then
    (``fetch``) ``apt-get download`` + ``dpkg-deb -x`` into the cache, which needs no root."""
    unpacked = cache_dir / "static-tools" / "root"
    bash_paths = [*bash_candidates, unpacked / "bin" / "bash-static", unpacked / "usr" / "bin" / "bash-static"]
    busybox_paths = [*busybox_candidates, unpacked / "bin" / "busybox", unpacked / "usr" / "bin" / "busybox"]

    def pick() -> StaticTools | None:
        bash = next((p for p in bash_paths if is_static_elf(p)), None)
        busybox = next((p for p in busybox_paths if is_static_elf(p)), None)
        return StaticTools(bash=bash, busybox=busybox) if bash and busybox else None

    found = pick()
    if found is None and fetch:
        _fetch_static_tools(unpacked, log, env)
        found = pick()
    if found is None:
        raise EnvironmentProblem(
            "the scratch builder image needs a static bash and a static busybox, and neither "
            f"{', '.join(map(str, bash_candidates))} nor {', '.join(map(str, busybox_candidates))} "
            f"(nor a copy in {unpacked}) is one.",
            hint="apt-get install -y bash-static busybox-static (or set [docker] base to an image "
                 "your engine has, such as debian:bookworm-slim)",
        )
    return found


def _fetch_static_tools(dest: Path, log: Log | None, env: dict[str, str] | None) -> None:
    """apt-get download + dpkg-deb -x: no root, no install, just the files, renamed into place."""
    environ = dict(os.environ if env is None else env)
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool, path=environ.get("PATH")) is None:
            return  # not a Debian-like system: the caller explains what to install
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.parent / ".fetch.lock"):
        if dest.is_dir():
            return
        work = Path(tempfile.mkdtemp(prefix=".fetch.", dir=dest.parent))
        try:
            cmd.run(["apt-get", "download", "bash-static", "busybox-static"], cwd=work, env=environ, log=log)
            root = work / "root"
            for deb in sorted(work.glob("*.deb")):
                cmd.run(["dpkg-deb", "-x", deb, root], env=environ, log=log)
            publish_dir(root, dest)
        except EnvironmentProblem as exc:
            if log:
                log(f"notice: could not fetch bash-static/busybox-static: {exc.message.splitlines()[0]}")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def busybox_applets(busybox: Path) -> list[str]:
    """Where busybox's applets belong (``bin/ls``, ``usr/bin/env``...), from the binary itself."""
    try:
        out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                             check=True, env={"PATH": ""}, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"{busybox} --list-full failed ({exc}); is it a busybox binary for this machine?") from None
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def passwd_entries(uid: int, gid: int) -> tuple[str, str]:
    """/etc/passwd and /etc/group: root, nobody and the build user (as ``gopatch``, home /tmp).

    Docker runs a numeric uid:gid whether or not it is listed; the entry is for the tools that
    ask who they are (id, whoami, Go's os/user) so that they answer instead of failing. The build
    user is the one ``pipeline.build.ownership.build_user`` picks (never root), so the image differs
    per build user: its tag and id, and with the id the build cache key, follow.
    """
    users = [("root", 0, 0, "/tmp"), ("nobody", 65534, 65534, "/nonexistent")]
    groups = [("root", 0), ("nogroup", 65534)]
    if uid not in (0, 65534):
        users.append(("gopatch", uid, gid, "/tmp"))
    if gid not in (0, 65534):
        groups.append(("gopatch", gid))
    passwd = "".join(f"{n}:x:{u}:{g}:{n}:{h}:/bin/bash\n" for n, u, g, h in users)
    group = "".join(f"{n}:x:{g}:\n" for n, g in groups)
    return passwd, group


def scratch_rootfs(tools: StaticTools, *, uid: int, gid: int) -> tuple[ContextEntry, ...]:
    """rootfs/ for ``COPY rootfs/ /``: the userland make.bash needs, and nothing else."""
    entries: dict[str, ContextEntry] = {}

    def add_dir(path: str, mode: int = 0o755) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in entries:
                entries[sub] = ContextEntry(path=sub, mode=mode if i == len(parts) else 0o755)

    def add_file(path: str, data: bytes, mode: int) -> None:
        add_dir(path.rsplit("/", 1)[0])
        entries[path] = ContextEntry(path=path, mode=mode, data=data)

    add_file("rootfs/bin/bash", tools.bash.read_bytes(), 0o755)
    add_file("rootfs/bin/busybox", tools.busybox.read_bytes(), 0o755)
    for applet in busybox_applets(tools.busybox):
        target = f"rootfs/{applet}"
        if target in entries or applet in ("bin/sh",):
            continue
        add_dir(target.rsplit("/", 1)[0])
        entries[target] = ContextEntry(path=target, mode=0o777, link="/bin/busybox")
    # sh is bash: scripts written for /bin/sh on a Debian builder expect more than ash offers.
    entries["rootfs/bin/sh"] = ContextEntry(path="rootfs/bin/sh", mode=0o777, link="bash")
    passwd, group = passwd_entries(uid, gid)
    add_file("rootfs/etc/passwd", passwd.encode(), 0o644)
    add_file("rootfs/etc/group", group.encode(), 0o644)
    add_dir("rootfs/tmp", 0o1777)
    # No /root: a mount under it (a root-run cache in /root/.cache) would sit behind a 0700
    # directory that the unprivileged build user cannot traverse. Docker creates mount points'
    # parents 0755.
    return tuple(entries[k] for k in sorted(entries))


def build_context(opts: Options, log: Log | None = None, *, uid: int | None = None,
                  gid: int | None = None, tools: StaticTools | None = None) -> BuildContext:
    """Everything the image is made of, in memory; nothing touches the engine."""
    base = opts.docker.base
    dockerfile = render_dockerfile(template_path(opts), base=base)
    if base != "scratch":
        return BuildContext(dockerfile=dockerfile)
    tools = tools or find_static_tools(opts.cache.dir, log)
    if uid is None or gid is None:
        uid, gid = build_user(opts.docker.user)
    return BuildContext(dockerfile=dockerfile, entries=scratch_rootfs(tools, uid=uid, gid=gid))


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _info(image: Any, ctx: BuildContext, base: str) -> ImageInfo:
    return ImageInfo(tag=ctx.tag, id=image.id, dockerfile_sha256=ctx.dockerfile_sha256,
                     content_sha256=ctx.content_sha256, base=base)


def ensure_image(opts: Options, log: Log, *, client: Any = None, context: BuildContext | None = None) -> ImageInfo:
    """The builder image for ``opts``: reused when its tag exists, else built from the context."""
    import docker.errors

    if client is None:
        client = docker_client()
    ctx = context or build_context(opts, log)
    base = opts.docker.base
    try:
        return _info(client.images.get(ctx.tag), ctx, base)
    except docker.errors.ImageNotFound:
        pass
    with file_lock(opts.cache.dir / "builder" / ".build.lock",
                   on_wait=lambda who: log(f"waiting for {who} to finish building {ctx.tag}")):
        try:  # another process may have built it while we waited
            return _info(client.images.get(ctx.tag), ctx, base)
        except docker.errors.ImageNotFound:
            pass
        log(f"building the builder image {ctx.tag} (base {base}, {len(ctx.entries)} context entries)")
        try:
            image, _logs = client.images.build(
                fileobj=io.BytesIO(ctx.tar_bytes()), custom_context=True, tag=ctx.tag,
                rm=True, forcerm=True, pull=False, network_mode="none",
                labels={"gopatch.content_sha256": ctx.content_sha256},
            )
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream") or c.get("error") or "").strip()
                     for c in list(exc.build_log)[-15:] if isinstance(c, dict)]
            tail = "\n".join(line for line in lines if line and line != exc.msg.strip())
            hint = (f"the engine has no image {base!r} and may have no registry: `docker pull {base}` "
                    "or `docker load` it, or set [docker] base = scratch") if base != "scratch" else None
            raise EnvironmentProblem(f"building the builder image {ctx.tag} failed: {exc.msg}\n{tail}",
                                     hint=hint) from None
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"building the builder image {ctx.tag} failed: {exc.explanation or exc}") from None
    return _info(image, ctx, base)
