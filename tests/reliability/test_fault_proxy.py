"""Faults between the tool and a real `mlflow server` (issue 6, item 2), through the proxy in
proxy.py: 5xx answers, answers slower than the client's timeout, dropped connections (before the
server saw the request, and after it did the work), and the server killed in the middle of an apply
and restarted on the same port and store.

Each scenario seeds the rich convergence example (a swap, an archived holder, an alias move, tag
deletions, a new version), applies it through the proxy with the CLI, and then checks:
- transient faults: the first apply succeeds, within a bounded time;
- lasting faults: the apply exits 1 and its result lists applied, failed and not applied steps,
  and nothing of the live state was lost in between (every alias still points at a version, no
  tag the file keeps is gone, every description is the old or the new text);
- always: a second apply (faults off) converges: the registry equals the oracle and plan is empty.

`pytest tests/reliability/test_fault_proxy.py -s` prints the table of scenarios.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.observed import RegistryState
from mlflow_gitops.reconcile import make_plan
from mlflow_gitops.record import split_history
from mlflow_gitops.spec.load import load
from tests.cli_runner import run_cli
from tests.reliability.harness import RICH, seed
from tests.reliability.invariants import convergence_problems
from tests.reliability.proxy import Fault, Proxy, Server
from tests.reliability.scenarios import Scenario
from tests.servers import free_port

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

pytestmark = [pytest.mark.integration]


# bounded retries: 2 retries after 0 and 2 s of backoff (urllib3), 1 s per request
RETRY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "1",
}
SLOW = 1.5  # seconds a slow answer takes: past the 1 s timeout


@dataclass(frozen=True)
class Case:
    id: str
    fault: Fault
    times: int = 1  # -1: until disarmed (a lasting fault)
    writes_only: bool = True
    skip: int = 0
    path: str = ""
    restart_during: bool = False  # kill: restart at once; the apply may outlast it or give up
    env: tuple[tuple[str, str], ...] = ()

    @property
    def lasting(self) -> bool:
        return self.times < 0 or (self.fault == "kill" and not self.restart_during)


CASES = [
    Case("503 on 2 writes", "status", 2),
    Case("503 on the first 2 reads", "status", 2, writes_only=False),
    Case("slow write past the timeout", "slow", 1, skip=4),
    Case("slow read past the timeout", "slow", 1, writes_only=False),
    Case("2 dropped before the server", "drop", 2, skip=2),
    Case("dropped after a tag was set", "drop_after", 1, path="set-tag", skip=1),
    Case("dropped after a tag was deleted", "drop_after", 1, path="delete-tag"),
    Case("dropped after a transition", "drop_after", 1, path="transition-stage"),
    Case("dropped after an alias was set", "drop_after", 1, path="alias"),
    Case("dropped after a version was created", "drop_after", 1, path="model-versions/create"),
    Case(
        "server killed, restarted during retries",
        "kill",
        1,
        skip=5,
        restart_during=True,
        env=(
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6"),
            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
        ),
    ),
    Case("503 from the 4th write on", "status", -1, skip=3),
    Case("every write dropped from the 6th on", "drop", -1, skip=5),
    Case("slow from the 3rd write on", "slow", -1, skip=2),
]


@dataclass
class Outcome:
    case: str
    first_exit: int
    seconds: float
    applied: int
    failed: int
    not_applied: int
    converged: bool


REPORT: list[Outcome] = []


class RemoteScenario(Scenario):
    """Sources a server accepts: it refuses local paths that are not in a run's artifacts."""

    def new_source(self, model: str, key: str) -> str:
        return f"s3://bucket/models/{model}/{key}"


def rich() -> RemoteScenario:
    observed = {
        name: replace(
            m,
            versions=tuple(
                replace(v, source=v.source.replace("file:///", "s3://bucket/")) for v in m.versions
            ),
        )
        for name, m in RICH.observed.items()
    }
    values = {f.name: getattr(RICH, f.name) for f in fields(RICH)}
    return RemoteScenario(**{**values, "observed": observed})


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    work = tmp_path_factory.mktemp("fault-proxy")
    server = Server(f"sqlite:///{work}/mlflow.db", work, free_port())
    server.start()
    proxy = Proxy(server)
    yield proxy
    proxy.close()
    server.stop()
    if REPORT:
        print(f"\n{len(REPORT)} fault scenarios run, {sum(o.converged for o in REPORT)} converged")
        print(f"{'scenario':42} exit  time  applied failed not-applied converged")
        for o in REPORT:
            print(
                f"{o.case:42} {o.first_exit:>4} {o.seconds:5.1f}s {o.applied:>7} {o.failed:>6}"
                f" {o.not_applied:>11} {o.converged!s:>9}"
            )


