"""Comment bodies: the plan fitted to GitHub's limits, and the failures that stand in for a plan.

Pure functions of strings. Text from the registry or the file is escaped by the Markdown renderer
or shown in code blocks, where GitHub renders no HTML, no Markdown and no @mentions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence

from mlflow_gitops.errors import GitopsError, RegistryError, SpecError, SpecIssue
from mlflow_gitops.render.markdown import MARKER, MODEL_HEADING, escape

COMMENT_LIMIT = 65_536  # characters: GitHub refuses a longer issue comment
SUMMARY_LIMIT = 1_000_000  # bytes: GitHub drops a step summary above 1 MiB
ARTIFACT = "mlflow-gitops-plan"  # the artifact the action uploads the full plan as

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def title(file: str) -> str:
    """`mlflow-gitops plan: registry.yaml`, escaped."""
    return f"mlflow-gitops plan: {escape(file, 120)}"


def file_key(file: str) -> str:
    """A hidden line naming the registry file, so that two files' plans keep two comments."""
    return f"<!-- mlflow-gitops:file {hashlib.sha256(file.encode()).hexdigest()[:16]} -->"


def is_ours(body: str, file: str) -> bool:
    """Whether a comment is the plan comment of this file (an earlier run of this tool)."""
    return body.startswith(MARKER) and file_key(file) in body


def footer(file: str, commit: str | None, run_url: str | None) -> str:
    """Which file at which commit, and a link to the run: reviewers see what the plan is of."""
    parts = [f"Plan of {escape(file, 120)}"]
    if commit:
        parts.append(f"at {escape(commit[:7])}")
    if run_url:
        parts.append(f"· [workflow run]({run_url})")
    parts.append("· updated on every push")
    return f"\n---\n<sub>{' '.join(parts)}</sub>\n{file_key(file)}\n"


def invalid(file: str, issues: Sequence[SpecIssue]) -> str:
    """The comment for a registry file that cannot be used: every problem with file:line."""
    count = len(issues)
    lines = "\n".join(issue.render() for issue in issues)
    return (
        f"{MARKER}\n### {title(file)}\n\n"
        f"> [!CAUTION]\n> **{escape(file, 120)} is invalid** ({count} problem"
        f"{'s' if count != 1 else ''}): nothing was planned. Fix the lines below and push again.\n\n"
        f"{fenced(lines)}\n"
    )


def failed(file: str, error: GitopsError) -> str:
    """The comment for a plan that could not be made (the registry could not be read)."""
    lead = (
        "Could not reach the registry"
        if isinstance(error, RegistryError)
        else "Could not make the plan"
    )
    out = [
        MARKER,
        f"### {title(file)}",
        "",
        "> [!CAUTION]",
        f"> **{lead}**, so there is no plan for this push. Nothing was changed.",
        "",
        fenced(error.message),
    ]
    if error.hint:
        out += ["", f"**What to do:** {escape(error.hint, 1000)}"]
    return "\n".join(out) + "\n"


def fenced(text: str) -> str:
    """A code block that no backticks in the text can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def is_model(line: str) -> bool:
    """A model's heading in a single file's plan."""
    return line.startswith("#### ")


def is_tree_model(line: str) -> bool:
    """A model's heading in a tree's plan (a file is ####)."""
    return line.startswith(MODEL_HEADING + " ")


def fit(
    body: str,
    limit: int,
    note: Callable[[int, int], str],
    measure: Callable[[str], int] = len,
    unit: Callable[[str], bool] = is_model,
) -> str:
    """The body, or its head cut at a line boundary with `note(shown, total)` units (models)
    appended, so that the result measures at most `limit`. Cuts outside code blocks where it
    can (a cut mermaid chart shows as an error), else closes the block it cut."""
    if measure(body) <= limit:
        return body
    lines = body.split("\n")
    total = sum(map(unit, lines))
    budget = limit - measure(note(total, total)) - 16  # the note with the largest counts, a fence
    kept: list[str] = []
    used = 0
    fence, info = "", ""  # the open code block's fence and language
    safe = 0  # kept[:safe] ends outside any code block
    for line in lines:
        cost = measure(line) + 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
        found = _FENCE.match(line)
        if found and not fence:
            fence, info = found.group(1), line[found.end() :].strip()
        elif found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence):
            fence, info = "", ""
        if not fence:
            safe = len(kept)
    if fence and info == "mermaid":
        kept = kept[:safe]  # half a chart renders as an error box: drop it
    elif fence:
        kept.append(fence)  # half a list of problems is still worth reading: close the block
    shown = sum(map(unit, kept))
    return "\n".join(kept) + "\n\n" + note(shown, total)


