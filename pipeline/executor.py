"""Where build commands run: the ``Executor`` protocol and its registry.

Both executors bind the *same absolute paths* they are given (the Go tree, the bootstrap GOROOT,
the cache, the output directory), so a build step is written once with host paths and runs
unchanged on the host or inside a container.

Implementations: ``HostExecutor`` (subprocess) and ``DockerExecutor`` (docker SDK), chosen by
``[build] executor`` through ``EXECUTORS`` / ``choose_executor``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class Mount:
    path: Path  # mounted at the same absolute path inside a container
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class StepResult:
    exit_code: int
    seconds: float


class Executor(Protocol):
    name: str  # "host" or "docker"

    def describe(self) -> dict[str, str]:
        """What to record in build.json (image id, digest, base, limits...)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        mounts: Sequence[Mount],
        on_line: Callable[[str], None],
    ) -> StepResult:
        """Run argv with exactly ``env`` (nothing inherited), stream each output line to on_line.

        KeyboardInterrupt must stop the process/container, clean it up, and propagate.
        """
        ...
