"""The Applied section, the commit status and the deployment states: pure functions of an apply's
outcome (the end-to-end runs are in test_loop.py)."""

from __future__ import annotations

import pytest

from mlflow_gitops.github.applied import (
    END,
    START,
    deployment_state,
    refused_section,
    registry_state,
    section,
    status_description,
    ui_link,
    with_section,
)
from mlflow_gitops.github.body import footer
from mlflow_gitops.outcome import ApplyOutcome, ApplyResult, RegistryResult, Step
from mlflow_gitops.plan.changes import Plan
from mlflow_gitops.plan.tree import RegistryPlan, TreePlan

SHA = "c0ffee0" + "1" * 33


def _outcome(*results: RegistryResult) -> ApplyOutcome:
    tree = TreePlan(
        registries=tuple(
            RegistryPlan(registry=r.name, identity=r.uri, plan=Plan()) for r in results
        )
    )
    return ApplyOutcome(Plan(), results[0].uri, None, results, tree)


def _result(name: str, *statuses: str, record: str | None = "abc123") -> RegistryResult:
    steps = tuple(
        Step("m", f"change {i}", s, "why" if s != "applied" else "") for i, s in enumerate(statuses)
    )  # type: ignore[arg-type]
    return RegistryResult(name, f"https://{name}.example/mlflow", ApplyResult(steps, record))


@pytest.mark.parametrize(
    ("results", "state", "description"),
    [
        ((_result("dev", "applied", "applied"),), "success", "applied 2 change(s)"),
        (
            (_result("dev", "applied"), _result("prod", "blocked", "blocked")),
            "failure",
            "blocked by a gate or policy: 2 change(s); 1 applied",
        ),
        (
            (
                _result("dev", "failed", "not applied"),
                RegistryResult("prod", "x", None, skipped=True),
            ),
            "failure",
            "apply failed: 2 change(s) not applied, 0 applied",
        ),
        (
            (RegistryResult("dev", "x", None),),
            "success",
            "no changes: the registry matches the file",
        ),
    ],
)
def test_the_commit_status_says_applied_blocked_or_failed(
    results: tuple[RegistryResult, ...], state: str, description: str
) -> None:
    assert status_description(_outcome(*results)) == (state, description)


@pytest.mark.parametrize(
    ("result", "state", "deployment"),
    [
        (_result("r", "applied"), "applied", "success"),
        (_result("r", "applied", "blocked"), "blocked", "failure"),
        (_result("r", "applied", "failed"), "failed", "failure"),
        (RegistryResult("r", "x", None, skipped=True), "not applied", "error"),
    ],
)
def test_each_registry_has_one_state_and_its_deployment_one_status(
    result: RegistryResult, state: str, deployment: str
) -> None:
    assert registry_state(result).state == state
    assert deployment_state(registry_state(result).state) == deployment


@pytest.mark.parametrize(
    ("uri", "link"),
    [
        ("https://bob:s3cret@mlflow.example:8443/ml/", "https://mlflow.example:8443/ml/#/runs/r1"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/#/runs/r1"),
        ("sqlite:///mlflow.db", None),
        ("databricks://prod", None),
    ],
)
def test_the_audit_run_links_to_the_mlflow_ui_without_credentials(
    uri: str, link: str | None
) -> None:
    assert ui_link(uri, "r1") == link


def test_a_second_apply_replaces_the_section_and_keeps_the_plan_and_footer() -> None:
    plan = "<!-- mlflow-gitops:plan -->\n### plan\n\n**Plan: 1 to change.**\n"
    foot = footer("registry.yaml", SHA, None)
    blocked = section(_outcome(_result("prod", "blocked")), SHA, None)
    first = with_section(plan + foot, blocked)
    applied = section(_outcome(_result("prod", "applied")), SHA, None)
    second = with_section(first, applied)

    assert first.count(START) == second.count(START) == 1
    assert second.startswith(plan.rstrip("\n"))
    assert second.endswith(foot)
    assert "Applied at c0ffee0: applied" in second
    assert "blocked" not in second.split(START)[1].split(END)[0]
    assert "**Blocked:**" in first
    assert (
        "Audit run: `abc123` ([open in MLflow](https://prod.example/mlflow/#/runs/abc123))"
        in second
    )


def test_an_apply_refused_before_any_change_says_so_and_shows_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-pw")
    text = refused_section("permission denied for alice (password hunter2-pw)", SHA, None)
    assert "failed before changing anything" in text
    assert "hunter2-pw" not in text