def comment_note(full_length: int, run_url: str | None) -> Callable[[int, int], str]:
    """The note that ends a plan too long for a comment."""
    where = f"[job summary]({run_url})" if run_url else "job summary"

    def note(shown: int, total: int) -> str:
        return (
            f"> [!NOTE]\n> This plan is too long for a comment ({full_length:,} characters; "
            f"GitHub allows {COMMENT_LIMIT:,}), so it stops after {shown} of {total} models. "
            f"The full plan is in the {where} and in the `{ARTIFACT}` artifact.\n"
        )

    return note


def tree_comment(full: str, overview: str, details: str, limit: int, run_url: str | None) -> str:
    """The comment of a tree's plan: `full` when it fits; else the `overview` (every file with
    changes and its counts, which always stays whole unless it alone is too long), a note
    saying where the full plan is, then the `details` as far as they fit."""
    if len(full) <= limit:
        return full
    where = f"[job summary]({run_url})" if run_url else "job summary"
    lead = (
        f"> [!NOTE]\n> This plan is too long for a comment ({len(full):,} characters; GitHub "
        f"allows {COMMENT_LIMIT:,}). Above: every file with changes and its counts. Below: the "
        f"changes, as far as they fit. The full plan is in the {where} and in the "
        f"`{ARTIFACT}` artifact.\n"
    )
    head = overview + "\n" + lead + "\n"
    if len(head) + 200 > limit:  # thousands of files: even the overview is cut, and says so
        return fit(overview, limit, _files_note(where), unit=is_file_row)
    return head + fit(details, limit - len(head), _details_note(where), unit=is_tree_model)


def is_file_row(line: str) -> bool:
    """A file's row in a tree's overview table."""
    return line.startswith("| ") and not line.startswith("| file |")


def _files_note(where: str) -> Callable[[int, int], str]:
    def note(shown: int, total: int) -> str:
        return (
            f"> [!NOTE]\n> This plan is too long for a comment, even as a list of files: it "
            f"stops after {shown} of {total} files. The full plan is in the {where} and in "
            f"the `{ARTIFACT}` artifact.\n"
        )

    return note


def _details_note(where: str) -> Callable[[int, int], str]:
    def note(shown: int, total: int) -> str:
        return (
            f"> [!NOTE]\n> The changes stop here, after {shown} of {total} models; every file "
            f"is counted above. The full plan is in the {where} and in the `{ARTIFACT}` "
            "artifact.\n"
        )

    return note


def summary_note(shown: int, total: int) -> str:
    """The note that ends a plan too long for a job summary."""
    return (
        f"> [!NOTE]\n> This plan is too long for a job summary (GitHub allows 1 MiB), so it stops "
        f"after {shown} of {total} models. The full plan is in the `{ARTIFACT}` artifact.\n"
    )


def job_log(body: str, error: GitopsError | None, active: bool) -> tuple[str, str]:
    """What the job log shows of a comment (stdout, stderr): the body (inert in Actions), an
    annotation per problem of an invalid file (in Actions), and the error."""
    out = inert(body) if active else body
    if isinstance(error, SpecError) and active:
        out += "".join(line + "\n" for line in error_annotations(error.issues))
    return out, error.render() + "\n" if error is not None else ""


def inert(text: str) -> str:
    """Text for the job log with workflow commands (`::...`) switched off around it: a registry
    description must not be able to add a mask, an annotation or anything else."""
    token = secrets.token_hex(16)
    return (
        f"::stop-commands::{token}\n{text}{'' if text.endswith(chr(10)) else chr(10)}::{token}::\n"
    )


def error_annotations(issues: Sequence[SpecIssue]) -> list[str]:
    """GitHub Actions `::error` commands, so that each problem shows on its line of the diff."""
    return [
        f"::error file={_property(i.file)},line={i.line},col={i.column},"
        f"title=mlflow-gitops::{_data(f'{i.path}: {i.message}' if i.path else i.message)}"
        for i in issues
    ]


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
