"""The plan as GitHub-flavoured Markdown for pull-request comments; user text is escaped."""

from __future__ import annotations

import html
from collections import Counter

from mlflow_gitops.history import Event
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.gates import GateResult
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.render.common import (
    SYMBOL,
    Summary,
    number,
    reused_line,
    row,
    shorten,
    signed,
    summarize,
    when,
)

MARKER = "<!-- mlflow-gitops:plan -->"


def escape(text: str | None, width: int = 80) -> str:
    """Text from the registry or the file made inert: no HTML, no Markdown, no table breaks."""
    if text is None:
        return ""
    flat = html.escape(shorten(text, width), quote=True)
    for ch in "\\`*_{}[]()#+-.!|~>":
        flat = flat.replace(ch, "\\" + ch)
    return flat.replace("@", "&#64;")


def render_plan(plan: Plan, *, title: str = "mlflow-gitops plan") -> str:
    """Summary, drift callout, then a table per model."""
    out = [MARKER, f"### {title}", ""]
    out += _plan_head(plan)
    for model in _planned_models(plan):
        out += _model_section(plan, model, "####")
    return "\n".join(out) + "\n"


def _plan_head(plan: Plan) -> list[str]:
    """The summary sentence, the drift callout and the plan's notes."""
    summary = summarize(plan)
    out = [f"**{summary.sentence()}**", ""]
    if summary.drift:
        out += [
            f"> [!WARNING]\n> {summary.drift} change(s) undo edits made in the registry by hand "
            "(drift). Merging puts the registry back to what the file says.",
            "",
        ]
    return out + [f"> [!NOTE]\n> {escape(note, 400)}\n" for note in plan.notes]


def _planned_models(plan: Plan) -> list[str]:
    """The models a renderer shows: those with changes or blocked, sorted."""
    return sorted(set(plan.models) | set(plan.blocked))


def _model_section(plan: Plan, model: str, heading: str) -> list[str]:
    """One model: blocked reasons, its changes, its gates and its unmanaged versions."""
    changes = plan.changes_for(model)
    out = [f"{heading} {escape(model, 120)}", ""]
    for reason in plan.blocked.get(model, ()):
        out.append(f"> [!CAUTION]\n> **Blocked:** {escape(reason, 400)}\n")
    if changes:
        out += ["| | change | before | after | note |", "|---|---|---|---|---|"]
        for c in changes:
            r = row(c)
            note = escape(r.note, 80) + (" **drift**" if r.drift else "")
            out.append(
                f"| `{SYMBOL[r.action]}` | {escape(r.subject, 60)} | {escape(r.before, 60)} "
                f"| {escape(r.after, 60)} | {note} |"
            )
        out.append("")
    out += _gates([g for g in plan.gates if g.model == model])
    if plan.unmanaged.get(model):
        listed = ", ".join(f"v{v}" for v in plan.unmanaged[model])
        out += [f"<sub>Unmanaged versions (not in the file, left alone): {listed}</sub>", ""]
    return out


# --- a tree: several files over one or more registries ----------------------------------------

MODEL_HEADING = "#####"  # a model's heading in a tree (a file is ####, a registry ###)
UNDECLARED = "(not declared in any file)"


def is_flat(tree: TreePlan, *, by_file: bool = True) -> bool:
    """A tree shown as a plain plan, headed by model: a file without registries: (a tree of
    one), unless `by_file` and its models are declared in several files."""
    single = tree.single
    return single is not None and not (by_file and len(set(single.files.values())) > 1)


def render_tree(tree: TreePlan, *, title: str = "mlflow-gitops plan", by_file: bool = True) -> str:
    """The plan of a tree: the total, the partial notice, then a section per registry (its
    name and identity) and in it a section per file, each with its models' tables. A flat tree
    (is_flat) renders as render_plan does; `by_file`: group a file without registries: by its
    included files (the pull-request comment), else not (plan --format markdown)."""
    if is_flat(tree, by_file=by_file):
        return render_plan(tree.registries[0].plan, title=title)
    return "\n".join(tree_head(tree, title)) + "\n" + render_tree_details(tree)


def model_heading(tree: TreePlan) -> str:
    """The heading a model has in the tree's rendering (what a cut counts)."""
    return "####" if is_flat(tree) else MODEL_HEADING


def render_tree_details(tree: TreePlan) -> str:
    """Every registry's section: its heading, summary and notes, then a section per file."""
    out: list[str] = []
    for reg in tree.registries:
        out += registry_heading(reg)
        out += _plan_head(reg.plan)
        for file, models in files_of(reg):
            out += [f"#### {(escape(file, 200) if file else UNDECLARED)}", ""]
            for model in models:
                out += _model_section(reg.plan, model, MODEL_HEADING)
    return "\n".join(out) + "\n"


