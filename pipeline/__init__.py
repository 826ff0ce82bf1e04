"""gopatch: turn Go toolchain source into a patched, verified, released toolchain."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gopatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
