"""The pull-request flow end to end: the plan and apply workflows' steps run on this machine with
a synthesised GitHub context, a fake GitHub API on loopback and a real MLflow registry."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from mlflow_gitops.record import read_record
from mlflow_gitops.render.markdown import MARKER
from tests.cli_runner import run_cli
from tests.github.fake_github import TOKEN, FakeGitHub
from tests.github.harness import (
    APPLIED,
    HEAD_SHA,
    MODEL,
    PR,
    REPOSITORY,
    ROOT,
    RUN_ID,
    Registry,
    make_runner,
    pull_request_event,
    push_event,
)
from tests.integration.mlflow_helpers import client
from tests.servers import free_port

pytestmark = [pytest.mark.integration]

PLAN_YML = ROOT / ".github" / "workflows" / "plan.yml"
APPLY_YML = ROOT / ".github" / "workflows" / "apply.yml"
ACTION = ROOT / "action.yml"
EXAMPLE = ROOT / "docs" / "example-plan.md"
RUN_URL = f"https://github.com/{REPOSITORY}/actions/runs/{RUN_ID}"

SPEC = f"""\
# yaml-language-server: $schema=registry.schema.json
version: 1
defaults:
  archive_previous: true
  max_per_stage: {{Production: 1}}
models:
  {MODEL}:
    description: Predicts NYC green taxi trip duration in minutes.
    tags: {{team: rides, task: regression}}
    aliases:
      champion: 2
      challenger: 3
    versions:
      - version: 1
        stage: Archived
        tags: {{model_type: linear}}
      - version: 2
        stage: Production
        description: Decision tree, depth 4.
        tags: {{model_type: decision-tree}}
      - version: 3
        stage: Staging
        description: Linear regression on more trips.
    gates:
      Production:
        - metric: rmse
          max: {{rmse_max}}
        - max_size_mb: 50
"""


def write_spec(workspace: Path, rmse_max: float = 10.0) -> None:
    (workspace / "registry.yaml").write_text(
        SPEC.replace("{rmse_max}", str(rmse_max)), encoding="utf-8"
    )


def test_plan_comment_is_created_then_updated_in_place(
    tmp_path: Path,
    registry: Registry,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github.add(REPOSITORY, PR, "Looks good, but check the gates. @mlflow-team")
    secrets = {"MLFLOW_TRACKING_URI": registry.uri}
    runner = make_runner(tmp_path, pull_request_event(), secrets, github.url)
    write_spec(runner.workspace)

    first = runner.run_job(PLAN_YML, "plan")

    plan_step = first.step("Plan, comment")
    assert first.ok, plan_step.stderr
    assert plan_step.outputs == {"exit-code": "2"}  # changes to review: the check passes
    assert [s.ran for s in first.steps] == [False, False, False, True, False]
    (comment,) = github.ours(REPOSITORY, PR)
    body = comment["body"]
    # the comment is the plan, exactly as `plan --format markdown` renders it, plus a footer
    planned = run_cli(
        capsys, "plan", str(runner.workspace / "registry.yaml"), "--format", "markdown",
        "--tracking-uri", registry.uri,
    )  # fmt: skip
    assert planned.code == 0, planned.err
    plan_md = planned.out.replace(
        "### mlflow-gitops plan", "### mlflow-gitops plan: registry\\.yaml"
    )
    assert uncached(body).startswith(uncached(plan_md))  # the second plan reuses gate results
    assert body.startswith(MARKER)
    assert f"Plan of registry\\.yaml at {HEAD_SHA[:7]} · [workflow run]({RUN_URL})" in body
    assert "v3 stage" in body
    assert "Gates" in body
    # the job summary holds the same text; the artifact step gets the full plan file
    assert body in first.summary
    artifact = first.step("artifact")
    assert artifact.uses.startswith("actions/upload-artifact@")
    assert Path(artifact.with_["path"]).read_text(encoding="utf-8") == body
    _check_example(body)

    # a second push: the file tightens a gate, the plan is blocked (exit 3) and the check fails
    write_spec(runner.workspace, rmse_max=0.001)
    second_sha = "9" * 40
    runner = make_runner(
        tmp_path, pull_request_event(sha=second_sha), secrets, github.url, sha=second_sha
    )
    second = runner.run_job(PLAN_YML, "plan")

    assert not second.ok
    assert second.failed.outputs == {"exit-code": "3"}  # blocked by the tightened gate
    (updated,) = github.ours(REPOSITORY, PR)
    assert updated["id"] == comment["id"]
    assert "Blocked" in updated["body"]
    assert f"at {second_sha[:7]}" in updated["body"]
    methods = [r.method for r in github.requests]
    assert methods == ["GET", "POST", "GET", "PATCH"]
    assert len(github.comments[(REPOSITORY, PR)]) == 2  # the reviewer's comment is untouched


def uncached(text: str) -> str:
    """Gate results are cached on the version: a second plan marks them so."""
    return text.replace(" (cached)", "")


def _check_example(body: str) -> None:
    """docs/example-plan.md is this test's first comment; numbers may differ across platforms."""
    if os.environ.get("MLFLOW_GITOPS_UPDATE_EXAMPLE"):
        EXAMPLE.parent.mkdir(exist_ok=True)
        EXAMPLE.write_text(body, encoding="utf-8")
    committed = EXAMPLE.read_text(encoding="utf-8") if EXAMPLE.exists() else ""

    def numbers(text: str) -> str:
        return re.sub(r"\d+\.\d+(e-?\d+)?", "N", uncached(text))

    assert numbers(committed) == numbers(body), (
        "docs/example-plan.md is out of date: run "
        "MLFLOW_GITOPS_UPDATE_EXAMPLE=1 .venv/bin/pytest tests/github/test_workflows.py -k created"
    )


