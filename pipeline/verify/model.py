"""The results every layer returns and the report is made of (plain data, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class LayerResult:
    layer: str  # version | asm | ast | behavior | stability
    status: str  # pass | fail | skip
    summary: str  # one line a person reads in the verdict table
    problems: list[str] = field(default_factory=list)  # each one names what failed and where
    details: dict[str, Any] = field(default_factory=dict)  # layer-specific, rendered by the report
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status != FAIL


@dataclass
class Report:
    target: str
    toolchain: str
    vanilla: str
    version: str
    patches: list[str]
    layers: list[LayerResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(layer.passed for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data
