"""Who a build container runs as, and lending it the directories it writes.

A build step never runs as root, not even in a container without capabilities: make.bash runs
code from the patched tree (and a patch is input we did not write), and root in a container is
still root on every file the container can reach. So:

- a caller that is not root builds as itself (its uid:gid), and the files the build writes into
  the mounted work directory simply belong to it, as they always did;
- a caller that is root (CI, most containers) builds as a fixed unprivileged uid, ``UNPRIVILEGED``
  unless ``[docker] user`` says otherwise. For the time of each step, the writable mounts are
  handed to that uid (``Loan.take``); afterwards, however the step ended, everything is handed
  back (``Loan.give_back``): each file to the owner it had, each new file to the caller. The
  artifacts are then the caller's, as if the build had run as root.

The uid is invisible to the toolchain's bytes: make.bash and ``go tool distpack`` write
archives with uid/gid 0 whatever the builder's ids (cmd/distpack builds each tar header from a
``fileInfo`` without ``Sys()``), which is why the e2e tests find Docker and host builds
bit-identical.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..config import BuildUser
from ..errors import ConfigError, EnvironmentProblem

# distroless's "nonroot" (also what Chainguard images use): not an account on a usual host, so a
# file it leaves behind by accident is recognisably the build's, and never root's or a user's.
UNPRIVILEGED = (65532, 65532)


def caller_ids() -> tuple[int, int]:
    return os.geteuid(), os.getegid()


def build_user(configured: BuildUser, *, caller: tuple[int, int] | None = None) -> tuple[int, int]:
    """The uid:gid of the build container for ``[docker] user`` and the calling process.

    auto: the caller's ids, or ``UNPRIVILEGED`` when the caller is root. An explicit UID:GID
    (config.py has already refused 0) needs a root caller unless it is the caller's own: only
    root can hand the work directory to another uid and take it back.
    """
    caller = caller or caller_ids()
    if configured.auto:
        return UNPRIVILEGED if caller[0] == 0 else caller
    wanted = (int(configured.uid), int(configured.gid))  # type: ignore[arg-type]
    if caller[0] != 0 and wanted != caller:
        raise ConfigError(
            f"[docker] user = {configured} needs gopatch to run as root: the build's work directory "
            f"belongs to uid {caller[0]}, and only root can hand it to uid {wanted[0]} and take it "
            "back afterwards.",
            hint=f"leave [docker] user at auto (the build then runs as {caller[0]}:{caller[1]}), or set it "
                 f"to {caller[0]}:{caller[1]}",
        )
    return wanted


def _entries(root: Path, skip: frozenset[Path]) -> Iterator[tuple[str, os.stat_result]]:
    """``root`` and everything under it, without following symlinks or entering ``skip``."""
    with contextlib.suppress(FileNotFoundError):
        yield str(root), os.lstat(root)
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinks to directories
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):  # a step may delete as we walk
                yield path, os.lstat(path)


class Loan:
    """The tree at ``root`` handed to ``user`` for a step, then handed back.

    ``take`` records each entry's owner *before* changing it, so a take that is interrupted
    half-way (Ctrl-C) is still given back exactly. ``give_back`` restores every recorded owner
    and gives what the step created (owned by ``user``) to ``caller``; entries it neither
    recorded nor created (never taken) keep their owner. ``skip`` holds paths never touched:
    read-only mounts nested in the tree, which must stay as they are.
    """

    def __init__(self, root: Path, *, user: tuple[int, int], caller: tuple[int, int],
                 skip: Iterable[Path] = ()) -> None:
        self.root = root
        self.user = user
        self.caller = caller
        self.skip = frozenset(skip)
        self.owners: dict[str, tuple[int, int]] = {}

    def take(self) -> None:
        for path, st in _entries(self.root, self.skip):
            self.owners[path] = (st.st_uid, st.st_gid)
            if (st.st_uid, st.st_gid) != self.user:
                try:
                    os.lchown(path, *self.user)
                except OSError as exc:
                    raise EnvironmentProblem(
                        f"cannot hand {path} to the build user {self.user[0]}:{self.user[1]}: {exc.strerror}.",
                        hint="the build's work directory must be on a file system where root can chown "
                             "(not a read-only or root-squashed NFS mount); see [cache] dir",
                    ) from None

    def give_back(self) -> None:
        """Every entry back; one that fails does not stop the others (reported at the end)."""
        failed: list[str] = []
        for path, st in _entries(self.root, self.skip):
            now = (st.st_uid, st.st_gid)
            owner = self.owners.get(path)
            if owner is None:
                if st.st_uid != self.user[0]:
                    continue  # neither taken nor made by the step
                owner = self.caller
            if now != owner:
                try:
                    os.lchown(path, *owner)
                except OSError as exc:
                    failed.append(f"{path} ({exc.strerror})")
        self.owners.clear()
        if failed:
            raise EnvironmentProblem(
                f"could not hand {len(failed)} file(s) of {self.root} back from the build user "
                f"{self.user[0]}:{self.user[1]}, first {failed[0]}.")
