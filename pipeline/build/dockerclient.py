"""A docker SDK client that has answered, or an EnvironmentProblem that says how to get one.

Its own module so that the executor and the builder image both use it without importing each other.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..errors import EnvironmentProblem

DOCKERD_HINT = (
    "start a daemon as root with `dockerd --iptables=false --ip6tables=false --bridge=none &` "
    "(install it with `apt-get install -y docker.io`; remove a stale /var/run/docker.pid first), "
    "or build on this machine with --executor host"
)


def docker_client(timeout: float | None = 60) -> Any:
    """A docker SDK client that has answered a ping, or EnvironmentProblem with the hint."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EnvironmentProblem(f"the docker Python SDK is not importable ({exc}).",
                                 hint="pip install 'docker>=7.1'") from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):
        # Probe the socket ourselves first: the SDK connects while constructing the client and
        # leaks that socket when the daemon is missing (a ResourceWarning, an error under pytest).
        path = where.removeprefix("unix://")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(timeout)
                probe.connect(path)
        except PermissionError as exc:
            raise EnvironmentProblem(
                f"the Docker daemon at {where} does not let user {os.getuid()} in ({exc.strerror}).",
                hint="add the user to the docker group (`usermod -aG docker $USER`, then log in "
                     "again), or build on this machine with --executor host",
            ) from None
        except OSError as exc:
            raise EnvironmentProblem(f"no Docker daemon answers at {where} ({exc.strerror or exc}).",
                                     hint=DOCKERD_HINT) from None
    client = None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        if client is not None:
            client.close()
        raise EnvironmentProblem(
            f"no Docker daemon answers at {where} "
            f"({exc.__class__.__name__}: {_first_line(exc)}).",
            hint=DOCKERD_HINT,
        ) from None
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
