"""The plan as GitHub-flavoured Markdown for pull-request comments; user text is escaped."""

from __future__ import annotations

import html

from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.gates import GateResult
from mlflow_gitops.render.common import SYMBOL, number, row, shorten, signed, summarize

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
    summary = summarize(plan)
    out = [MARKER, f"### {title}", "", f"**{summary.sentence()}**", ""]
    if summary.drift:
        out += [
            f"> [!WARNING]\n> {summary.drift} change(s) undo edits made in the registry by hand "
            "(drift). Merging puts the registry back to what the file says.",
            "",
        ]
    out += [f"> [!NOTE]\n> {escape(note, 400)}\n" for note in plan.notes]
    for model in sorted(set(plan.models) | set(plan.blocked)):
        changes = plan.changes_for(model)
        out.append(f"#### {escape(model, 120)}")
        out.append("")
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
    return "\n".join(out) + "\n"


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
