"""What every renderer shares: the symbol, the subject and the values of a change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, assert_never

from mlflow_gitops.history import Event
from mlflow_gitops.outcome import RegistryResult, Step
from mlflow_gitops.plan.changes import (
    Change,
    CopyVersion,
    CreateModel,
    CreateWebhook,
    DeleteAlias,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    DeleteWebhook,
    Plan,
    RegisterVersion,
    RestoreHistory,
    SetAlias,
    SetModelDescription,
    SetModelTag,
    SetVersionDescription,
    SetVersionTag,
    TransitionStage,
    UpdateWebhook,
)
from mlflow_gitops.plan.gates import Reused
from mlflow_gitops.plan.webhooks import shown

Action = Literal["add", "change", "delete"]
SYMBOL: dict[Action, str] = {"add": "+", "change": "~", "delete": "-"}


@dataclass(frozen=True)
class Row:
    """A change as a renderer shows it."""

    action: Action
    subject: str
    before: str | None
    after: str | None
    note: str = ""
    drift: bool = False
    summary: str = ""  # one plain line, for apply's results and the audit record's steps


def row(change: Change) -> Row:
    """Subject, before and after of a change, as display strings (values quoted), and its
    one-line summary."""
    match change:
        case CreateModel():
            return Row("add", "registered model", None, change.model, summary="create model")
        case RegisterVersion(entry=entry, source=source):
            return Row(
                "add",
                "new version",
                None,
                source,
                f"from {entry}",
                summary=f"register version from {source}",
            )
        case CopyVersion():
            return Row("add", "new version", None, change.text(), summary=change.text())
        case SetModelDescription(before=before, after=after):
            return Row(
                _set(before),
                "description",
                _q(before),
                _q(after),
                summary="set model description",
            )
        case SetModelTag(key=key, before=before, after=after):
            return Row(
                _set(before),
                f"tag {key}",
                _q(before),
                _q(after),
                summary=f"set model tag {key}={after}",
            )
        case DeleteModelTag(key=key, before=before):
            return Row("delete", f"tag {key}", _q(before), None, summary=f"delete model tag {key}")
        case SetVersionDescription(target=t, before=before, after=after):
            return Row(
                _set(before),
                f"{t.label()} description",
                _q(before),
                _q(after),
                "",
                change.drift,
                summary=f"set {t.label()} description",
            )
        case RestoreHistory(target=t, before=before, after=after):
            lines = len(after.splitlines()) - 1
            return Row(
                "change",
                f"{t.label()} history block",
                "edited by hand" if before else "removed",
                f"restored from the audit record ({lines} line{'s' if lines != 1 else ''})",
                "",
                change.drift,
                summary=f"restore {t.label()} history block",
            )
        case SetVersionTag(target=t, key=key, before=before, after=after):
            return Row(
                _set(before),
                f"{t.label()} tag {key}",
                _q(before),
                _q(after),
                summary=f"set {t.label()} tag {key}={after}",
            )
        case DeleteVersionTag(target=t, key=key, before=before):
            return Row(
                "delete",
                f"{t.label()} tag {key}",
                _q(before),
                None,
                summary=f"delete {t.label()} tag {key}",
            )
        case TransitionStage(target=t, before=before, after=after):
            return Row(
                "change",
                f"{t.label()} stage",
                before,
                after,
                _stage_note(change),
                change.drift,
                summary=f"{t.label()} {before} -> {after}",
            )
        case SetAlias(alias=alias, before=before, target=t):
            was = f"v{before}" if before is not None else None
            return Row(
                "add" if before is None else "change",
                f"alias {alias}",
                was,
                t.label(),
                f"mirrors {change.mirrors}" if change.mirrors else "",
                change.drift,
                summary=f"alias {alias} -> {t.label()}",
            )
        case DeleteAlias(alias=alias, before=before):
            return Row(
                "delete", f"alias {alias}", f"v{before}", None, summary=f"delete alias {alias}"
            )
        case DeleteVersion(target=t, stage=stage):
            return Row(
                "delete",
                f"{t.label()}",
                stage,
                None,
                "deleted: true",
                summary=f"delete {t.label()}",
            )
        case CreateWebhook(name=name, after=after):
            return Row(
                "add", f"webhook {name}", None, shown(after), summary=f"create webhook {name}"
            )
        case UpdateWebhook(name=name, before=before, after=after):
            return Row(
                "change",
                f"webhook {name}",
                shown(before),
                shown(after),
                summary=f"update webhook {name}: {shown(after)}",
            )
        case DeleteWebhook(name=name, before=before):
            return Row(
                "delete",
                f"webhook {name}",
                shown(before),
                None,
                "declared null",
                summary=f"delete webhook {name}",
            )
        case _:
            assert_never(change)


def describe(change: Change) -> str:
    """A one-line, plain description of a change, for results and logs."""
    return row(change).summary


def step_text(step: Step) -> str:
    """What an apply step did: its change, described, or the tool's own work."""
    return step.what if isinstance(step.what, str) else describe(step.what)


