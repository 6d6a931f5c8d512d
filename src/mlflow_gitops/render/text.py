"""The plan for a terminal (colored) or a CI log (plain)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mlflow_gitops.errors import DENIED
from mlflow_gitops.history import Event
from mlflow_gitops.importer import ImportTreeOutcome
from mlflow_gitops.observed import RunSummary
from mlflow_gitops.outcome import ApplyOutcome, ApplyResult
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.gates import GateResult
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.record import AUDIT_EXPERIMENT
from mlflow_gitops.render.common import (
    SYMBOL,
    Row,
    Summary,
    number,
    registry_status,
    reused_line,
    row,
    shorten,
    signed,
    step_text,
    summarize,
    when,
)
from mlflow_gitops.secrets import redact

_COLORS = {"+": "32", "~": "33", "-": "31", "!": "1;31", "drift": "35", "dim": "2", "bold": "1"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\033[{_COLORS[style]}m{text}\033[0m" if color else text


def render_plan(plan: Plan, *, color: bool = False, header: str = "") -> str:
    """`+ ~ -` per change with before -> after, grouped by model, then the summary line."""
    lines = [header, ""] if header else []
    lines.extend(_models(plan, _shown(plan), color, ""))
    lines.extend(_paint(f"Note: {note}", "~", color) for note in plan.notes)
    lines.append(summarize(plan).sentence())
    return "\n".join(lines) + "\n"


def render_tree(tree: TreePlan, *, color: bool = False, file: str | None = None) -> str:
    """A tree's plan: by registry (declared order), then by file, then by model; a partial plan
    says what was selected and that the rest was neither read nor changed. A file without
    registries: (a tree of one) reads as a plain plan headed by its registry and `file`."""
    if (single := tree.single) is not None:
        header = f"Registry {single.uri}, file {file}" if file is not None else ""
        return render_plan(single.plan, color=color, header=header)
    lines = [f"Tree {file}", ""] if file is not None else []
    if tree.partial:
        lines += [_paint(partial_note(tree), "~", color), ""]
    for rp in tree.registries:
        plan = rp.plan
        lines.append(_paint(f"Registry {rp.registry} ({rp.identity})", "bold", color))
        shown = _shown(plan)
        if not shown:
            lines += ["  No changes.", ""]
        files = sorted({rp.file_of(m) for m in shown}, key=lambda f: _file_order(rp, f))
        for shown_file in files:
            lines.append(_paint(f"  {shown_file or '(not declared in any file)'}", "bold", color))
            lines.extend(
                _models(plan, [m for m in shown if rp.file_of(m) == shown_file], color, "    ")
            )
        lines.extend(_paint(f"  Note: {note}", "~", color) for note in plan.notes)
        if shown:
            lines += [f"  {summarize(plan).sentence()}", ""]
    lines.append(tree_sentence(tree))
    return "\n".join(lines) + "\n"


def partial_note(tree: TreePlan) -> str:
    """What a partial plan covers."""
    parts = [f"--registry {r}" for r in tree.selected_registries]
    parts += [f"--model {m}" for m in tree.selected_models]
    return f"Partial plan ({' '.join(parts)}): the rest of the tree was neither read nor changed."


def tree_sentence(tree: TreePlan) -> str:
    """The summary line of a tree: every registry's counts added up."""
    counts = [summarize(r.plan) for r in tree.registries]
    total = Summary(*(sum(getattr(c, f) for c in counts) for f in _FIELDS))
    text = total.sentence()
    if total.total:
        named = [r.registry for r in tree.registries if not r.plan.is_empty]
        text = text.rstrip(".") + f", in registr{'ies' if len(named) != 1 else 'y'} "
        text += ", ".join(named) + "."
    elif len(tree.registries) > 1:
        text = "No changes. Every registry matches the files."
    return text


_FIELDS = ("add", "change", "delete", "models", "blocked", "drift")


def _file_order(rp: RegistryPlan, file: str) -> tuple[int, str]:
    order = list(dict.fromkeys(rp.files.values()))
    return (order.index(file), file) if file in order else (len(order), file)