def render_tree_overview(tree: TreePlan, *, title: str = "mlflow-gitops plan") -> str:
    """The head and, per registry, a table of its files with changes: models, changes to add,
    change and delete, and the blocked models: what a comment shows when the plan is too long."""
    out = tree_head(tree, title)
    for reg in tree.registries:
        out += registry_heading(reg)
        listed = files_of(reg)
        if not listed:
            out += ["No changes.", ""]
            continue
        out += ["| file | models | add | change | delete | blocked |", "|---|---|---|---|---|---|"]
        for file, models in listed:
            changes = [c for m in models for c in reg.plan.changes_for(m)]
            counts = Counter(row(c).action for c in changes)
            blocked = [m for m in models if m in reg.plan.blocked]
            shown = ", ".join(escape(m, 60) for m in blocked[:5])
            more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
            out.append(
                f"| {(escape(file, 200) if file else UNDECLARED)} | {len(models)} | {counts['add']} "
                f"| {counts['change']} | {counts['delete']} | {shown}{more} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def tree_head(tree: TreePlan, title: str) -> list[str]:
    """The marker, the title, the total over every registry and, for a partial plan, what
    was selected."""
    total = tree_summary(tree)
    files = len({(r.registry, f) for r in tree.registries for f, _ in files_of(r)})
    registries = len(tree.registries)
    sentence = total.sentence()
    if total.total:
        sentence += (
            f" {files} file{'s' if files != 1 else ''} in {registries} "
            f"registr{'ies' if registries != 1 else 'y'}."
        )
    out = [MARKER, f"### {title}", "", f"**{sentence}**", ""]
    if tree.partial:
        out += [partial_notice(tree), ""]
    return out


def tree_summary(tree: TreePlan) -> Summary:
    """The counts of every registry's plan, added up."""
    parts = [summarize(r.plan) for r in tree.registries]
    return Summary(*(sum(getattr(p, f) for p in parts) for f in _COUNTS))


_COUNTS = ("add", "change", "delete", "models", "blocked", "drift")


def partial_notice(tree: TreePlan) -> str:
    """What --registry/--model selected: the rest of the tree was neither read nor changed."""
    parts = []
    if tree.selected_registries:
        parts.append(
            "registries " + ", ".join(f"`{escape(r, 60)}`" for r in tree.selected_registries)
        )
    if tree.selected_models:
        parts.append("models " + ", ".join(f"`{escape(m, 120)}`" for m in tree.selected_models))
    return (
        "> [!IMPORTANT]\n> **Partial plan**: only "
        + " and ".join(parts)
        + ". The rest of the tree was neither read nor planned."
    )


def registry_heading(reg: RegistryPlan) -> list[str]:
    """`### Registry dev · http://...`: which registry, by name and identity."""
    return [f"### Registry {escape(reg.registry, 60)} · {escape(reg.identity, 200)}", ""]


def files_of(reg: RegistryPlan) -> list[tuple[str, list[str]]]:
    """The files of a registry with the models shown under each, files sorted, models sorted;
    a model no file declares comes last, under its own heading."""
    by_file: dict[str, list[str]] = {}
    for model in _planned_models(reg.plan):
        by_file.setdefault(reg.file_of(model), []).append(model)
    return sorted(by_file.items(), key=lambda item: (item[0] == "", item[0]))


def _gates(results: list[GateResult]) -> list[str]:
    """A table per gated change: each check with candidate, baseline, difference, bound, verdict;
    and a bar chart of the evaluated metrics where there is a baseline."""
    if not results:
        return []
    out = [
        "**Gates**",
        "",
        "| gate | change | check | candidate | baseline | diff | bound | verdict |",
    ]
    out.append("|---|---|---|---|---|---|---|---|")
    charts: list[str] = []
    reused: list[str] = []
    for g in results:
        change = f"{escape(g.version, 40)} → {escape(g.target, 40)}"
        verdict = "✅ pass" if g.passed else "❌ **fail**"
        cached = " (cached)" if g.cached else ""
        if not g.checks:
            out.append(f"| {g.gate} | {change} | | | | | | {verdict}{cached} |")
        for c in g.checks:
            check_verdict = {
                "pass": "✅",
                "fail": "❌",
                "no baseline": "➖ no baseline",
                "error": "⚠️ error",
            }[c.verdict]
            base = (
                number(c.baseline)
                if c.baseline is not None
                else ("—" if g.baseline_version is None else "")
            )
            out.append(
                f"| {g.gate}{cached} | {change} | {escape(c.name, 30)} | {number(c.candidate)} | {base} "
                f"| {signed(c.difference)} | {escape(c.bound, 50)} | {check_verdict} {escape(c.message, 80)} |"
            )
        reused.extend(
            f"- {escape(g.version, 40)} → {escape(g.target, 40)}: {reused_line(r)}"
            for r in g.reused
        )
        if g.gate == "evaluate" and g.baseline_version is not None:
            metrics = [
                c
                for c in g.checks
                if c.baseline is not None and c.candidate is not None and c.name != "rows"
            ]
            if metrics:
                charts.append(
                    _chart(
                        g, metrics[0].name, metrics[0].baseline or 0.0, metrics[0].candidate or 0.0
                    )
                )
    out.append("")
    if reused:
        out += ["Scores read from a version's record, not computed again:", "", *reused, ""]
    if not all(g.passed for g in results):
        out.append("> A failed gate blocks every change of this model; other models still apply.\n")
    return out + charts


def _chart(g: GateResult, metric: str, baseline: float, candidate: float) -> str:
    top = max(baseline, candidate) * 1.2 or 1.0
    return (
        "```mermaid\n"
        "xychart-beta\n"
        f'    title "{metric}: baseline v{g.baseline_version} vs candidate"\n'
        f'    x-axis ["baseline v{g.baseline_version}", "candidate"]\n'
        f'    y-axis "{metric}" 0 --> {top:.4g}\n'
        f"    bar [{baseline:.6g}, {candidate:.6g}]\n"
        "```\n"
    )


# --- history: the promotion history of a model --------------------------------------------


def render_history(name: str, found: list[Event]) -> str:
    """A table, newest first."""
    rows = [
        f"### History of {escape(name)}",
        "",
        "| when | version | change | commit | PR | by | gate |",
    ]
    rows.append("|---|---|---|---|---|---|---|")
    for e in found:
        what = escape(e.change, 120)
        rows.append(
            f"| {when(e)} | v{e.version} | {what} | {escape(e.commit or '')} | "
            f"{'#' + str(e.pr) if e.pr is not None else ''} | {escape(e.actor or '')} | {e.gate or ''} |"
        )
    return "\n".join(rows) + "\n"