def _set(before: str | None) -> Action:
    return "add" if before is None else "change"


def _stage_note(change: TransitionStage) -> str:
    if change.archive_others:
        return "archives the other holders in the same call"
    if change.reason == "archive_previous":
        holders = ", ".join(f"v{h}" if isinstance(h, int) else str(h) for h in change.replaced_by)
        return f"archive_previous: replaced by {holders}"
    if change.reason == "unmanaged":
        return "unmanaged_versions: archive"
    return ""


def _q(value: str | None) -> str | None:
    if value is None:
        return None
    return '""' if value == "" else f'"{value}"'


def shorten(text: str, width: int = 72) -> str:
    """One line of at most `width` characters (control characters shown escaped)."""
    flat = " ".join(text.split("\n"))
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in flat)
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dataclass(frozen=True)
class Summary:
    add: int
    change: int
    delete: int
    models: int
    blocked: int
    drift: int

    @property
    def total(self) -> int:
        return self.add + self.change + self.delete

    def sentence(self) -> str:
        """`Plan: 5 to change (2 to add, 2 to change, 1 to delete) in 2 models.`"""
        if not self.total:
            return "No changes. The registry matches the file."
        models = f"{self.models} model{'s' if self.models != 1 else ''}"
        text = (
            f"Plan: {self.total} to change ({self.add} to add, {self.change} to change, "
            f"{self.delete} to delete) in {models}."
        )
        if self.drift:
            text += f" {self.drift} drifted from the file."
        if self.blocked:
            text += f" {self.blocked} model{'s' if self.blocked != 1 else ''} blocked."
        return text


def summarize(plan: Plan) -> Summary:
    """Counts for the summary line."""
    rows = [row(c) for c in plan.changes]
    return Summary(
        add=sum(r.action == "add" for r in rows),
        change=sum(r.action == "change" for r in rows),
        delete=sum(r.action == "delete" for r in rows),
        models=len(plan.models),
        blocked=len(plan.blocked),
        drift=sum(r.drift for r in rows),
    )


def number(value: float | None) -> str:
    """A metric value for display: 6 significant digits, or a dash."""
    return "—" if value is None else f"{value:.6g}"


def signed(value: float | None) -> str:
    """A difference with its sign."""
    return "" if value is None else f"{value:+.4g}"


def when(event: Event) -> str:
    """`2026-11-27 14:03` when the time is known, else the date."""
    return event.time[:16].replace("T", " ") if "T" in event.time else event.date


def registry_status(result: RegistryResult) -> str:
    """What became of one registry of a tree's apply."""
    if result.skipped:
        return "NOT APPLIED: an earlier registry failed; nothing was changed here"
    if result.result is None:
        return "no changes"
    if result.result.ok:
        return "applied"
    return "FAILED (below: what was applied and what was not)"


def reused_line(r: Reused) -> str:
    """Scores a gate read from a record, with when and on which inputs they were computed."""
    hook = f", hook {r.hook}" if r.hook else ""
    return (
        f"{r.side} v{r.version} scores reused: computed {r.scored_at} on data {r.data}{hook}"
        f" ({r.rows:,} rows); not loaded or scored again"
    )