def test_github_refusing_the_comment_fails_the_action_step_and_keeps_the_plan(
    tmp_path: Path, registry: Registry, github: FakeGitHub
) -> None:
    # the composite action this time, as another repository would use it
    github.fail = 403
    runner = make_runner(tmp_path, pull_request_event(), {}, github.url)
    write_spec(runner.workspace)

    job = runner.run_action(ACTION, {"command": "plan", "tracking-uri": registry.uri}, {})

    assert not job.ok
    err = job.failed.stderr
    assert f"error: GitHub answered 403 to GET /repos/{REPOSITORY}/issues/{PR}/comments" in err
    assert "Resource not accessible by integration; the plan is in the job summary" in err
    assert "permissions: pull-requests: write" in err
    assert "Traceback" not in err
    assert job.failed.outputs == {"exit-code": "1"}
    assert job.summary.startswith(MARKER)
    assert "v3 stage" in job.summary
    assert job.step("artifact").with_["path"].endswith("mlflow-gitops-plan.md")


@pytest.mark.parametrize(("status", "hint"), [(404, "private repository"), (500, "re-run")])
def test_github_errors_are_clear_and_keep_the_plan(
    tmp_path: Path,
    registry: Registry,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    hint: str,
) -> None:
    # the plan step's command in this process (the action step above runs it as a process)
    github.fail = status
    runner = make_runner(tmp_path, pull_request_event(), {}, github.url)
    write_spec(runner.workspace)
    summary = tmp_path / "summary.md"
    for key, value in {
        **runner.env,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(summary),
        "MLFLOW_TRACKING_URI": registry.uri,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(runner.workspace)

    result = run_cli(capsys, "comment", "registry.yaml", "--detailed-exitcode")

    assert result.code == 1
    assert f"error: GitHub answered {status} to GET /repos/{REPOSITORY}/issues/" in result.err
    assert "the plan is in the job summary" in result.err
    assert hint in result.err
    assert summary.read_text(encoding="utf-8").startswith(MARKER)
    assert TOKEN not in result.out + result.err + summary.read_text(encoding="utf-8")


def test_a_registry_that_is_down_gets_a_comment_that_says_so(
    tmp_path: Path, github: FakeGitHub
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    runner = make_runner(tmp_path, pull_request_event(), {"MLFLOW_TRACKING_URI": down}, github.url)
    write_spec(runner.workspace)

    job = runner.run_job(PLAN_YML, "plan")

    assert not job.ok
    assert job.failed.outputs == {"exit-code": "1"}
    (comment,) = github.ours(REPOSITORY, PR)
    assert "**Could not reach the registry**" in comment["body"]
    assert "the registry is unreachable" in comment["body"]
    assert "the registry is unreachable" in job.failed.stderr
    assert comment["body"].startswith(job.summary.split("\n---\n")[0])


def test_an_invalid_file_gets_a_comment_with_file_and_line(
    tmp_path: Path, github: FakeGitHub
) -> None:
    runner = make_runner(
        tmp_path, pull_request_event(), {"MLFLOW_TRACKING_URI": "sqlite:///unused.db"}, github.url
    )
    (runner.workspace / "registry.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            models:
              m:
                versions:
                  - version: 1
                    stgae: Production
            """
        ),
        encoding="utf-8",
    )

    job = runner.run_job(PLAN_YML, "plan")

    assert not job.ok
    assert job.failed.outputs == {"exit-code": "1"}
    (comment,) = github.ours(REPOSITORY, PR)
    assert "registry\\.yaml is invalid" in comment["body"]
    assert "registry.yaml:6:9: models.m.versions[0].stgae: unknown key 'stgae'" in comment["body"]
    # and an annotation on that line of the diff
    assert "::error file=registry.yaml,line=6,col=9,title=mlflow-gitops::" in job.failed.stdout


def test_a_fork_without_secrets_gets_a_plan_that_says_it_could_not_reach_the_registry(
    tmp_path: Path, github: FakeGitHub
) -> None:
    # GitHub gives a fork's pull_request run no secrets and a read-only token
    event = pull_request_event(head_repository="mallory/ml-registry")
    runner = make_runner(tmp_path, event, {}, github.url)
    write_spec(runner.workspace)

    job = runner.run_job(PLAN_YML, "plan")

    assert not job.ok
    assert job.failed.outputs == {"exit-code": "1"}
    assert github.requests == []  # a read-only token cannot comment: not even tried
    assert "**Could not reach the registry**" in job.summary
    assert "pull request from a fork" in job.summary
    assert "not posted as a comment" in job.failed.stderr


def test_apply_annotates_versions_with_commit_pr_actor_and_run_link(
    tmp_path: Path, registry: Registry, github: FakeGitHub
) -> None:
    sha = "abcdef0123456789abcdef0123456789abcdef01"
    runner = make_runner(
        tmp_path, push_event(sha), {"MLFLOW_TRACKING_URI": registry.uri}, github.url, sha=sha
    )
    (runner.workspace / "registry.yaml").write_text(
        textwrap.dedent(
            f"""\
            version: 1
            models:
              {APPLIED}:
                aliases: {{champion: 1}}
                versions:
                  - {{version: 1, stage: Production}}
                  - {{version: 2, stage: Staging}}
            """
        ),
        encoding="utf-8",
    )

    job = runner.run_job(APPLY_YML, "apply")

    assert job.ok, job.step("Apply").stdout + job.step("Apply").stderr
    assert "    Apply complete" in job.summary  # an indented code block
    # no pull request of this commit in GitHub's API: the status and the deployment only
    assert github.latest_statuses(REPOSITORY, sha) == {"mlflow-gitops/apply": "success"}
    mlflow = client(registry.uri)
    for number, change in ((1, "None -> Production"), (2, "None -> Staging")):
        record = read_record(mlflow.get_model_version(APPLIED, str(number)).tags)
        assert record["commit"] == sha
        assert str(record["pr"]) == str(PR)
        assert record["actor"] == "alice"
        assert record["run_url"] == RUN_URL
        assert change in record["change"]


@pytest.mark.parametrize("source", ["apply.yml", "action.yml"])
def test_apply_without_a_tracking_uri_refuses_instead_of_writing_a_local_database(
    tmp_path: Path, source: str
) -> None:
    sha = "abcdef0123456789abcdef0123456789abcdef01"
    runner = make_runner(tmp_path, push_event(sha), {}, sha=sha)  # the secret is not set
    (runner.workspace / "registry.yaml").write_text(SPEC, encoding="utf-8")

    if source == "apply.yml":
        job = runner.run_job(APPLY_YML, "apply")
    else:
        job = runner.run_action(ACTION, {"command": "apply"}, {})

    assert not job.ok
    assert "::error title=mlflow-gitops::" in job.failed.stdout
    assert "MLFLOW_TRACKING_URI" in job.failed.stdout
    assert not list(runner.workspace.glob("*.db"))
