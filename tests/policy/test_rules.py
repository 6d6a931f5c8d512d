"""The rules judged over planned changes: the shipped examples, absent fields, errors that
block, overrides, and what `enforce` makes of a verdict. Pure: no registry, no GitHub."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops.plan.changes import Plan, SetAlias, SetModelTag, Target, TransitionStage
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan
from mlflow_gitops.policy.evaluate import enforce, judge
from mlflow_gitops.policy.facts import TEAMS_TOKEN, Approval, PullFacts
from mlflow_gitops.spec.policies import PolicyRule
from mlflow_gitops.spec.tree import load_tree

EXAMPLE = Path(__file__).parents[2] / "examples" / "policies" / "registry.yaml"
THURSDAY = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def _rules(*names: str) -> list[PolicyRule]:
    rules = load_tree(EXAMPLE).root.spec.policies or []
    return [r for r in rules if r.name in names]


def _promote(model: str = "m", version: int = 3) -> TransitionStage:
    return TransitionStage(
        model=model, target=Target(version=version), before="Staging", after="Production"
    )


def _tree(*registries: tuple[str, tuple[object, ...]]) -> TreePlan:
    return TreePlan(
        registries=tuple(
            RegistryPlan(registry=name, identity=f"http://{name}", plan=Plan(changes=changes))  # type: ignore[arg-type]
            for name, changes in registries
        )
    )


def _pr(*approvals: Approval, author: str = "alice", **more: object) -> PullFacts:
    return PullFacts(number=12, author=author, approvals=approvals, **more)  # type: ignore[arg-type]


def _statuses(
    rules: list[PolicyRule], tree: TreePlan, pr: PullFacts, now: datetime = THURSDAY
) -> list[str]:
    report = judge(rules, tree, pr, now)
    return [f"{v.model}:{r.rule}:{r.status}" for v in report.verdicts for r in v.results]


PLATFORM = "prod-promotions-need-platform"


@pytest.mark.parametrize(
    ("approvals", "status"),
    [
        ((Approval("bob", ("ml-platform",)),), "pass"),
        ((Approval("bob", ("data-science",)),), "fail"),
        ((), "fail"),
    ],
)
def test_prod_promotions_need_an_approval_from_ml_platform(
    approvals: tuple[Approval, ...], status: str
) -> None:
    tree = _tree(("prod", (_promote(),)), ("dev", (_promote("d"),)))
    assert _statuses(_rules(PLATFORM), tree, _pr(*approvals)) == [f"m:{PLATFORM}:{status}"]


def test_the_champion_alias_in_prod_is_a_promotion_too_and_a_tag_is_not() -> None:
    alias = SetAlias(model="m", alias="champion", before=2, target=Target(version=3))
    tag = SetModelTag(model="m", key="team", before=None, after="rides")
    tree = _tree(("prod", (alias, tag)))
    assert _statuses(_rules(PLATFORM), tree, _pr()) == [f"m:{PLATFORM}:fail"]


def test_without_the_teams_token_a_rule_on_teams_blocks_and_names_the_token() -> None:
    problem = f"team memberships cannot be read: {TEAMS_TOKEN} is not set"
    pr = _pr(Approval("bob", None), teams_problem=problem)
    report = judge(_rules(PLATFORM), _tree(("prod", (_promote(),))), pr, THURSDAY)
    ((verdict_result,),) = [v.results for v in report.verdicts]
    assert verdict_result.status == "error"
    assert TEAMS_TOKEN in verdict_result.detail
    assert report.blocked == {
        ("prod", "m"): [
            f"policy {PLATFORM} could not be evaluated, so it blocks: no field 'teams': {problem}"
        ]
    }


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (datetime(2026, 12, 4, 15, 0, tzinfo=UTC), "fail"),  # Friday 15:00
        (datetime(2026, 12, 4, 23, 59, tzinfo=UTC), "fail"),
        (datetime(2026, 12, 4, 14, 59, tzinfo=UTC), "pass"),
        (datetime(2026, 12, 5, 16, 0, tzinfo=UTC), "pass"),  # Saturday
        (THURSDAY, "pass"),
    ],
)
def test_no_production_change_on_friday_afternoon(now: datetime, status: str) -> None:
    demote = TransitionStage(
        model="old", target=Target(version=1), before="Production", after="Archived"
    )
    tree = _tree(("dev", (_promote(), demote)))
    rule = "no-friday-afternoon-production"
    assert _statuses(_rules(rule), tree, _pr(), now) == [
        f"m:{rule}:{status}",
        f"old:{rule}:{status}",
    ]


@pytest.mark.parametrize(("count", "status"), [(5, "pass"), (6, "fail")])
def test_a_pull_request_moves_at_most_five_models_in_prod(count: int, status: str) -> None:
    prod = tuple(_promote(f"m{i}") for i in range(count))
    tree = _tree(("prod", prod), ("dev", tuple(_promote(f"d{i}") for i in range(4))))
    rule = "at-most-5-models-in-prod"
    assert _statuses(_rules(rule), tree, _pr()) == [f"m{i}:{rule}:{status}" for i in range(count)]


@pytest.mark.parametrize(
    ("approvers", "status"),
    [(("alice",), "fail"), (("alice", "bob"), "pass"), (("bob",), "pass"), ((), "fail")],
)
def test_the_author_cannot_be_the_only_approver_of_their_promotion(
    approvers: tuple[str, ...], status: str
) -> None:
    rule = "author-is-not-the-only-approver"
    pr = _pr(*(Approval(a, ()) for a in approvers), author="alice")
    assert _statuses(_rules(rule), _tree(("dev", (_promote(),))), pr) == [f"m:{rule}:{status}"]


@pytest.mark.parametrize(
    "require",
    [
        "change.version > 3",
        "change.version <= 3",
        'change.from_stage < "Staging"',
        "pr.number >= 1",
    ],
)
def test_an_ordering_comparison_with_an_absent_field_is_false_not_an_error(require: str) -> None:
    rule = PolicyRule(name="r", require=require, message="no")
    tag = SetModelTag(model="m", key="k", before=None, after="v")  # no version, no stage
    assert _statuses([rule], _tree(("dev", (tag,))), PullFacts()) == ["m:r:fail"]
    negated = PolicyRule(name="r", require=f"!({require})", message="no")
    assert _statuses([negated], _tree(("dev", (tag,))), PullFacts()) == ["m:r:pass"]


@pytest.mark.parametrize(
    ("require", "detail"),
    [
        ("change.registry", "gives string, not a bool"),
        ("1 / 0 == 1", "divide by zero"),
        ("pr.approvals[3].user == 'x'", ""),
    ],
)
def test_a_rule_that_errs_blocks_its_change_never_passes_it(require: str, detail: str) -> None:
    rule = PolicyRule(name="r", require=require, message="no")
    report = judge([rule], _tree(("dev", (_promote(),))), _pr(), THURSDAY)
    ((result,),) = [v.results for v in report.verdicts]
    assert result.status == "error"
    assert detail in result.detail
    assert ("dev", "m") in report.blocked


@pytest.mark.parametrize(
    ("setter", "teams", "status"),
    [("carol", ("ml-platform-leads",), "overridden"), ("dave", ("data-science",), "fail")],
)
def test_an_owner_label_overrides_a_rule_only_when_a_member_of_the_team_set_it(
    setter: str, teams: tuple[str, ...], status: str
) -> None:
    pr = _pr(
        labels=("platform-override",),
        label_setters={"platform-override": setter},
        teams_of={setter: teams},
    )
    report = judge(_rules(PLATFORM), _tree(("prod", (_promote(),))), pr, THURSDAY)
    ((result,),) = [v.results for v in report.verdicts]
    assert result.status == status
    if status == "overridden":
        assert result.detail == f"label 'platform-override' set by {setter} (ml-platform-leads)"
        assert report.blocked == {}


def test_enforce_blocks_the_model_and_keeps_each_verdict_among_its_gates() -> None:
    tree = _tree(("prod", (_promote("a"), _promote("b"))), ("dev", (_promote("c"),)))
    pr = _pr(
        labels=("platform-override",),
        label_setters={"platform-override": "carol"},
        teams_of={"carol": ("ml-platform-leads",)},
    )
    rules = [
        *_rules(PLATFORM),
        PolicyRule.model_validate(
            {"name": "not-b", "if": 'change.model == "b"', "require": "false", "message": "b waits"}
        ),
    ]
    judged = enforce(tree, judge(rules, tree, pr, THURSDAY))
    prod, dev = judged.registries
    assert prod.plan.blocked == {"b": ("policy not-b: b waits",)}
    assert dev.plan.blocked == {}
    gates = [(g.model, g.gate, g.verdict, g.message) for g in prod.plan.gates]
    assert gates == [
        (
            "a",
            f"policy {PLATFORM}",
            "pass",
            "label 'platform-override' set by carol (ml-platform-leads)",
        ),
        (
            "b",
            f"policy {PLATFORM}",
            "pass",
            "label 'platform-override' set by carol (ml-platform-leads)",
        ),
        ("b", "policy not-b", "fail", "b waits"),
    ]
    assert judged.blocked
