"""The target matrix as CI systems want it, so each target can build on its own runner.

The distributed build engine for users who outgrow one machine is their CI, not gopatch: this
module only renders the configured targets in the shape `strategy.matrix` takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..config import Target

FORMATS = ("github", "json", "lines")


def render(targets: Sequence[Target], fmt: str) -> str:
    rows = [{"target": str(t), "goos": t.goos, "goarch": t.goarch, "slug": t.slug} for t in targets]
    if fmt == "github":
        # One line, because GitHub reads it from $GITHUB_OUTPUT as `matrix=<json>`.
        return json.dumps({"include": rows}, separators=(",", ":"))
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "lines":
        return "\n".join(str(t) for t in targets)
    raise ValueError(fmt)
