"""Two applies at once against a PostgreSQL-backed `mlflow server` (issue 6, item 3).

Revision A promotes version 2 (alias champion -> 2, tag rev=A); revision B promotes version 3
(champion -> 3, rev=B). Each round seeds a fresh model (v1 Production, v2 Staging, v3 None), plans
both revisions, holds both threads at a barrier, and applies both at the same moment.

What holds (asserted): applies take the registry's apply lock (a registered model whose unique
name makes it a mutex in every store), so they run one after the other; the second re-reads the
model under the lock, finds it changed and refuses with "registry changed since plan". Every round
ends in exactly one revision, never a mix, and Production never has two versions (a watcher reads
the model throughout). An apply planned before another one wrote is refused, a plan made while an
apply runs never fails, and applying the winning revision once more converges to it.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.apply import STALE
from mlflow_gitops.observed import ModelState
from mlflow_gitops.outcome import ApplyResult
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.spec.load import load
from tests.reliability.harness import AUDIT, NOW
from tests.servers import MlflowServer

pytestmark = [pytest.mark.integration]


ROUNDS = 3
REVISION = """\
version: 1
models:
  {name}:
    tags: {{rev: {rev}}}
    aliases: {{champion: {winner}}}
    versions:
      - {{version: {winner}, stage: Production}}
"""


def seed(uri: str, name: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.create_registered_model(name, tags={"rev": "seed"})
        for n in (1, 2, 3):
            client.create_model_version(name, f"s3://bucket/{name}/{n}")
        client.transition_model_version_stage(name, "1", "Production")
        client.transition_model_version_stage(name, "2", "Staging")
        client.set_registered_model_alias(name, "champion", "1")


def revision(folder: Path, name: str, rev: str, winner: int) -> Path:
    path = folder / f"registry-{rev}.yaml"
    path.write_text(REVISION.format(name=name, rev=rev, winner=winner), encoding="utf-8")
    return path


def which(model: ModelState) -> str:
    """A, B, or `mixed`: which revision the live model equals."""
    prod = [v.version for v in model.versions if v.stage == "Production"]
    marks = {
        "A": prod == [2] and model.aliases.get("champion") == 2 and model.tags.get("rev") == "A",
        "B": prod == [3] and model.aliases.get("champion") == 3 and model.tags.get("rev") == "B",
    }
    return next((k for k, v in marks.items() if v), "mixed")


@pytest.fixture(scope="module")
def uri(postgres_server: MlflowServer) -> str:
    return postgres_server.uri


def race(uri: str, folder: Path, name: str) -> str:
    """One round: both revisions planned, then applied at the same moment; the outcome."""
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    seed(uri, name)
    files = {"A": revision(folder, name, "A", 2), "B": revision(folder, name, "B", 3)}
    barrier = threading.Barrier(2)
    results: dict[str, ApplyResult] = {}
    peaks: list[int] = []
    stop = threading.Event()

    def apply(rev: str) -> None:
        registry = MlflowRegistry(uri)
        planned = make_plan(load(files[rev]), registry, None, NOW)
        barrier.wait(timeout=60)
        results[rev] = apply_plan(planned, registry, AUDIT, NOW, parallelism=1)

    def watch() -> None:
        registry = MlflowRegistry(uri)
        while not stop.is_set():
            live = registry.read([name]).models[name]
            peaks.append(sum(v.stage == "Production" for v in live.versions))

    threads = [threading.Thread(target=apply, args=(r,)) for r in ("A", "B")]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    watcher.join(timeout=30)
    assert set(results) == {"A", "B"}
    for rev, result in results.items():
        failed = [s for s in result.steps if s.status == "failed"]
        # refused as stale, or an error of MLflow's own racing writes (its set-tag is a read then
        # an insert: PostgreSQL answers UniqueViolation when both insert the same key)
        assert result.ok or all(STALE in s.detail or "cannot " in s.detail for s in failed), (
            rev,
            failed,
        )
    live = MlflowRegistry(uri).read([name]).models[name]
    held = sum(v.stage == "Production" for v in live.versions)
    state = which(live)
    ok = sorted(rev for rev, result in results.items() if result.ok)
    assert state in ("A", "B"), f"the registry mixes both revisions: {live}"
    assert max(peaks) <= 1, f"{max(peaks)} versions held Production at once"
    assert len(ok) == 1, f"exactly one apply wins, the other refuses: {ok}"
    loser = results["B" if ok == ["A"] else "A"]
    assert any(STALE in s.detail for s in loser.steps), loser
    # whoever won, applying it again converges to it
    winner = state if state in ("A", "B") else ok[-1] if ok else "A"
    registry = MlflowRegistry(uri)
    assert apply_plan(make_plan(load(files[winner]), registry, None, NOW), registry, AUDIT, NOW).ok
    assert which(MlflowRegistry(uri).read([name]).models[name]) == winner
    return f"{'+'.join(ok) or 'none'} applied, end {state}, peak {max(peaks)} / end {held} in Production"


def test_two_applies_at_once_never_leave_two_production_versions(uri: str, tmp_path: Path) -> None:
    outcomes = Counter(
        race(uri, tmp_path, f"race-{i}-{tmp_path.name[-12:]}") for i in range(ROUNDS)
    )
    print(f"\nconcurrency outcomes over {ROUNDS} rounds: {dict(outcomes)}")
    assert sum(outcomes.values()) == ROUNDS


def test_apply_after_another_apply_refuses_with_registry_changed(uri: str, tmp_path: Path) -> None:
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    name = f"stale-{tmp_path.name[-12:]}"
    seed(uri, name)
    a, b = revision(tmp_path, name, "A", 2), revision(tmp_path, name, "B", 3)
    registry = MlflowRegistry(uri)
    planned_b = make_plan(load(b), registry, None, NOW)  # B plans first ...
    planned_a = make_plan(load(a), registry, None, NOW)
    assert apply_plan(planned_a, registry, AUDIT, NOW).ok  # ... A applies in between ...
    late = apply_plan(planned_b, registry, AUDIT, NOW)  # ... B must not mix into A's result
    assert not late.ok
    assert "registry changed since plan" in late.steps[0].detail
    assert late.count("applied") == 0
    assert which(registry.read([name]).models[name]) == "A"


def test_plan_while_an_apply_runs_never_fails(uri: str, tmp_path: Path) -> None:
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    name = f"planning-{tmp_path.name[-12:]}"
    seed(uri, name)
    a = revision(tmp_path, name, "A", 2)
    done = threading.Event()
    errors: list[BaseException] = []
    plans: list[Any] = []

    def keep_planning() -> None:
        registry = MlflowRegistry(uri)
        while not done.is_set():
            try:
                plans.append(make_plan(load(a), registry, None, NOW).plan)
            except BaseException as exc:  # any error is the failure looked for
                errors.append(exc)

    planner = threading.Thread(target=keep_planning)
    planner.start()
    registry = MlflowRegistry(uri)
    result = apply_plan(make_plan(load(a), registry, None, NOW), registry, AUDIT, NOW)
    done.set()
    planner.join(timeout=60)
    assert result.ok
    assert errors == []
    assert plans
    # every plan read some state in between and describes the way from it to A; none is blocked
    assert all(not p.blocked for p in plans)
    assert make_plan(load(a), registry, None, NOW).plan.is_empty
