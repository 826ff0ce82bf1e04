"""`gopatch release serve DIR`: a release directory over plain HTTP.

Any static file server works (GitHub Pages, nginx, `python -m http.server`): the GOPROXY protocol
for golang.org/toolchain is plain GETs of files under proxy/. This one binds 127.0.0.1 by default,
serves only files (no directory listings: a proxy answers 404 for what it does not have), and says
the GOPROXY value once it listens (port 0 = any free port, for tests).

Note that a stock go takes a toolchain module over HTTP only when a checksum database vouches
for it, and sum.golang.org cannot know a patched toolchain (cmd/go/internal/modfetch/sumdb.go,
useSumDB); from a single ``file://`` GOPROXY it takes it with GONOSUMDB=golang.org/toolchain.
The README's "Use the patched toolchain from any Go" says what that means for users.
"""

from __future__ import annotations

import functools
import http.server
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, UsageError
from .checksums import MANIFEST


class _FilesOnly(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path: str | Any) -> None:  # type: ignore[override]
        self.send_error(404, "Not Found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(f"{self.address_string()} {format % args}")  # type: ignore[attr-defined]


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--addr {addr!r} is not HOST:PORT (e.g. 127.0.0.1:8080; port 0 picks a free one).")
    return host or "127.0.0.1", int(port)


def serve(d: Path, *, addr: str, log: Callable[[str], None]) -> None:
    d = Path(d).absolute()
    if not (d / MANIFEST).is_file():
        raise UsageError(f"{d} holds no {MANIFEST}: not a release directory made by `gopatch release`.")
    host, port = parse_addr(addr)
    handler = functools.partial(_FilesOnly, directory=str(d))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise EnvironmentProblem(f"cannot listen on {host}:{port}: {e.strerror}.",
                                 hint="choose another --addr (port 0 picks a free one)") from None
    server.log = log  # type: ignore[attr-defined]
    bound_host, bound_port = server.server_address[:2]
    base = f"http://{bound_host}:{bound_port}"
    log(f"release serve: {d} on {base}/")
    log(f"GOPROXY={base}/proxy   (Ctrl-C stops; a stock go also needs a checksum database that knows the "
        "toolchain over HTTP, see the README)")
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("release serve: stopped")
