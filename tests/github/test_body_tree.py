"""The pull-request comment of a tree: grouped by registry then file, partial plans say so, and a
tree of 200 files stays within GitHub's limit with every file that has changes named."""

from __future__ import annotations

import re
from pathlib import Path

from mlflow_gitops.github.body import COMMENT_LIMIT
from mlflow_gitops.github.context import Actions, PullRequest
from mlflow_gitops.github.publish import publish, tree_outcome
from mlflow_gitops.plan.changes import (
    CreateModel,
    Plan,
    SetModelDescription,
    SetModelTag,
    Target,
    TransitionStage,
)
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.render.markdown import escape, render_plan, render_tree
from tests.github.fake_github import TOKEN, FakeGitHub

REPO, PR = "acme/reg", 8
ROOT = Path("registry.yaml")
IDENTITY = {"dev": "http://mlflow-dev.internal:5000", "prod": "http://mlflow-prod.internal:5000"}


def _model_changes(model: str, tags: int) -> list[object]:
    changes: list[object] = [
        CreateModel(model=model),
        SetModelDescription(model=model, before=None, after=f"The {model} model."),
        TransitionStage(model=model, target=Target(version=1), before="None", after="Staging"),
    ]
    changes += [
        SetModelTag(model=model, key=f"key{k}", before="old", after="new") for k in range(tags)
    ]
    return changes


def _registry(name: str, files: int, models_per_file: int = 2, tags: int = 6) -> RegistryPlan:
    """`files` files teams/team-<i>/<name>.yaml, each declaring `models_per_file` models with
    changes; the last model of file 0 is blocked."""
    changes: list[object] = []
    owner: dict[str, str] = {}
    blocked: dict[str, tuple[str, ...]] = {}
    for f in range(files):
        for m in range(models_per_file):
            model = f"{name}-model-{f:03d}-{m}"
            owner[model] = f"teams/team-{f:03d}/{name}.yaml"
            changes += _model_changes(model, tags)
    blocked[f"{name}-model-000-{models_per_file - 1}"] = ("gate rmse failed: 7.4 > 7.0",)
    plan = Plan(changes=tuple(changes), blocked=blocked)  # type: ignore[arg-type]
    return RegistryPlan(registry=name, identity=IDENTITY[name], plan=plan, files=owner)


def _tree(files: int, **selected: tuple[str, ...]) -> TreePlan:
    return TreePlan(registries=(_registry("dev", files), _registry("prod", files)), **selected)


def _actions(github: FakeGitHub, tmp_path: Path) -> Actions:
    return Actions(
        active=True,
        api_url=github.url,
        token=TOKEN,
        summary=tmp_path / "summary.md",
        run_url="https://github.com/acme/reg/actions/runs/1",
        commit="c0ffee0" + "0" * 33,
        pull_request=PullRequest(REPO, PR, from_fork=False),
    )


def _headings(text: str) -> list[str]:
    return re.findall(r"^#{3,5} .*$", text, flags=re.MULTILINE)


def test_changes_are_grouped_by_registry_then_file_then_model() -> None:
    text = render_tree(_tree(2), title="plan")
    assert _headings(text) == [
        "### plan",
        f"### Registry dev · {escape(IDENTITY['dev'], 200)}",
        f"#### {escape('teams/team-000/dev.yaml', 200)}",
        f"##### {escape('dev-model-000-0', 120)}",
        f"##### {escape('dev-model-000-1', 120)}",
        f"#### {escape('teams/team-001/dev.yaml', 200)}",
        f"##### {escape('dev-model-001-0', 120)}",
        f"##### {escape('dev-model-001-1', 120)}",
        f"### Registry prod · {escape(IDENTITY['prod'], 200)}",
        f"#### {escape('teams/team-000/prod.yaml', 200)}",
        f"##### {escape('prod-model-000-0', 120)}",
        f"##### {escape('prod-model-000-1', 120)}",
        f"#### {escape('teams/team-001/prod.yaml', 200)}",
        f"##### {escape('prod-model-001-0', 120)}",
        f"##### {escape('prod-model-001-1', 120)}",
    ]
    # the total, then each registry's own count
    assert "**Plan: 72 to change (16 to add, 56 to change, 0 to delete) in 8 models." in text
    assert " 4 files in 2 registries.**" in text
    assert text.count("to change (8 to add, 28 to change, 0 to delete) in 4 models.") == 2
    assert "**Blocked:** gate rmse failed" in text


