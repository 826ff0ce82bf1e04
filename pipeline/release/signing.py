"""Signing SHA256SUMS with the user's SSH key (``ssh-keygen -Y sign``), and checking it.

SSH signatures need no keyring and no agent, and every machine with OpenSSH ≥ 8.1 can check
them: ``ssh-keygen -Y verify -f allowed_signers -I gopatch -n gopatch-release -s SHA256SUMS.sig
< SHA256SUMS``. Signing SHA256SUMS signs every published file, the manifest included.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, UsageError

NAMESPACE = "gopatch-release"
IDENTITY = "gopatch"


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise EnvironmentProblem("signing needs ssh-keygen, which is not on PATH.",
                                 hint="install OpenSSH (Debian: apt-get install openssh-client)")
    return exe


def public_key(key: Path) -> str:
    """'ssh-ed25519 AAAA…' of a private (or public) key file."""
    exe = _ssh_keygen()
    pub = Path(f"{key}.pub")
    if pub.is_file():
        text = pub.read_text(encoding="utf-8").split()
    else:
        proc = subprocess.run([exe, "-y", "-f", str(key)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise UsageError(f"{key}: not a usable SSH private key ({proc.stderr.strip()}); "
                             "[release] sign_key / --sign-key must name one without a passphrase, or with "
                             "an agent holding it.")
        text = proc.stdout.split()
    return " ".join(text[:2])


def fingerprint(pub: str) -> str:
    exe = _ssh_keygen()
    proc = subprocess.run([exe, "-l", "-f", "-"], input=pub + "\n", capture_output=True, text=True)
    return proc.stdout.split()[1] if proc.returncode == 0 and len(proc.stdout.split()) > 1 else ""


def describe(key: Path) -> dict[str, Any]:
    """What the manifest records about the signature to come."""
    pub = public_key(key)
    return {"method": "ssh-keygen -Y sign", "namespace": NAMESPACE, "identity": IDENTITY,
            "public_key": pub, "fingerprint": fingerprint(pub), "signs": "SHA256SUMS"}


def sign(key: Path, file: Path) -> Path:
    """Write ``file``.sig; ssh-keygen itself names it so."""
    exe = _ssh_keygen()
    sig = Path(f"{file}.sig")
    sig.unlink(missing_ok=True)
    proc = subprocess.run([exe, "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(file)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not sig.is_file():
        raise UsageError(f"signing {file.name} with {key} failed: {proc.stderr.strip()}")
    return sig


def check(pub: str, file: Path, sig: Path) -> str | None:
    """None when ``sig`` is a good signature of ``file`` by ``pub``; else why not."""
    exe = _ssh_keygen()
    with tempfile.TemporaryDirectory(prefix="gopatch-signers-") as tmp:
        allowed = Path(tmp) / "allowed_signers"
        allowed.write_text(f"{IDENTITY} {pub}\n", encoding="utf-8")
        with open(file, "rb") as data:
            proc = subprocess.run([exe, "-Y", "verify", "-f", str(allowed), "-I", IDENTITY, "-n", NAMESPACE,
                                   "-s", str(sig)], stdin=data, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return (proc.stderr or proc.stdout).strip().splitlines()[-1] if (proc.stderr or proc.stdout).strip() else "bad signature"
