"""The plan as GitHub-flavoured Markdown for pull-request comments; user text is escaped."""

from __future__ import annotations

import html

from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.render.common import SYMBOL, row, shorten, summarize

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
        if plan.unmanaged.get(model):
            listed = ", ".join(f"v{v}" for v in plan.unmanaged[model])
            out += [f"<sub>Unmanaged versions (not in the file, left alone): {listed}</sub>", ""]
    return "\n".join(out) + "\n"