def test_a_model_no_file_declares_is_shown_last_under_its_own_heading() -> None:
    reg = _registry("dev", 1)
    orphan = reg.plan.model_copy(
        update={"changes": (*reg.plan.changes, CreateModel(model="aaa-first-by-name"))}
    )
    text = render_tree(TreePlan(registries=(reg.model_copy(update={"plan": orphan}),)))
    files = [h for h in _headings(text) if h.startswith("#### ")]
    assert files[-1] == "#### (not declared in any file)"


def test_a_partial_plan_says_what_was_selected_and_that_the_rest_was_not_read() -> None:
    text = render_tree(_tree(1, selected_registries=("prod",), selected_models=("m-1",)))
    assert "**Partial plan**: only registries `prod` and models `m\\-1`." in text
    assert "The rest of the tree was neither read nor planned" in text
    assert "Partial plan" not in render_tree(_tree(1))


def test_a_single_file_against_one_registry_renders_exactly_as_before() -> None:
    plan = _registry("dev", 1).plan
    tree = TreePlan(
        registries=(
            RegistryPlan(
                registry="default",
                identity="sqlite:///mlflow.db",
                plan=plan,
                files=dict.fromkeys(plan.models, "registry.yaml"),
            ),
        )
    )
    assert render_tree(tree, title="t") == render_plan(plan, title="t")


def test_a_tree_of_200_files_fits_a_comment_and_names_every_file_with_changes(
    github: FakeGitHub, tmp_path: Path
) -> None:
    tree = _tree(100)  # 100 files per registry: 200 files with changes
    outcome = tree_outcome(tree, ROOT)
    assert len(outcome.body) > 3 * COMMENT_LIMIT  # far too long to post whole

    publish(outcome, ROOT, _actions(github, tmp_path), tmp_path / "plan.md")

    (comment,) = github.comments[(REPO, PR)]
    text = comment["body"]
    assert len(text) <= COMMENT_LIMIT
    for reg in tree.registries:  # every file with changes, in its registry's table, counted
        section = text.split(f"### Registry {reg.registry}")[1].split("### Registry")[0]
        for f in range(100):
            name = escape(f"teams/team-{f:03d}/{reg.registry}.yaml", 200)
            assert f"| {name} | 2 | 4 | 14 | 0 | " in section
        assert f"| {escape(f'{reg.registry}-model-000-1', 60)} |" in section  # blocked
    assert "This plan is too long for a comment" in text
    assert "[job summary](https://github.com/acme/reg/actions/runs/1)" in text
    shown = len(re.findall(r"^##### ", text, flags=re.MULTILINE))
    assert 0 < shown < 400
    assert f"The changes stop here, after {shown} of 400 models" in text
    # the whole plan is kept where it fits: the job summary and --out
    assert outcome.body in (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert (tmp_path / "plan.md").read_text(encoding="utf-8").startswith(outcome.body)


def test_a_tree_that_fits_is_posted_whole(github: FakeGitHub, tmp_path: Path) -> None:
    outcome = tree_outcome(_tree(3), ROOT)
    publish(outcome, ROOT, _actions(github, tmp_path), None)
    (comment,) = github.comments[(REPO, PR)]
    assert comment["body"].startswith(outcome.body)
    assert "too long" not in comment["body"]


def test_thousands_of_files_cut_even_the_list_of_files_and_say_so(
    github: FakeGitHub, tmp_path: Path
) -> None:
    tree = TreePlan(registries=(_registry("dev", 1500, models_per_file=1, tags=0),))
    publish(tree_outcome(tree, ROOT), ROOT, _actions(github, tmp_path), None)
    (comment,) = github.comments[(REPO, PR)]
    text = comment["body"]
    assert len(text) <= COMMENT_LIMIT
    rows = len(re.findall(r"^\| teams", text, flags=re.MULTILINE))
    assert f"it stops after {rows} of 1500 files" in text