def nothing_lost(scenario: Scenario, mid: RegistryState) -> list[str]:
    """What a half-done apply lost: an alias with no version, a kept tag gone, a description
    that is neither the old nor the new text."""
    problems = []
    for name, before in scenario.observed.items():
        now = mid.models.get(name)
        decl = scenario.desired[name]
        if now is None:
            problems.append(f"{name}: model gone")
            continue
        numbers = {v.version for v in now.versions}
        for alias in before.aliases:
            if alias not in now.aliases or now.aliases[alias] not in numbers:
                problems.append(f"{name}: alias {alias} lost")
        for key in before.tags:
            if key not in now.tags and decl.tags.get(key, "") is not None:
                problems.append(f"{name}: model tag {key} lost")
        if now.description not in (before.description, decl.description):
            problems.append(f"{name}: model description {now.description!r}")
        for v in before.versions:
            live = now.version(v.version)
            if live is None:
                problems.append(f"{name} v{v.version}: gone")
                continue
            vdecl = next((d for d in decl.versions if d.ref == v.version), None)
            for key in v.tags:
                deleted = vdecl is not None and vdecl.tags.get(key, "") is None
                if key not in live.tags and not deleted:
                    problems.append(f"{name} v{v.version}: tag {key} lost")
            text = split_history(live.description)[0]
            wanted = vdecl.description if vdecl else None
            if text not in (split_history(v.description)[0], wanted):
                problems.append(f"{name} v{v.version}: description {text!r}")
    return problems


def counts(output: str) -> tuple[int, int, int]:
    """Applied, failed and not-applied steps, from the apply result in JSON."""
    steps = json.loads(output)["steps"]
    applied, failed, not_applied = (
        sum(1 for s in steps if s["status"] == k) for k in ("applied", "failed", "not applied")
    )
    return applied, failed, not_applied


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_then_reapply_converges(
    case: Case,
    proxied: Proxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    for key, value in (*RETRY_ENV.items(), *case.env):
        monkeypatch.setenv(key, value)
    server = proxied.server
    prefix = "f" + case.id.replace(" ", "-").replace(",", "")[:30] + "-"
    scenario = seed(server.uri, rich().renamed(prefix))
    file = tmp_path / "registry.yaml"
    file.write_text(scenario.yaml(), encoding="utf-8")
    if case.restart_during:
        proxied.on_kill = lambda: threading.Thread(target=server.start, daemon=True).start()
    else:
        proxied.on_kill = None

    proxied.arm(
        case.fault,
        case.times,
        writes_only=case.writes_only,
        skip=case.skip,
        delay=SLOW,
        path=case.path,
    )
    started = time.monotonic()
    first = run_cli(capsys, "apply", str(file), "--tracking-uri", proxied.uri, "--format", "json")
    seconds = time.monotonic() - started
    proxied.disarm()
    hits = list(proxied.hits)
    proxied.hits.clear()
    assert hits, f"{case.id}: the fault was never dealt"
    if server.down:
        server.start()  # a lasting kill: the server comes back after the apply gave up
    elif case.restart_during:
        deadline = time.monotonic() + 60
        while server.starts < 2 or not _healthy(server):
            assert time.monotonic() < deadline
            time.sleep(0.2)

    names: Any = sorted(scenario.observed)
    direct = MlflowRegistry(server.uri)
    if case.restart_during and first.code == 1:
        # the restart took longer than the retries (a loaded machine): a lasting fault after all
        applied, failed, not_applied = counts(first.out)
        assert failed >= 1, first.out
        assert nothing_lost(scenario, direct.read(names)) == []
    elif case.lasting:
        assert first.code == 1, first
        applied, failed, not_applied = counts(first.out)
        assert failed >= 1, first.out
        assert applied + not_applied >= 1, first.out
        assert nothing_lost(scenario, direct.read(names)) == []
    else:
        assert first.code == 0, f"{case.id}: {first.err}"
        applied, failed, not_applied = counts(first.out)
        # bounded: 2 retries of 1 s each, plus backoff, plus the work
        assert seconds < 60, seconds

    again = run_cli(capsys, "apply", str(file), "--tracking-uri", proxied.uri, "--format", "json")
    assert again.code == 0, again
    problems = convergence_problems(scenario, direct.read(names))
    plan = make_plan(load(file), direct, None, NOW).plan
    converged = not problems and plan.is_empty
    REPORT.append(Outcome(case.id, first.code, seconds, applied, failed, not_applied, converged))
    assert problems == []
    assert plan.is_empty, plan.changes


def _healthy(server: Server) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.uri}/health", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False
