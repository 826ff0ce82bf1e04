"""pipeline.cmd.run: every host command is echoed and fails loudly."""

from __future__ import annotations

import pytest

from pipeline.cmd import run
from pipeline.errors import BuildFailed, EnvironmentProblem


def test_run_echoes_and_fails_loudly(tmp_path):
    seen = []
    out = run(["bash", "-c", "echo hi"], log=seen.append)
    assert out.stdout == "hi\n"
    assert seen == ["+ bash -c 'echo hi'"]
    with pytest.raises(BuildFailed, match=r"exit 3.*boom"):
        run(["bash", "-c", "echo boom >&2; exit 3"], error=BuildFailed)
    with pytest.raises(EnvironmentProblem, match="not found"):
        run(["no-such-program-gopatch"])
