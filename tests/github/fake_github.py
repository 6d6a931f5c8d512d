"""A local fake of GitHub's REST API for issue comments, on loopback, in a thread."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghs_fake-job-token-1234"
TEAMS_TOKEN = "ghp_fake-teams-token-5678"  # a personal token with members: read on the org
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
    # the pull-request loop (see _loop): pull requests, reviews, teams, statuses, deployments
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    events: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    teams: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # org -> slug -> users
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    # the job token's permissions, as the workflow's `permissions:` grants them (None: all)
    granted: set[str] | None = None

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
        if auth not in (f"Bearer {TOKEN}", f"Bearer {TEAMS_TOKEN}"):
            return 401, {"message": "Bad credentials"}, ""
        parts = url.path.strip("/").split("/")
        refused = self._refused(method, parts, auth)
        if refused is not None:
            return refused
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
        answer = self._loop(method, parts, body)
        if answer is not None:
            return answer
        return 404, {"message": "Not Found"}, ""

    # --- the pull-request loop: what the apply reads and writes after a merge ---------------------

    def add_pull(
        self,
        repository: str,
        number: int,
        *,
        author: str,
        merge_sha: str | None = None,
        labels: tuple[tuple[str, str], ...] = (),
        reviews: tuple[tuple[str, str], ...] = (),
        files: tuple[str, ...] = ("registry.yaml",),
        head_repository: str | None = None,
    ) -> None:
        """A pull request (merged into `merge_sha` when given) with its labels (label, who set
        it), reviews (user, state) in order, and changed files."""
        self.pulls[(repository, number)] = {
            "number": number,
            "state": "closed" if merge_sha else "open",
            "user": {"login": author},
            "labels": [{"name": name} for name, _ in labels],
            "merged_at": "2026-12-04T14:00:00Z" if merge_sha else None,
            "merge_commit_sha": merge_sha,
            "head": {"repo": {"full_name": head_repository or repository}},
            "base": {"ref": "main", "repo": {"full_name": repository}},
        }
        if merge_sha:
            self.commit_pulls.setdefault((repository, merge_sha), []).append(number)
        self.reviews[(repository, number)] = [
            {"id": i, "user": {"login": user}, "state": state}
            for i, (user, state) in enumerate(reviews, 1)
        ]
        self.files[(repository, number)] = list(files)
        self.events[(repository, number)] = [
            {"event": "labeled", "label": {"name": name}, "actor": {"login": who}}
            for name, who in labels
        ]

    def status(self, repository: str, sha: str, context: str, state: str) -> None:
        """A commit status another check set (e.g. CI still pending)."""
        self.statuses.setdefault((repository, sha), []).append(
            {"context": context, "state": state, "description": ""}
        )

    def latest_statuses(self, repository: str, sha: str) -> dict[str, str]:
        """Each context's latest state, as GitHub's combined status shows it."""
        return {s["context"]: s["state"] for s in self.statuses.get((repository, sha), [])}

    def _refused(self, method: str, parts: list[str], auth: str) -> tuple[int, Any, str] | None:
        """403 for a request the token may not make: the job token cannot read teams; and with
        `granted`, what the workflow's permissions: do not give it."""
        if parts[:1] == ["orgs"]:
            if auth != f"Bearer {TEAMS_TOKEN}":
                return 403, {"message": "Resource not accessible by integration"}, ""
            return None
        if auth != f"Bearer {TOKEN}" or self.granted is None or parts[:1] != ["repos"]:
            return None
        kind = parts[3] if len(parts) > 3 else ""
        scope = {
            "issues": "pull-requests",  # a pull request's comments and events
            "pulls": "pull-requests",
            "commits": "pull-requests",  # the pull requests of a commit
            "statuses": "statuses",
            "deployments": "deployments",
        }.get(kind, "contents")
        need = f"{scope}:{'read' if method == 'GET' else 'write'}"
        have = self.granted | {g.replace(":write", ":read") for g in self.granted}
        if need not in have:
            return 403, {"message": "Resource not accessible by integration"}, ""
        return None

    def _loop(self, method: str, parts: list[str], body: Any) -> tuple[int, Any, str] | None:
        if parts[:1] == ["orgs"] and method == "GET":
            org = parts[1]
            if len(parts) == 3 and parts[2] == "teams":
                slugs = sorted(self.teams.get(org, {}))
                return 200, [{"slug": s, "name": s} for s in slugs], ""
            members = self.teams.get(org, {}).get(parts[3], set()) if len(parts) > 3 else set()
            membership = len(parts) == 6 and parts[2] == "teams" and parts[4] == "memberships"
            if membership and parts[5] in members:  # GitHub answers 404 for a non-member
                return 200, {"state": "active", "role": "member"}, ""
            return 404, {"message": "Not Found"}, ""
        if parts[:1] != ["repos"] or len(parts) < 4:
            return None
        repository, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        if method == "GET" and len(rest) == 3 and rest[0] == "commits" and rest[2] == "pulls":
            numbers = self.commit_pulls.get((repository, rest[1]), [])
            return 200, [self.pulls[(repository, n)] for n in numbers], ""
        if method == "GET" and rest[0] in ("pulls", "issues") and len(rest) >= 2:
            key = (repository, int(rest[1]))
            if key not in self.pulls:
                return 404, {"message": "Not Found"}, ""
            tail = rest[0], *rest[2:]
            if tail == ("pulls",):
                return 200, self.pulls[key], ""
            if tail == ("pulls", "reviews"):
                return 200, self.reviews.get(key, []), ""
            if tail == ("pulls", "files"):
                return 200, [{"filename": f} for f in self.files.get(key, [])], ""
            if tail == ("issues", "events"):
                return 200, self.events.get(key, []), ""
        if method == "POST" and len(rest) == 2 and rest[0] == "statuses":
            if body.get("state") not in ("error", "failure", "pending", "success"):
                return 422, {"message": "Validation Failed: state"}, ""
            entry = {k: body.get(k) for k in ("state", "context", "description", "target_url")}
            self.statuses.setdefault((repository, rest[1]), []).append(entry)
            return 201, entry, ""
        if method == "POST" and rest == ["deployments"]:
            return self._deploy(repository, body)
        if (
            method == "POST"
            and len(rest) == 3
            and rest[0] == "deployments"
            and rest[2] == "statuses"
        ):
            found = next((d for d in self.deployments if d["id"] == int(rest[1])), None)
            if found is None:
                return 404, {"message": "Not Found"}, ""
            if body.get("state") not in ("error", "failure", "inactive", "in_progress", "queued",
                                         "pending", "success"):  # fmt: skip
                return 422, {"message": "Validation Failed: state"}, ""
            found["statuses"].append(dict(body))
            return 201, dict(body), ""
        return None

    def _deploy(self, repository: str, body: Any) -> tuple[int, Any, str]:
        """GitHub's rule: without required_contexts, every context of the ref's commit
        statuses must be success, else 409 (a pending status refuses the deployment)."""
        ref = body.get("ref")
        if not ref or not body.get("environment"):
            return 422, {"message": "Validation Failed: ref and environment"}, ""
        required = body.get("required_contexts")
        latest = self.latest_statuses(repository, ref)
        checked = latest if required is None else {c: latest.get(c) for c in required}
        if any(state != "success" for state in checked.values()):
            return 409, {"message": f"Conflict: Commit status checks failed for {ref}."}, ""
        self.next_id += 1
        deployment = {
            "id": self.next_id,
            "ref": ref,
            "sha": ref,
            "environment": body["environment"],
            "description": body.get("description"),
            "required_contexts": required,
            "statuses": [],
        }
        self.deployments.append(deployment)
        return 201, {k: v for k, v in deployment.items() if k != "statuses"}, ""


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
