"""Every fatal error gopatch reports, in one place.

Logic raises one of these; only the CLI wrapper (``pipeline.cli.main``) catches the base class,
prints the message and exits with ``exit_code``. The codes are part of the interface that
scripts rely on and are documented in ``gopatch --help`` and the README:

    0  success
    1  a patch does not apply, a build failed, verification failed
    2  usage or configuration error (bad flag, bad build.cfg, malformed patch file)
    3  environment problem (missing tool, unreachable source, no Docker daemon, not a Go tree)
"""

from __future__ import annotations


class GopatchError(Exception):
    """Base of every error that ends a command with a message instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = self.message.rstrip()
        if self.hint:
            text += f"\nhint: {self.hint.rstrip()}"
        return text


class PatchDoesNotApply(GopatchError):
    """A hunk does not fit the tree; the tree was left exactly as it was."""

    exit_code = 1


class BuildFailed(GopatchError):
    """make.bash (or a cross-compile step) failed."""

    exit_code = 1


class VerificationFailed(GopatchError):
    """A verify layer or a release check did not pass."""

    exit_code = 1


class UsageError(GopatchError):
    """The command line itself is wrong (conflicting flags, unknown patch name...)."""

    exit_code = 2


class ConfigError(UsageError):
    """build.cfg, a GOPATCH_* variable or a flag holds a value gopatch cannot use."""

    exit_code = 2


class PatchFormatError(UsageError):
    """A patch file or series file is malformed (names the file and line)."""

    exit_code = 2


class EnvironmentProblem(GopatchError):
    """Something outside gopatch is missing or broken: a tool, a daemon, a source, a tree."""

    exit_code = 3


class TreeNotClean(EnvironmentProblem):
    """The Go tree has uncommitted changes and --force was not given."""

    exit_code = 3


class RecordError(EnvironmentProblem):
    """A record one stage left for the next (build.json, verify.json) cannot be used: unreadable,
    of an older or unknown schema, or missing a field. Names the file, the field and what to do."""

    exit_code = 3

    def __init__(self, message: str, *, path: object = None, field: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.field = field


class ManifestError(RecordError, UsageError):
    """A release manifest the user pointed at (``release verify DIR``, ``gather``) is not one this
    gopatch reads: a usage error, as for a malformed patch file."""

    exit_code = 2
