"""The pull request as the loop, end to end: the apply workflow's steps run after a push to main
(merge, squash and rebase merges, and a push no pull request explains) against a real MLflow
registry and the GitHub API fake, which grants only the permissions apply.yml declares; the
plan workflow with policies; policies judged at apply with the merged pull request's reviews."""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_gitops.github.body import file_key, footer
from mlflow_gitops.record import AUDIT_EXPERIMENT, GATES_ARTIFACT, read_record
from mlflow_gitops.render.markdown import MARKER, escape
from tests.github.fake_github import TEAMS_TOKEN, TOKEN, FakeGitHub, serve
from tests.github.harness import (
    PR,
    REPOSITORY,
    ROOT,
    RUN_ID,
    make_runner,
    merge_push_event,
    pull_request_event,
)
from tests.integration.mlflow_helpers import client, log_regressor, register

pytestmark = [pytest.mark.integration]

APPLY_YML = ROOT / ".github" / "workflows" / "apply.yml"
PLAN_YML = ROOT / ".github" / "workflows" / "plan.yml"
RUN_URL = f"https://github.com/{REPOSITORY}/actions/runs/{RUN_ID}"
SHA = "5eed5eed" + "0123456789abcdef" * 2
PLAN_TEXT = "**Plan: 2 to change.** (as reviewed)"

POLICY = """\
policies:
  - name: production-needs-platform
    if: change.stage == "Production"
    require: pr.approvals.exists(a, "ml-platform" in a.teams)
    message: a promotion to Production needs an approval from ml-platform
    override: {label: platform-override, teams: [ml-platform-leads]}
"""


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('loop')}/mlflow.db"


@pytest.fixture(scope="module")
def run_id(uri: str) -> str:
    return log_regressor(uri, "linear").run_id


@pytest.fixture
def model(uri: str, run_id: str) -> str:
    """A model of its own for each test: two versions, neither in a stage."""
    name = f"loop-{uuid.uuid4().hex[:8]}"
    register(uri, name, run_id)
    register(uri, name, run_id)
    return name


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    # the job's token holds exactly what apply.yml's job asks for
    job = yaml.safe_load(APPLY_YML.read_text(encoding="utf-8"))["jobs"]["apply"]
    fake.granted = {f"{scope}:{level}" for scope, level in job["permissions"].items()}
    server = serve(fake)
    yield fake
    server.shutdown()


def _spec(workspace: Path, model: str, policies: str = "") -> None:
    text = textwrap.dedent(
        f"""\
        version: 1
        models:
          {model}:
            versions:
              - {{version: 1, stage: Staging}}
              - {{version: 2, stage: Production}}
            gates:
              Production: [{{max_size_mb: 50}}]
        """
    )
    (workspace / "registry.yaml").write_text(text + policies, encoding="utf-8")


def _plan_comment(github: FakeGitHub) -> dict[str, Any]:
    """The plan comment the plan job left on the pull request before the merge."""
    body = f"{MARKER}\n### mlflow-gitops plan: registry\\.yaml\n\n{PLAN_TEXT}\n"
    body += footer("registry.yaml", "abc1234" + "0" * 33, RUN_URL)
    github._create(REPOSITORY, PR, body, "github-actions[bot]")
    github.add(REPOSITORY, PR, "LGTM, merging")  # a person's comment stays as it is
    return github.ours(REPOSITORY, PR)[0]


def _apply(tmp_path: Path, github: FakeGitHub, uri: str, kind: str, **secrets: str) -> Any:
    runner = make_runner(
        tmp_path,
        merge_push_event(SHA, kind),
        {"MLFLOW_TRACKING_URI": uri, **secrets},
        github.url,
        sha=SHA,
    )
    return runner


def _writes(github: FakeGitHub) -> list[str]:
    return [f"{r.method} {r.path}" for r in github.requests if r.method != "GET"]


