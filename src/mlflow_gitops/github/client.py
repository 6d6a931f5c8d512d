"""A small GitHub REST client for issue comments (a pull request is an issue), on urllib."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from mlflow_gitops import __version__
from mlflow_gitops.errors import GitopsError
from mlflow_gitops.secrets import redact

MAX_PAGES = 30  # 3,000 comments: a pull request with more is not one we are asked to keep tidy
RETRIED = {502, 503, 504}  # GitHub's transient answers; retried for idempotent requests only

_HINTS = {
    401: "the token was refused: pass the job's token as GITHUB_TOKEN (${{ github.token }})",
    403: "give the job `permissions: pull-requests: write`; pull requests from forks get a "
    "read-only token, and GitHub may also be rate-limiting this token",
    404: "check GITHUB_REPOSITORY and the pull request number; a token that cannot see a "
    "private repository also gets 404",
    422: "GitHub refused the comment's content",
}


class GitHubError(GitopsError):
    """GitHub answered with an error, or could not be reached (status 0)."""

    def __init__(self, message: str, hint: str, status: int) -> None:
        super().__init__(message, hint)
        self.status = status


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    url: str


class GitHub:
    """Issue comments of one GitHub API (api.github.com, or an Enterprise server's /api/v3)."""

    def __init__(
        self, api_url: str, token: str, *, timeout: float = 30.0, retry_after: float = 2.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_after = retry_after

    def comments(self, repository: str, number: int) -> list[Comment]:
        """Every comment on the issue or pull request, oldest first, following the pages."""
        url: str | None = f"{self.api_url}/repos/{repository}/issues/{number}/comments?per_page=100"
        found: list[Comment] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            data, link = self._request("GET", url, None, "list the pull request's comments")
            found += [_comment(c) for c in data if isinstance(c, dict)]
            url = _next_page(link, self.api_url)
        return found

    def create_comment(self, repository: str, number: int, body: str) -> Comment:
        """A new comment on the issue or pull request."""
        url = f"{self.api_url}/repos/{repository}/issues/{number}/comments"
        data, _ = self._request("POST", url, {"body": body}, "create the plan comment")
        return _comment(data)

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment:
        """Replace the body of a comment."""
        url = f"{self.api_url}/repos/{repository}/issues/comments/{comment_id}"
        data, _ = self._request("PATCH", url, {"body": body}, "update the plan comment")
        return _comment(data)

    def get(self, path: str, doing: str) -> Any:
        """One GET of an API path (`/repos/...`)."""
        data, _ = self._request("GET", f"{self.api_url}{path}", None, doing)
        return data

    def get_all(self, path: str, doing: str) -> list[Any]:
        """Every item of a paged list (100 a page, at most MAX_PAGES pages)."""
        joiner = "&" if "?" in path else "?"
        url: str | None = f"{self.api_url}{path}{joiner}per_page=100"
        found: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            data, link = self._request("GET", url, None, doing)
            found += data if isinstance(data, list) else []
            url = _next_page(link, self.api_url)
        return found

    def post(self, path: str, payload: dict[str, Any], doing: str) -> Any:
        """One POST (never retried: it may have been made)."""
        data, _ = self._request("POST", f"{self.api_url}{path}", payload, doing)
        return data

    def _request(
        self, method: str, url: str, payload: dict[str, Any] | None, doing: str
    ) -> tuple[Any, str]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", f"mlflow-gitops/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        # a POST that timed out may have created the comment: only GET and PATCH are retried
        attempts = 1 if method == "POST" else 2
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = response.read().decode("utf-8")
                    return (json.loads(text) if text else None), response.headers.get("Link", "")
            except urllib.error.HTTPError as exc:
                if exc.code in RETRIED and attempt + 1 < attempts:
                    time.sleep(self.retry_after)
                    continue
                raise self._error(exc.code, _message(exc), doing, method, url) from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt + 1 < attempts:
                    time.sleep(self.retry_after)
                    continue
                reason = getattr(exc, "reason", exc)
                raise GitHubError(
                    f"cannot reach the GitHub API at {self.api_url} to {doing}: {reason}",
                    "check GITHUB_API_URL and the runner's network; re-run the job",
                    0,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, status: int, message: str, doing: str, method: str, url: str) -> GitHubError:
        path = urlsplit(url).path
        text = f"GitHub answered {status} to {method} {path} ({doing})"
        if message:
            text += f": {message}"
        hint = _HINTS.get(status, "GitHub is failing; re-run the job" if status >= 500 else "")
        return GitHubError(redact(text), hint, status)


Action = Literal["created", "updated", "unchanged"]


def upsert_comment(
    github: GitHub, repository: str, number: int, body: str, ours: Callable[[str], bool]
) -> tuple[Action, Comment]:
    """Update the first comment that `ours` recognises, or create one: one comment per pull
    request however often the job runs."""
    earlier = next((c for c in github.comments(repository, number) if ours(c.body)), None)
    if earlier is None:
        return "created", github.create_comment(repository, number, body)
    if earlier.body == body:
        return "unchanged", earlier
    return "updated", github.update_comment(repository, earlier.id, body)


def _comment(data: Any) -> Comment:
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise GitHubError("GitHub answered with something that is not a comment", "", 0)
    return Comment(int(data["id"]), str(data.get("body") or ""), str(data.get("html_url") or ""))


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read().decode("utf-8", "replace"))
    except (ValueError, OSError):
        return str(exc.reason or "")
    message = data.get("message", "") if isinstance(data, dict) else ""
    return str(message)[:300]


def _next_page(link: str, api_url: str) -> str | None:
    """The rel="next" URL of a Link header, only when it stays on the API (the token goes along)."""
    for part in link.split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params:
            url = url.strip().strip("<>")
            same = urlsplit(url)[:2] == urlsplit(api_url)[:2]
            return url if same else None
    return None
