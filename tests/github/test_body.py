"""Comment bodies: fitted to GitHub's limits, inert for user text, annotations escaped."""

from __future__ import annotations

import re

import pytest

from mlflow_gitops.errors import RegistryError, SpecIssue
from mlflow_gitops.github import body as bodies
from mlflow_gitops.plan.changes import Plan, SetModelDescription, SetModelTag
from mlflow_gitops.render.markdown import MARKER, render_plan


def _plan_text(models: int, rows: int = 40) -> str:
    out = [MARKER, "### plan", "", "**Plan: many changes.**", ""]
    for m in range(models):
        out += [f"#### model-{m}", "", "| | change |", "|---|---|"]
        out += [f"| `~` | tag k{r} |" for r in range(rows)]
        out.append("")
    return "\n".join(out) + "\n"


def _note(shown: int, total: int) -> str:
    return f"NOTE {shown}/{total}\n"


def test_a_body_within_the_limit_is_unchanged() -> None:
    text = _plan_text(2)
    assert bodies.fit(text, len(text), _note) == text


@pytest.mark.parametrize("limit", [600, 2_000, 10_000])
def test_a_long_body_is_cut_at_a_line_and_says_how_much_it_shows(limit: int) -> None:
    text = _plan_text(50)
    fitted = bodies.fit(text, limit, _note)
    assert len(fitted) <= limit
    head, note = fitted.rsplit("\n\n", 1)
    assert text.startswith(head)  # whole lines from the start
    shown = head.count("\n#### ")
    assert note == f"NOTE {shown}/50\n"


def test_the_byte_measure_counts_utf8() -> None:
    text = _plan_text(30).replace("tag", "étiquette ✓")
    fitted = bodies.fit(text, 3_000, _note, lambda s: len(s.encode()))
    assert len(fitted.encode()) <= 3_000


def test_a_cut_never_leaves_half_a_mermaid_chart() -> None:
    chart = "```mermaid\nxychart-beta\n" + "    bar [1, 2]\n" * 200 + "```\n"
    text = _plan_text(1, rows=3) + chart + _plan_text(1)
    fitted = bodies.fit(text, 1_500, _note)
    assert "```mermaid" not in fitted


def test_a_cut_inside_a_list_of_problems_closes_the_code_block() -> None:
    text = bodies.fenced("\n".join(f"registry.yaml:{n}:1: problem {n}" for n in range(1, 2000)))
    fitted = bodies.fit(MARKER + "\n" + text, 2_000, _note)
    fences = re.findall(r"^```", fitted, flags=re.MULTILINE)
    assert len(fences) == 2
    assert len(fitted) <= 2_000


def test_backticks_in_the_text_cannot_close_its_code_block() -> None:
    block = bodies.fenced("a ``` b ```` c")
    assert block.startswith("`````text\n")
    assert block.endswith("\n`````")


def test_user_text_in_the_comment_is_inert() -> None:
    hostile = "<img src=x onerror=alert(1)> @everyone | **b** [l](https://e.example)"
    plan = Plan(
        changes=(
            SetModelDescription(model="<b>m</b>", before=None, after=hostile[:60]),
            SetModelTag(model="<b>m</b>", key="`k`|", before=None, after="<script>x</script>"),
        )
    )
    text = render_plan(plan, title=bodies.title("<i>registry</i>.yaml"))
    for raw in ("<img", "<b>", "<i>", "<script", "@everyone", "](https", "**b**", "`k`"):
        assert raw not in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    for line in rows:  # user text cannot add a cell: every other | is escaped
        assert len(re.findall(r"(?<!\\)\|", line)) == 6


def test_an_invalid_file_lists_every_problem_in_a_code_block() -> None:
    issues = [
        SpecIssue("registry.yaml", 6, 9, "models.m.versions[0].stgae", "unknown key 'stgae'"),
        SpecIssue("registry.yaml", 9, 3, "models.<b>x</b>", "bad ``` value", "a hint"),
    ]
    text = bodies.invalid("registry.yaml", issues)
    assert text.startswith(MARKER)
    assert "(2 problems)" in text
    assert "registry.yaml:6:9: models.m.versions[0].stgae: unknown key 'stgae'" in text
    assert "````text\n" in text  # longer than the ``` in the message


def test_a_failure_says_what_happened_and_what_to_do() -> None:
    error = RegistryError(
        "cannot read the registry: the registry is unreachable", "check <the> URI"
    )
    text = bodies.failed("registry.yaml", error)
    assert "**Could not reach the registry**" in text
    assert "```text\ncannot read the registry: the registry is unreachable\n```" in text
    assert "**What to do:** check &lt;the&gt; URI" in text


def test_the_file_key_tells_two_files_comments_apart() -> None:
    first = MARKER + "\nplan" + bodies.footer("registry.yaml", "1a2b3c4d", None)
    assert bodies.is_ours(first, "registry.yaml")
    assert not bodies.is_ours(first, "teams/b/registry.yaml")
    assert not bodies.is_ours("quoting " + first, "registry.yaml")  # must start with the marker


def test_annotations_are_escaped_workflow_commands() -> None:
    issue = SpecIssue("dir,a:b/registry.yaml", 3, 5, "models.m", "bad\nvalue 100%")
    (line,) = bodies.error_annotations([issue])
    assert line == (
        "::error file=dir%2Ca%3Ab/registry.yaml,line=3,col=5,title=mlflow-gitops::"
        "models.m: bad%0Avalue 100%25"
    )


def test_log_text_cannot_issue_workflow_commands() -> None:
    text = bodies.inert("| description |\n::add-mask::secret\n")
    first, *middle, last, _ = text.split("\n")
    token = first.removeprefix("::stop-commands::")
    assert len(token) == 32
    assert middle == ["| description |", "::add-mask::secret"]
    assert last == f"::{token}::"
