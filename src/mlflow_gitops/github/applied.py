"""The "Applied" section of the merged pull request's comment, and the words of the commit
status and of each registry's deployment. Pure functions of the apply's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from mlflow_gitops.github.body import fenced
from mlflow_gitops.render.common import step_text
from mlflow_gitops.render.markdown import escape
from mlflow_gitops.secrets import redact

if TYPE_CHECKING:
    from mlflow_gitops.outcome import ApplyOutcome, RegistryResult

START = "<!-- mlflow-gitops:applied -->"
END = "<!-- /mlflow-gitops:applied -->"
MAX_ROWS = 60  # per registry: the job summary and the audit run hold every step

State = Literal["applied", "failed", "not applied", "blocked", "no changes"]
ICON = {"applied": "✅", "failed": "❌", "not applied": "⏭️", "blocked": "⛔", "no changes": "➖"}


@dataclass(frozen=True)
class RegistryState:
    name: str
    state: State
    applied: int
    blocked: int
    failed: int


def registry_state(r: RegistryResult) -> RegistryState:
    """What became of one registry: failed beats blocked beats applied."""
    result = r.result
    if r.skipped:
        return RegistryState(r.name, "not applied", 0, 0, 0)
    if result is None:
        return RegistryState(r.name, "no changes", 0, 0, 0)
    applied, blocked = result.count("applied"), result.count("blocked")
    failed = result.count("failed") + result.count("not applied")
    state: State = "failed" if failed else "blocked" if blocked else "applied"
    return RegistryState(r.name, state, applied, blocked, failed)


def overall(outcome: ApplyOutcome) -> State:
    """The apply as a whole: failed (or cut short), else blocked, else applied."""
    states = {registry_state(r).state for r in outcome.registries}
    if states & {"failed", "not applied"}:
        return "failed"
    if "blocked" in states:
        return "blocked"
    return "applied" if "applied" in states else "no changes"


def status_description(outcome: ApplyOutcome) -> tuple[str, str]:
    """The commit status's state and description (GitHub keeps 140 characters)."""
    states = [registry_state(r) for r in outcome.registries]
    applied = sum(s.applied for s in states)
    match overall(outcome):
        case "failed":
            failed = sum(s.failed for s in states)
            return "failure", f"apply failed: {failed} change(s) not applied, {applied} applied"
        case "blocked":
            blocked = sum(s.blocked for s in states)
            return "failure", f"blocked by a gate or policy: {blocked} change(s); {applied} applied"
        case "applied":
            return "success", f"applied {applied} change(s)"
        case _:
            return "success", "no changes: the registry matches the file"


def deployment_state(state: State) -> str:
    return {"applied": "success", "blocked": "failure", "failed": "failure"}.get(state, "error")


def ui_link(uri: str, run_id: str) -> str | None:
    """The audit run in the MLflow UI, for a server reached over HTTP(S) (credentials dropped)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    return f"{base}/#/runs/{run_id}"


def section(outcome: ApplyOutcome, commit: str | None, run_url: str | None) -> str:
    """Per registry: what became of it, each change, the gate evidence that held, the audit run."""
    state = overall(outcome)
    at = f" at {escape(commit[:7])}" if commit else ""
    out = [START, f"### {ICON[state]} Applied{at}: {state}", ""]
    if state == "blocked":
        out += [
            "> [!CAUTION]\n> **Blocked:** a gate or a policy blocked part of this merge; nothing "
            "of a blocked model was applied. The reasons are below.",
            "",
        ]
    elif state == "failed":
        out += [
            "> [!CAUTION]\n> **The apply failed**: the registry holds what is marked applied "
            "below. Re-run the apply job to finish it.",
            "",
        ]
    plans = {r.registry: r.plan for r in (outcome.tree.registries if outcome.tree else ())}
    for r in outcome.registries:
        s = registry_state(r)
        out += [f"#### {ICON[s.state]} {escape(r.name, 80)}: {s.state}", ""]
        result = r.result
        if r.skipped:
            out += ["An earlier registry failed, so nothing was changed here.", ""]
        if result is not None and result.steps:
            out += ["| model | change | result | detail |", "|---|---|---|---|"]
            for step in result.steps[:MAX_ROWS]:
                out.append(
                    f"| {escape(step.model, 60)} | {escape(step_text(step), 80)} | {step.status} "
                    f"| {escape(redact(step.detail), 200)} |"
                )
            if len(result.steps) > MAX_ROWS:
                out.append(f"| … | {len(result.steps) - MAX_ROWS} more in the job summary | | |")
            out.append("")
        plan = plans.get(r.name)
        held = [
            g
            for g in (plan.gates if plan else ())
            if g.passed and g.model not in (plan.blocked if plan else {})
        ]
        if held and result is not None:
            out += ["<details><summary>Gate evidence that held</summary>", ""]
            out += ["| model | gate | change | result |", "|---|---|---|---|"]
            for g in held[:MAX_ROWS]:
                out.append(
                    f"| {escape(g.model, 60)} | {escape(g.gate, 60)} | {escape(g.version, 40)} → "
                    f"{escape(g.target, 40)} | ✅ {escape(g.message or 'pass', 120)} |"
                )
            out += ["", "</details>", ""]
        if result is not None and result.record:
            link = ui_link(r.uri, result.record)
            where = f" ([open in MLflow]({link}))" if link else ""
            out += [f"Audit run: `{escape(result.record, 64)}`{where}", ""]
    if run_url:
        out += [f"<sub>[apply run]({run_url})</sub>", ""]
    return "\n".join([*out, END]) + "\n"


def refused_section(message: str, commit: str | None, run_url: str | None) -> str:
    """The Applied section of an apply that stopped before its first change."""
    at = f" at {escape(commit[:7])}" if commit else ""
    out = [
        START,
        f"### {ICON['failed']} Applied{at}: failed",
        "",
        "> [!CAUTION]\n> **The apply failed before changing anything**: the registry is as it was.",
        "",
        fenced(redact(message)),
        "",
    ]
    if run_url:
        out += [f"<sub>[apply run]({run_url})</sub>", ""]
    return "\n".join([*out, END]) + "\n"


def with_section(body: str, applied: str) -> str:
    """The comment with its Applied section put in (replacing an earlier one), before the
    footer; the plan above is kept as reviewed."""
    if START in body and END in body:
        head, _, rest = body.partition(START)
        _, _, tail = rest.partition(END)
        body = head.rstrip("\n") + "\n" + tail.lstrip("\n")
    footer = body.rfind("\n---\n<sub>")
    if footer < 0:
        return body.rstrip("\n") + "\n\n" + applied
    return body[:footer].rstrip("\n") + "\n\n" + applied + body[footer:]