def _shown(plan: Plan) -> list[str]:
    """The models a plan shows: with changes, blocked, or with unmanaged versions and changes."""
    return [
        m
        for m in sorted(set(plan.models) | set(plan.blocked) | set(plan.unmanaged))
        if plan.changes_for(m) or m in plan.blocked
    ]


def _models(plan: Plan, models: list[str], color: bool, indent: str) -> list[str]:
    lines = []
    for model in models:
        changes = plan.changes_for(model)
        lines.append(indent + _paint(shorten(model, 120), "bold", color))
        lines.extend(f"{indent}  {_line(row(c), color)}" for c in changes)
        lines.extend(indent + g for g in _gates([g for g in plan.gates if g.model == model], color))
        for reason in plan.blocked.get(model, ()):
            lines.append(indent + "  " + _paint(f"! blocked: {reason}", "!", color))
        if plan.unmanaged.get(model):
            listed = ", ".join(f"v{v}" for v in plan.unmanaged[model])
            lines.append(
                indent
                + _paint(
                    f"  unmanaged versions (not in the file, left alone): {listed}", "dim", color
                )
            )
        lines.append("")
    return lines


def _gates(results: list[GateResult], color: bool) -> list[str]:
    lines = []
    for g in results:
        mark = "✓" if g.passed else "✗"
        base = f", baseline v{g.baseline_version}" if g.baseline_version else ", no baseline"
        cached = " (cached)" if g.cached else ""
        head = f"  {mark} gate {g.gate} for {g.version} -> {g.target}{base}: {g.verdict.upper()}{cached}"
        lines.append(_paint(head, "+" if g.passed else "!", color))
        for c in g.checks:
            vs = (
                f" vs {number(c.baseline)} ({signed(c.difference)})"
                if c.baseline is not None
                else ""
            )
            note = f"  {c.message}" if c.message else ""
            lines.append(
                f"      {c.name}: {number(c.candidate)}{vs} {c.bound} -> {c.verdict}{note}"
            )
        lines.extend(f"      {reused_line(r)}" for r in g.reused)
    return lines


def _line(r: Row, color: bool) -> str:
    symbol = SYMBOL[r.action]
    if r.before is not None and r.after is not None:
        value = f"{shorten(r.before, 50)} -> {shorten(r.after, 50)}"
    elif r.after is not None:
        value = shorten(r.after, 100)
    else:
        value = f"(was {shorten(r.before or '', 80)})"
    text = f"{symbol} {shorten(r.subject, 80)}: {value}"
    if r.note:
        text += f"  ({r.note})"
    out = _paint(text, symbol, color)
    if r.drift:
        out += " " + _paint("[drift: changed in the registry by hand]", "drift", color)
    return out


def render_apply(outcome: ApplyOutcome, *, color: bool = False) -> str:
    """An apply's result: the one registry's steps, or each registry's in apply order
    (applied, nothing to do, or not applied because an earlier registry failed)."""
    if len(outcome.registries) <= 1:
        return "\n" + render_result(outcome.result, color=color) if outcome.result else ""
    lines = []
    for r in outcome.registries:
        lines.append(f"\nRegistry {r.name} ({redact(r.uri)}): {registry_status(r)}")
        if r.result is not None:
            lines.append(render_result(r.result, color=color).rstrip())
    return "\n".join(lines) + "\n"


