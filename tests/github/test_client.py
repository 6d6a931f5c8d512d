"""The REST client against the fake GitHub: pages, sticky upsert, errors, retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlflow_gitops.github.client import GitHub, GitHubError, upsert_comment
from tests.github.fake_github import TOKEN, FakeGitHub, serve
from tests.integration.conftest import free_port

REPO, PR = "acme/reg", 3
MARK = "<!-- ours -->"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    github = FakeGitHub()
    server = serve(github)
    yield github
    server.shutdown()


def _client(fake: FakeGitHub, token: str = TOKEN) -> GitHub:
    return GitHub(fake.url, token, timeout=5, retry_after=0.01)


def _ours(body: str) -> bool:
    return body.startswith(MARK)


def test_create_then_update_then_leave_alone(fake: FakeGitHub) -> None:
    github = _client(fake)
    action, first = upsert_comment(github, REPO, PR, MARK + " v1", _ours)
    assert action == "created"
    action, second = upsert_comment(github, REPO, PR, MARK + " v2", _ours)
    assert (action, second.id) == ("updated", first.id)
    action, _ = upsert_comment(github, REPO, PR, MARK + " v2", _ours)
    assert action == "unchanged"
    assert [r.method for r in fake.requests] == ["GET", "POST", "GET", "PATCH", "GET"]
    assert [c["body"] for c in fake.comments[(REPO, PR)]] == [MARK + " v2"]


def test_the_earlier_comment_is_found_on_a_later_page(fake: FakeGitHub) -> None:
    for n in range(130):
        fake.add(REPO, PR, f"comment {n}")
    fake.add(REPO, PR, MARK + " old", login="github-actions[bot]")
    action, comment = upsert_comment(_client(fake), REPO, PR, MARK + " new", _ours)
    assert action == "updated"
    assert comment.body == MARK + " new"
    assert len(fake.comments[(REPO, PR)]) == 131


def test_a_next_page_on_another_host_is_not_followed(fake: FakeGitHub) -> None:
    for n in range(101):
        fake.add(REPO, PR, f"comment {n}")
    github = _client(fake)
    fake.url = "http://127.0.0.2:1"  # the Link header now names another host: the token stays
    assert len(github.comments(REPO, PR)) == 100


def test_a_bad_token_is_a_clear_error(fake: FakeGitHub) -> None:
    with pytest.raises(GitHubError) as caught:
        _client(fake, token="wrong").comments(REPO, PR)
    assert caught.value.status == 401
    assert "GitHub answered 401 to GET /repos/acme/reg/issues/3/comments" in caught.value.message
    assert "Bad credentials" in caught.value.message
    assert "GITHUB_TOKEN" in caught.value.hint


def test_a_transient_failure_of_a_read_is_retried_once(fake: FakeGitHub) -> None:
    fake.fail, fake.fail_times = 502, 1
    assert _client(fake).comments(REPO, PR) == []
    assert len(fake.requests) == 2


def test_a_create_is_never_retried(fake: FakeGitHub) -> None:
    # a POST that failed on the way back may have created the comment: never post twice
    fake.fail, fake.fail_times = 502, 1
    with pytest.raises(GitHubError) as caught:
        _client(fake).create_comment(REPO, PR, "x")
    assert caught.value.status == 502
    assert "re-run the job" in caught.value.hint
    assert len(fake.requests) == 1


def test_an_api_that_cannot_be_reached_is_a_clear_error() -> None:
    github = GitHub(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2, retry_after=0.01)
    with pytest.raises(GitHubError) as caught:
        github.comments(REPO, PR)
    assert caught.value.status == 0
    assert "cannot reach the GitHub API" in caught.value.message
