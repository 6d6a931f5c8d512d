"""The REST client against the fake GitHub: pages, sticky upsert, errors, retries."""

from __future__ import annotations

import pytest

from mlflow_gitops.github.client import GitHub, GitHubError, upsert_comment
from tests.github.fake_github import TOKEN, FakeGitHub
from tests.servers import free_port

REPO, PR = "acme/reg", 3
MARK = "<!-- ours -->"


def _client(github: FakeGitHub, token: str = TOKEN) -> GitHub:
    return GitHub(github.url, token, timeout=5, retry_after=0.01)


def _ours(body: str) -> bool:
    return body.startswith(MARK)


def test_create_then_update_then_leave_alone(github: FakeGitHub) -> None:
    api = _client(github)
    action, first = upsert_comment(api, REPO, PR, MARK + " v1", _ours)
    assert action == "created"
    action, second = upsert_comment(api, REPO, PR, MARK + " v2", _ours)
    assert (action, second.id) == ("updated", first.id)
    action, _ = upsert_comment(api, REPO, PR, MARK + " v2", _ours)
    assert action == "unchanged"
    assert [r.method for r in github.requests] == ["GET", "POST", "GET", "PATCH", "GET"]
    assert [c["body"] for c in github.comments[(REPO, PR)]] == [MARK + " v2"]


def test_the_earlier_comment_is_found_on_a_later_page(github: FakeGitHub) -> None:
    for n in range(130):
        github.add(REPO, PR, f"comment {n}")
    github.add(REPO, PR, MARK + " old", login="github-actions[bot]")
    action, comment = upsert_comment(_client(github), REPO, PR, MARK + " new", _ours)
    assert action == "updated"
    assert comment.body == MARK + " new"
    assert len(github.comments[(REPO, PR)]) == 131


def test_a_next_page_on_another_host_is_not_followed(github: FakeGitHub) -> None:
    for n in range(101):
        github.add(REPO, PR, f"comment {n}")
    api = _client(github)
    github.url = "http://127.0.0.2:1"  # the Link header now names another host: the token stays
    assert len(api.comments(REPO, PR)) == 100


def test_a_bad_token_is_a_clear_error(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError) as caught:
        _client(github, token="wrong").comments(REPO, PR)
    assert caught.value.status == 401
    assert "GitHub answered 401 to GET /repos/acme/reg/issues/3/comments" in caught.value.message
    assert "Bad credentials" in caught.value.message
    assert "GITHUB_TOKEN" in caught.value.hint


def test_a_transient_failure_of_a_read_is_retried_once(github: FakeGitHub) -> None:
    github.fail, github.fail_times = 502, 1
    assert _client(github).comments(REPO, PR) == []
    assert len(github.requests) == 2


def test_a_create_is_never_retried(github: FakeGitHub) -> None:
    # a POST that failed on the way back may have created the comment: never post twice
    github.fail, github.fail_times = 502, 1
    with pytest.raises(GitHubError) as caught:
        _client(github).create_comment(REPO, PR, "x")
    assert caught.value.status == 502
    assert "re-run the job" in caught.value.hint
    assert len(github.requests) == 1


def test_an_api_that_cannot_be_reached_is_a_clear_error() -> None:
    api = GitHub(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2, retry_after=0.01)
    with pytest.raises(GitHubError) as caught:
        api.comments(REPO, PR)
    assert caught.value.status == 0
    assert "cannot reach the GitHub API" in caught.value.message
