"""gopatch: turn Go toolchain source into a patched, verified, released toolchain."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on first use, not at import: importlib.metadata costs tens of milliseconds, and
    # `python -m pipeline.cli` imports this package before pipeline.startup can install its
    # signal handlers (a Ctrl-C in that window would print a traceback).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("gopatch")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
