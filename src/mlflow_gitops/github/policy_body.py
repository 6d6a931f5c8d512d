"""The Policies section of a plan comment: per change, the rules it meets and what it still
lacks. Plan time shows; the apply judges again with the merged pull request's reviews."""

from __future__ import annotations

from mlflow_gitops.policy.evaluate import PolicyReport
from mlflow_gitops.policy.facts import PullFacts
from mlflow_gitops.render.common import describe
from mlflow_gitops.render.markdown import escape

MAX_ROWS = 200

MARK = {"pass": "✅", "fail": "❌", "error": "⚠️", "overridden": "🔓"}


def policies_section(report: PolicyReport, facts: PullFacts) -> str:
    """A table: registry, model, change, and each rule's verdict with what is still needed."""
    out = ["**Policies**", ""]
    if facts.problem:
        out += [f"> [!NOTE]\n> {escape(facts.problem, 300)}\n"]
    if not report.verdicts:
        return "\n".join([*out, "No rule applies to these changes.", ""]) + "\n"
    unmet = sum(1 for v in report.verdicts if not v.held)
    if unmet:
        out += [
            f"> [!IMPORTANT]\n> {unmet} change(s) do not meet every rule yet. Merging applies "
            "only what meets them with the reviews the pull request has then; the rest is "
            "blocked.\n"
        ]
    out += ["| registry | model | change | rules |", "|---|---|---|---|"]
    for v in report.verdicts[:MAX_ROWS]:
        rules = "<br>".join(
            f"{MARK[r.status]} {escape(r.rule, 100)}"
            + (f": {_needs(r.status)}{escape(r.detail, 200)}" if r.detail else "")
            for r in v.results
        )
        out.append(
            f"| {escape(v.registry, 40)} | {escape(v.model, 60)} | {escape(describe(v.change), 80)} "
            f"| {rules} |"
        )
    if len(report.verdicts) > MAX_ROWS:
        out.append(f"| … | {len(report.verdicts) - MAX_ROWS} more changes | | |")
    return "\n".join([*out, ""]) + "\n"


def _needs(status: str) -> str:
    return {"fail": "needs: ", "error": "cannot be evaluated (blocks): ", "overridden": ""}.get(
        status, ""
    )
