"""A local fake of GitHub's REST API for issue comments, on loopback, in a thread."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghs_fake-job-token-1234"
BODY_LIMIT = 65_536


@dataclass
class Request:
    method: str
    path: str
    authorization: str
    body: dict[str, Any] | None


@dataclass
class FakeGitHub:
    """Comments per (repository, number); `fail` answers every request with that status."""

    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail: int | None = None
    fail_times: int | None = None  # how many requests `fail` answers; None: all of them
    next_id: int = 1000
    url: str = ""
    # repository_dispatch events received, as (repository, body)
    dispatches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, repository: str, number: int, body: str, login: str = "octocat") -> None:
        """A comment someone else wrote."""
        self._create(repository, number, body, login)

    def ours(self, repository: str, number: int) -> list[dict[str, Any]]:
        """The comments the tool wrote (as github-actions[bot])."""
        return [
            c
            for c in self.comments.get((repository, number), [])
            if c["user"]["login"] == "github-actions[bot]"
        ]

    def _dispatch(self, repository: str, body: Any) -> tuple[int, Any, str]:
        """POST /repos/{owner}/{repo}/dispatches: 204 and no body, like GitHub."""
        problem = _dispatch_problem(body)
        if problem:
            return 422, {"message": f"Validation Failed: {problem}"}, ""
        self.dispatches.append((repository, body))
        return 204, None, ""

    def _create(self, repository: str, number: int, body: str, login: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "html_url": f"https://github.com/{repository}/pull/{number}#issuecomment-{self.next_id}",
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
        }
        self.comments.setdefault((repository, number), []).append(comment)
        return comment

    def handle(self, method: str, target: str, auth: str, body: Any) -> tuple[int, Any, str]:
        """(status, JSON answer, Link header) like api.github.com."""
        url = urlsplit(target)
        self.requests.append(Request(method, url.path, auth, body))
        if self.fail is not None and self.fail_times != 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            messages = {403: "Resource not accessible by integration", 404: "Not Found"}
            return self.fail, {"message": messages.get(self.fail, "Server Error")}, ""
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}, ""
        parts = url.path.strip("/").split("/")
        if len(parts) == 6 and parts[0] == "repos" and parts[3:6:2] == ["issues", "comments"]:
            key = (f"{parts[1]}/{parts[2]}", int(parts[4]))
            if method == "GET":
                query = parse_qs(url.query)
                size, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
                every = self.comments.get(key, [])
                link = ""
                if page * size < len(every):
                    link = f'<{self.url}{url.path}?per_page={size}&page={page + 1}>; rel="next"'
                return 200, every[(page - 1) * size : page * size], link
            if method == "POST":
                if len(body["body"]) > BODY_LIMIT:
                    return 422, {"message": "Validation Failed: body is too long"}, ""
                return 201, self._create(*key, body["body"], "github-actions[bot]"), ""
        if len(parts) == 4 and parts[0] == "repos" and parts[3] == "dispatches":
            if method != "POST":
                return 404, {"message": "Not Found"}, ""
            return self._dispatch(f"{parts[1]}/{parts[2]}", body)
        if len(parts) == 6 and parts[3:5] == ["issues", "comments"] and method == "PATCH":
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(parts[5]):
                    if len(body["body"]) > BODY_LIMIT:
                        return 422, {"message": "Validation Failed: body is too long"}, ""
                    comment["body"] = body["body"]
                    return 200, comment, ""
        return 404, {"message": "Not Found"}, ""


def _dispatch_problem(body: Any) -> str:
    """What GitHub's validation says of a repository_dispatch body ('' when valid)."""
    if not isinstance(body, dict) or not isinstance(body.get("event_type"), str):
        return "event_type is required"
    if not 1 <= len(body["event_type"]) <= 100:
        return "event_type must be 1 to 100 characters"
    payload = body.get("client_payload", {})
    if not isinstance(payload, dict) or len(payload) > 10:
        return "client_payload can have at most 10 top-level properties"
    return ""


def serve(fake: FakeGitHub) -> ThreadingHTTPServer:
    """Serve `fake` on a free loopback port; sets fake.url. Stop with .shutdown()."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, data, link = fake.handle(
                self.command, self.path, self.headers.get("Authorization", ""), body
            )
            payload = json.dumps(data).encode() if status != 204 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits out the serve loop's poll (0.5 s by default): every test stops one
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