@pytest.mark.parametrize("kind", ["merge", "squash", "rebase"])
def test_a_merged_pull_request_shows_what_was_applied(
    kind: str, tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    github.add_pull(REPOSITORY, PR, author="alice", merge_sha=SHA, reviews=(("bob", "APPROVED"),))
    github.status(REPOSITORY, SHA, "ci/tests", "pending")  # another check still running
    before = _plan_comment(github)
    runner = _apply(tmp_path, github, uri, kind)
    _spec(runner.workspace, model)

    job = runner.run_job(APPLY_YML, "apply")

    step = job.step("Apply")
    assert job.ok, step.stdout + step.stderr
    # the same comment, the plan as reviewed, then what happened
    (comment,) = github.ours(REPOSITORY, PR)
    assert comment["id"] == before["id"]
    body = comment["body"]
    assert body.startswith(before["body"].split("\n---\n")[0])
    assert PLAN_TEXT in body
    assert f"Applied at {SHA[:7]}: applied" in body
    assert "default: applied" in body
    assert body.index(PLAN_TEXT) < body.index("Applied at") < body.index("\n---\n<sub>Plan of")
    assert f"| {escape(model)} | v2 None \\-&gt; Production | applied |  |" in body
    assert f"| {escape(model)} | v1 None \\-&gt; Staging | applied |  |" in body
    assert "Gate evidence that held" in body
    assert f"| {escape(model)} | max\\_size\\_mb | v2 → Production | ✅" in body
    assert re.search(r"Audit run: `[0-9a-f]{32}`\n", body)  # sqlite: no UI to link
    assert body.endswith(file_key("registry.yaml") + "\n")  # still the file's sticky comment
    assert len(github.comments[(REPOSITORY, PR)]) == 2  # the person's comment is untouched
    # the merge commit's status, next to the pending check
    assert github.latest_statuses(REPOSITORY, SHA) == {
        "ci/tests": "pending",
        "mlflow-gitops/apply": "success",
    }
    status = github.statuses[(REPOSITORY, SHA)][-1]
    assert status["target_url"] == RUN_URL
    # one deployment for the registry, made although a status is pending
    (deployment,) = github.deployments
    assert deployment["environment"] == "default"
    assert deployment["required_contexts"] == []
    assert [s["state"] for s in deployment["statuses"]] == ["success"]
    assert deployment["statuses"][0]["log_url"] == RUN_URL
    # the versions' records name the pull request, a rebase merge's too (from GitHub's API)
    record = read_record(client(uri).get_model_version(model, "2").tags)
    assert str(record["pr"]) == str(PR)
    assert record["commit"] == SHA
    assert TOKEN not in step.stdout + step.stderr + job.summary


def test_a_push_no_pull_request_explains_gets_a_status_and_deployments_only(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    runner = _apply(tmp_path, github, uri, "direct")
    _spec(runner.workspace, model)

    job = runner.run_job(APPLY_YML, "apply")

    assert job.ok, job.step("Apply").stderr
    assert _writes(github) == [
        f"POST /repos/{REPOSITORY}/statuses/{SHA}",
        f"POST /repos/{REPOSITORY}/deployments",
        f"POST /repos/{REPOSITORY}/deployments/{github.deployments[0]['id']}/statuses",
    ]
    assert github.comments == {}
    record = read_record(client(uri).get_model_version(model, "2").tags)
    assert record["pr"] is None


def test_the_fake_refuses_a_deployment_while_a_status_is_pending_as_github_does(
    github: FakeGitHub,
) -> None:
    github.status(REPOSITORY, SHA, "ci/tests", "pending")
    body = {"ref": SHA, "environment": "prod"}
    status, answer, _ = github.handle(
        "POST", f"/repos/{REPOSITORY}/deployments", f"Bearer {TOKEN}", body
    )
    assert (status, answer["message"]) == (409, f"Conflict: Commit status checks failed for {SHA}.")
    status, _, _ = github.handle(
        "POST",
        f"/repos/{REPOSITORY}/deployments",
        f"Bearer {TOKEN}",
        {**body, "required_contexts": []},
    )
    assert status == 201


def test_without_the_permissions_the_job_fails_and_says_which(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    github.granted = {"contents:read", "pull-requests:write"}  # an older apply.yml
    github.add_pull(REPOSITORY, PR, author="alice", merge_sha=SHA)
    runner = _apply(tmp_path, github, uri, "merge")
    _spec(runner.workspace, model)

    job = runner.run_job(APPLY_YML, "apply")

    assert not job.ok
    out = job.failed.stdout + job.failed.stderr
    assert f"GitHub answered 403 to POST /repos/{REPOSITORY}/statuses/{SHA}" in out
    assert "statuses: write" in out
    # the registry holds the apply all the same: re-running the job reports it
    assert client(uri).get_model_version(model, "2").current_stage == "Production"


def test_an_unmet_policy_blocks_the_model_at_apply_and_the_comment_says_why(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    # bob approved, but the job has no teams token: memberships cannot be read
    github.add_pull(REPOSITORY, PR, author="alice", merge_sha=SHA, reviews=(("bob", "APPROVED"),))
    github.teams["acme"] = {"ml-platform": {"bob"}}
    _plan_comment(github)
    runner = _apply(tmp_path, github, uri, "squash")
    _spec(runner.workspace, model, POLICY)

    job = runner.run_job(APPLY_YML, "apply")

    step = job.step("Apply")
    assert not job.ok
    assert "exit 3" not in step.stdout  # the workflow's own exit, the code is the tool's
    assert step.code == 3, step.stdout + step.stderr
    versions = {
        v.version: v.current_stage for v in client(uri).search_model_versions(f"name='{model}'")
    }
    assert versions == {1: "None", 2: "None"}  # nothing of the blocked model was applied
    body = github.ours(REPOSITORY, PR)[0]["body"]
    assert f"Applied at {SHA[:7]}: blocked" in body
    assert "**Blocked:**" in body
    assert "MLFLOW\\_GITOPS\\_TEAMS\\_TOKEN is not set" in body
    assert github.latest_statuses(REPOSITORY, SHA)["mlflow-gitops/apply"] == "failure"
    (deployment,) = github.deployments
    assert [s["state"] for s in deployment["statuses"]] == ["failure"]
    # the teams were never asked with the job's token
    assert not any(r.path.startswith("/orgs/") for r in github.requests)


def test_a_policy_met_by_the_merged_reviews_lets_the_change_through(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    github.add_pull(
        REPOSITORY, PR, author="alice", merge_sha=SHA,
        reviews=(("bob", "CHANGES_REQUESTED"), ("carol", "APPROVED"), ("bob", "APPROVED")),
    )  # fmt: skip
    github.teams["acme"] = {"ml-platform": {"bob"}, "data-science": {"carol"}}
    runner = _apply(tmp_path, github, uri, "merge", MLFLOW_GITOPS_TEAMS_TOKEN=TEAMS_TOKEN)
    _spec(runner.workspace, model, POLICY)

    job = runner.run_job(APPLY_YML, "apply")

    assert job.ok, job.step("Apply").stdout + job.step("Apply").stderr
    assert client(uri).get_model_version(model, "2").current_stage == "Production"
    teams_requests = [r for r in github.requests if r.path.startswith("/orgs/")]
    assert teams_requests
    assert all(r.authorization == f"Bearer {TEAMS_TOKEN}" for r in teams_requests)
    (policy,) = [g for g in _audit_gates(uri) if g["gate"].startswith("policy ")]
    assert (policy["model"], policy["gate"], policy["verdict"], policy["message"]) == (
        model,
        "policy production-needs-platform",
        "pass",
        "holds",
    )


def test_a_policy_owners_label_overrides_and_the_audit_run_records_it(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    github.add_pull(
        REPOSITORY, PR, author="alice", merge_sha=SHA,
        labels=(("platform-override", "dana"),), reviews=(("carol", "APPROVED"),),
    )  # fmt: skip
    github.teams["acme"] = {"ml-platform-leads": {"dana"}, "data-science": {"carol"}}
    runner = _apply(tmp_path, github, uri, "merge", MLFLOW_GITOPS_TEAMS_TOKEN=TEAMS_TOKEN)
    _spec(runner.workspace, model, POLICY)

    job = runner.run_job(APPLY_YML, "apply")

    assert job.ok, job.step("Apply").stdout + job.step("Apply").stderr
    assert client(uri).get_model_version(model, "2").current_stage == "Production"
    (gate,) = [g for g in _audit_gates(uri) if g["gate"] == "policy production-needs-platform"]
    assert (gate["model"], gate["verdict"]) == (model, "pass")
    assert gate["message"] == "label 'platform-override' set by dana (ml-platform-leads)"


def _audit_gates(uri: str) -> list[dict[str, Any]]:
    """gates.json of the newest audit run."""
    mlflow = client(uri)
    experiment = mlflow.get_experiment_by_name(AUDIT_EXPERIMENT)
    (run,) = mlflow.search_runs(
        [experiment.experiment_id], order_by=["start_time DESC"], max_results=1
    )
    path = mlflow.download_artifacts(run.info.run_id, GATES_ARTIFACT)
    gates: list[dict[str, Any]] = json.loads(Path(path).read_text(encoding="utf-8"))["gates"]
    return gates


def test_the_plan_comment_lists_the_rules_each_change_meets_and_lacks(
    tmp_path: Path, github: FakeGitHub, uri: str, model: str
) -> None:
    github.granted = None
    github.add_pull(REPOSITORY, PR, author="alice", reviews=(("carol", "APPROVED"),))
    github.teams["acme"] = {"data-science": {"carol"}}
    runner = make_runner(
        tmp_path,
        pull_request_event(),
        {"MLFLOW_TRACKING_URI": uri, "MLFLOW_GITOPS_TEAMS_TOKEN": TEAMS_TOKEN},
        github.url,
    )
    _spec(runner.workspace, model, POLICY)

    job = runner.run_job(PLAN_YML, "plan")

    plan = job.step("Plan, comment")
    assert job.ok, plan.stderr  # unmet at plan time is shown, it does not block yet
    assert plan.outputs == {"exit-code": "2"}
    body = github.ours(REPOSITORY, PR)[0]["body"]
    assert "**Policies**" in body
    assert "1 change(s) do not meet every rule yet" in body
    assert (
        "❌ production\\-needs\\-platform: needs: a promotion to Production needs an approval "
        "from ml\\-platform" in body
    )
