"""One repository_dispatch on GitHub's REST API (POST /repos/{owner}/{repo}/dispatches)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from mlflow_gitops import __version__
from mlflow_gitops.secrets import redact

RETRIED = {408, 429, 500, 502, 503, 504}  # GitHub's transient answers (and rate limiting)


class DispatchFailed(Exception):
    """GitHub refused the dispatch (`retry`: a transient answer, try again later)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def send(api_url: str, repository: str, token: str, body: dict[str, Any], timeout: float) -> None:
    """POST the dispatch; GitHub answers 204. Raises DispatchFailed."""
    url = f"{api_url.rstrip('/')}/repos/{repository}/dispatches"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("X-GitHub-Api-Version", "2022-11-28")
    request.add_header("User-Agent", f"mlflow-gitops-relay/{__version__}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        text = f"GitHub answered {exc.code} to POST /repos/{repository}/dispatches"
        with contextlib.suppress(ValueError, AttributeError, OSError):
            text += f": {json.loads(exc.read()).get('message', '')}"
        raise DispatchFailed(redact(text), retry=exc.code in RETRIED) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DispatchFailed(f"cannot reach GitHub at {api_url}: {reason}", retry=True) from None
