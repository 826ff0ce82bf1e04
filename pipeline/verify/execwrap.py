"""`go test -exec` wrapper: run one test binary and append what ran to a JSON-lines log.

go test runs ``<wrapper> <test binary> <args...>``; the wrapper runs the binary with the same
arguments and environment, passes its output and exit status through, and records argv, the
Go-relevant environment and the exit status in $GOPATCH_EXEC_LOG for the verify report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# Variables worth a reader's attention; others are listed by name only (they may hold secrets).
_SHOWN = ("GO", "CGO_", "PATH", "HOME", "TMPDIR", "PWD")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: execwrap TESTBINARY [ARGS...]", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    code = subprocess.call(argv)
    record = {
        "binary": os.path.basename(argv[0]),
        "args": argv[1:],
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(_SHOWN) and k != "GOPATCH_EXEC_LOG"},
        "other_env": sorted(k for k in os.environ if not k.startswith(_SHOWN)),
        "cwd": os.getcwd(),
        "exit": code,
        "seconds": round(time.monotonic() - t0, 3),
    }
    log = os.environ.get("GOPATCH_EXEC_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:  # one short line per binary: append is atomic
            f.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
