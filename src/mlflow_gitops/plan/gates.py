"""What a gate decided and why: values that travel in the plan and render in PR comments."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Verdict = Literal["pass", "fail", "no baseline", "error"]


class Check(BaseModel):
    """One comparison: candidate vs baseline against a bound."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    candidate: float | None = None
    baseline: float | None = None
    bound: str = ""  # e.g. "<= 7.0", "<= baseline - 0 (not worse)"
    verdict: Verdict = "pass"
    message: str = ""

    @property
    def difference(self) -> float | None:
        """candidate - baseline, when both exist."""
        if self.candidate is None or self.baseline is None:
            return None
        return self.candidate - self.baseline


class Reused(BaseModel):
    """Scores a gate read from a version's record instead of loading and scoring it again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    side: Literal["candidate", "baseline"]
    version: int
    scored_at: str  # when the recorded evaluation ran (ISO 8601)
    data: str  # the data's identity then (short digest)
    hook: str = ""  # the prepare hook's digest then (short), "" without a hook
    rows: int = 0


class GateResult(BaseModel):
    """One gate on one planned change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    target: str  # "Production" or "alias:champion"
    version: str  # "v3" or "new version (run ...)"
    gate: str  # metric, evaluate, max_size_mb, latency, require_tags, require_signature
    verdict: Literal["pass", "fail"]
    checks: tuple[Check, ...] = ()
    baseline_version: int | None = None
    message: str = ""
    cached: bool = False
    inputs: str = ""  # digest of everything the verdict depends on
    reused: tuple[Reused, ...] = ()  # recorded scores read instead of scoring a side again

    @property
    def passed(self) -> bool:
        """True when the gate lets the change through."""
        return self.verdict == "pass"