def render_result(result: ApplyResult, *, color: bool = False) -> str:
    """What was applied, what failed, and what was not applied."""
    marks = {"applied": "✓", "failed": "✗", "not applied": "·", "blocked": "!"}
    styles = {"applied": "+", "failed": "-", "not applied": "dim", "blocked": "!"}
    lines = []
    current = None
    for step in result.steps:
        if step.model != current:
            current = step.model
            lines.append(_paint(shorten(step.model, 120), "bold", color))
        detail = (
            f": {shorten(step.detail, 200)}" if step.detail and step.status != "blocked" else ""
        )
        lines.append(
            "  "
            + _paint(
                f"{marks[step.status]} {step.status:<11} {shorten(step_text(step), 160)}{detail}",
                styles[step.status],
                color,
            )
        )
    applied, failed = result.count("applied"), result.count("failed")
    skipped, blocked = result.count("not applied"), result.count("blocked")
    if not result.steps:
        lines.append("Nothing to apply.")
    elif applied == 0 and failed == 0 and blocked:
        lines.append(f"Nothing applied: {blocked} change(s) blocked by gates or policies.")
    else:
        lines.append(
            f"Apply {'complete' if result.ok else 'FAILED'}: {applied} applied, {failed} failed, "
            f"{skipped} not applied, {blocked} blocked."
        )
        if any(s.status == "failed" and DENIED in s.detail for s in result.steps):
            lines.append(
                "The registry refused a change for lack of permission: applying again as the "
                "same user will not help. Ask an MLflow admin to grant it, or apply as a user "
                "who holds it (READ plans; EDIT sets tags, descriptions, stages and aliases; "
                "MANAGE deletes aliases, versions and version tags)."
            )
        elif not result.ok:
            lines.append("Run apply again to finish: it plans from the registry as it is now.")
    if result.record:
        lines.append(
            f"Recorded as run {result.record} in the MLflow experiment "
            f"{result.experiment or AUDIT_EXPERIMENT}."
        )
    return "\n".join(lines) + "\n"


# --- propose: the best runs of an experiment ------------------------------------------------

_ORDER = re.compile(r"^\s*metrics\.`?(?P<metric>[^`\s]+)`?")


def _ordered_metric(order_by: str | None) -> str | None:
    """`metrics.rmse ASC` -> `rmse`."""
    match = _ORDER.match(order_by or "")
    return match["metric"] if match else None


def render_runs(
    runs: list[RunSummary], order_by: str | None, registered: Mapping[str, list[int]] | None = None
) -> str:
    """The candidates, best first: run id, the ordered metric, training time, size, type, and the
    version of the model each run is already registered as."""
    metric = _ordered_metric(order_by) or "rmse"
    header = (
        f"  {'#':>2}  {'run id':<32}  {metric:>10}  {'train s':>8}  {'size MB':>8}  "
        f"{'version':<7}  model type"
    )
    lines = [header]
    for i, run in enumerate(runs, 1):
        value = run.metrics.get(metric)
        size = run.metrics.get("model_size_mb")
        seconds = run.training_seconds
        versions = ", ".join(f"v{n}" for n in (registered or {}).get(run.run_id, [])) or "—"
        lines.append(
            f"  {i:>2}  {run.run_id:<32}  {_num(value):>10}  {_num(seconds):>8}  {_num(size):>8}  "
            f"{versions:<7}  {run.model_type}"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


# --- history: the promotion history of a model --------------------------------------------


def render_history(name: str, found: list[Event]) -> str:
    """One line per event, newest first."""
    if not found:
        return f"{name}: no history recorded\n"
    lines = [f"{name}: history, newest first"]
    for e in found:
        who = ", ".join(
            x
            for x in (
                f"commit {e.commit}" if e.commit else "",
                f"PR #{e.pr}" if e.pr is not None else "",
                f"by {e.actor}" if e.actor else "",
                f"gate {e.gate}" if e.gate else "",
            )
            if x
        )
        lines.append(f"  {when(e)}  v{e.version:<4} {e.change}" + (f"  ({who})" if who else ""))
    return "\n".join(lines) + "\n"


# --- import --tree: what was written, and what the root still needs -------------------------


def render_import_tree(root: str, outcome: ImportTreeOutcome) -> str:
    """The notes, the count of models and files written, and the include: lines to add."""
    lines = [*outcome.notes]
    count = sum(len(f.models) for f in outcome.files)
    lines.append(f"Wrote {count} models in {len(outcome.files)} files under {outcome.folder}.")
    if outcome.missing_patterns:
        lines += [f"Add to the include: of {root}:", "include:"]
        lines += [f"  - {p}" for p in outcome.missing_patterns]
    else:
        lines.append(f"{root} already includes them.")
    return "\n".join(lines) + "\n"
