"""publish: the job summary first, then one comment; long plans summarised; secrets masked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.github.body import COMMENT_LIMIT
from mlflow_gitops.github.context import Actions, PullRequest
from mlflow_gitops.github.publish import FORK_HINT, NO_URI_HINT, Outcome, publish
from mlflow_gitops.reconcile.comment import plan_for_comment
from mlflow_gitops.render.markdown import MARKER
from tests.github.fake_github import TOKEN, FakeGitHub
from tests.helpers import write_spec

REPO, PR = "acme/reg", 8
FILE = Path("registry.yaml")


def _actions(github: FakeGitHub, tmp_path: Path, **changes: object) -> Actions:
    values: dict[str, object] = {
        "active": True,
        "api_url": github.url,
        "token": TOKEN,
        "summary": tmp_path / "summary.md",
        "run_url": "https://github.com/acme/reg/actions/runs/1",
        "commit": "c0ffee0" + "0" * 33,
        "pull_request": PullRequest(REPO, PR, from_fork=False),
    }
    values.update(changes)
    return Actions(**values)  # type: ignore[arg-type]


def _long_plan(models: int) -> str:
    rows = "\n".join(f"| `~` | tag key{n} | a | b | |" for n in range(60))
    sections = [
        f"#### model-{m}\n\n| | change | before | after | note |\n|---|---|---|---|---|\n{rows}\n"
        for m in range(models)
    ]
    return f"{MARKER}\n### mlflow-gitops plan\n\n**Plan: many.**\n\n" + "\n".join(sections)


def test_a_plan_too_long_for_a_comment_is_summarised_and_kept_whole_elsewhere(
    github: FakeGitHub, tmp_path: Path
) -> None:
    body = _long_plan(60)
    assert len(body) > COMMENT_LIMIT
    actions = _actions(github, tmp_path)
    out = tmp_path / "plan.md"

    first = publish(Outcome(body), FILE, actions, out)
    second = publish(Outcome(body.replace("Plan: many", "Plan: more")), FILE, actions, out)

    assert (first.action, second.action) == ("created", "updated")
    (comment,) = github.comments[(REPO, PR)]
    text = comment["body"]
    assert len(text) <= COMMENT_LIMIT
    assert "This plan is too long for a comment" in text
    assert "of 60 models" in text
    assert "[job summary](https://github.com/acme/reg/actions/runs/1)" in text
    assert "`mlflow-gitops-plan` artifact" in text
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert body in summary  # both runs appended their whole plan
    assert out.read_text(encoding="utf-8").startswith(body.replace("Plan: many", "Plan: more"))


def test_credentials_never_reach_the_comment_or_the_summary(
    github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-pw")
    body = f"{MARKER}\nerror at https://bob:s3cret@mlflow.example and hunter2-pw\n"
    publish(Outcome(body), FILE, _actions(github, tmp_path), None)
    (comment,) = github.comments[(REPO, PR)]
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    for text in (comment["body"], summary):
        assert "s3cret" not in text
        assert "hunter2-pw" not in text
        assert "https://bob:***@mlflow.example" in text  # a username is not a secret


def test_outside_a_pull_request_the_plan_is_still_written_first(
    github: FakeGitHub, tmp_path: Path
) -> None:
    actions = _actions(github, tmp_path, pull_request=None)
    with pytest.raises(GitopsError) as caught:
        publish(Outcome(MARKER + "\nplan\n"), FILE, actions, None)
    assert "no pull request to comment on" in caught.value.message
    assert "the plan is in the job summary" in caught.value.message
    assert (tmp_path / "summary.md").read_text(encoding="utf-8").startswith(MARKER)


def test_without_a_token_the_error_says_how_to_pass_it(github: FakeGitHub, tmp_path: Path) -> None:
    with pytest.raises(GitopsError) as caught:
        publish(Outcome(MARKER + "\n"), FILE, _actions(github, tmp_path, token=None), None)
    assert "GITHUB_TOKEN is not set" in caught.value.message
    assert "github.token" in caught.value.hint
    assert github.requests == []


@pytest.mark.parametrize(("fork", "hint"), [(False, NO_URI_HINT), (True, FORK_HINT)])
def test_without_a_tracking_uri_the_comment_says_so_never_a_local_plan(
    fork: bool, hint: str, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(tmp_path, "version: 1\nmodels:\n  m: {}\n")
    actions = _actions(github, tmp_path, pull_request=PullRequest(REPO, PR, from_fork=fork))
    outcome = plan_for_comment(spec, None, actions, datetime.now(UTC))
    assert outcome.plan is None
    assert outcome.error is not None
    assert outcome.error.message.startswith("no tracking URI: neither --tracking-uri")
    assert outcome.error.message.endswith("(pull request from a fork: no secrets)") == fork
    assert outcome.error.hint == hint
    assert "no tracking URI" in outcome.body
    assert not list(tmp_path.glob("*.db"))
