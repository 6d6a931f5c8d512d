"""The applier's writes and wall time, before and after, against a sequential client loop making
the same REST calls.

    .venv/bin/python bench/apply.py [--quick] [--before REV]      # before vs after, one server
    .venv/bin/python bench/apply.py --matrix [--quick] [--repeats N] [--no-postgres]

The default run compares, in one run against one server (SQLite, `mlflow server --workers 1`), the
tool as it was before the single record tag (the parent of the commit that introduced
RECORD_TAG in record.py, exported with `git archive` into bench/work/before) with this checkout:
for each, the registry writes per stage transition and per touched version (the applier's own
port calls, recorded), the REST requests and REST writes, and the wall time of apply_plan
(parallelism 4) against the sequential loop replaying that side's writes. Each side runs in its own
process with PYTHONPATH on its own source. Figures go to bench/results/apply-before-after.json.

--matrix (this checkout only):

50 models with 4 versions each (1 Production, 2 Staging, 3 and 4 None); registry.yaml promotes
version 3 to Production and version 4 to Staging, so archive_previous archives 1 and 2: 4 stage
transitions per model, 200 in all. The applier also annotates every touched version (audit tags
and the description's history block) and the model (audit tags); the sequential loop replays exactly
the writes the applier makes (recorded from the applier itself, so the two cannot drift apart).

Modes, each against the same server and the same starting state: a hand-written sequential
MlflowClient loop making the same REST calls as the applier; the tool's apply_plan at parallelism 4
and 8; and apply_plan at 8 with the change proposed for the adapter (writes through MLflow's
ModelRegistryClient, which skips MlflowClient's per-write prompt check). Servers: SQLite and, when
it is up, PostgreSQL at 127.0.0.1:5432, each under uvicorn --workers 1 and a 4-worker server. The
registry is reset with SQL before every run (MLflow's SQL store caches nothing between requests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    SMOKE_HELP,
    HttpCounter,
    MlflowServer,
    ModelRow,
    VersionRow,
    create_schema,
    median,
    postgres_available,
    postgres_database,
    quiet_mlflow,
    registry_yaml,
    table,
    write_registry,
    write_results,
)

NOW = datetime.now(UTC)  # the one clock of the bench's plans, read once at start

GOAL_RATIO = 3.0
COMMIT = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
PR = 12
ACTOR = "bench"
TRANSITIONS_PER_MODEL = 4  # 3 -> Production, 1 -> Archived, 4 -> Staging, 2 -> Archived
LOOP = "sequential MlflowClient loop"
TOOL = "mlflow-gitops apply_plan"
PROPOSED = "apply_plan, writes w/o prompt check"
# (mode, parallelism) in the order they run against each server
MODES = ((LOOP, 1), (TOOL, 4), (TOOL, 8), (PROPOSED, 8))
# (backend, server workers, gunicorn); uvicorn with --workers > 1 is slow on keep-alive (below)
CONFIGS = (
    ("sqlite", 1, False),
    ("sqlite", 4, False),
    ("sqlite", 4, True),
    ("postgresql", 1, False),
    ("postgresql", 4, True),
)


def models(n: int) -> list[ModelRow]:
    before = {1: "Production", 2: "Staging", 3: "None", 4: "None"}
    return [
        ModelRow(
            name=f"apply-model-{i:03d}",
            description=f"Benchmark model {i}.",
            tags={"team": "rides"},
            versions=tuple(
                VersionRow(v, stage, {"model_type": "gbr"}, f"version {v} of model {i}")
                for v, stage in before.items()
            ),
        )
        for i in range(n)
    ]


def desired(rows: list[ModelRow]) -> str:
    """Versions 3 and 4 declared in Production and Staging; 1 and 2 left to archive_previous."""
    stages: dict[tuple[str, int], str | None] = {}
    for m in rows:
        stages.update({(m.name, 1): None, (m.name, 2): None})
        stages.update({(m.name, 3): "Production", (m.name, 4): "Staging"})
    return registry_yaml(rows, stages)


@dataclass
class Run:
    mode: str
    parallelism: int
    wall_s: float
    http_requests: int
    transitions: int
    failed: int
    plan_empty_after: bool
    errors: list[str]
    http_writes: int = 0
    writes_by_endpoint: dict[str, int] = field(default_factory=dict)


def is_write(request: Any) -> bool:
    """A REST call that changes something: anything but GET, except MLflow's POST searches."""
    return request.method != "GET" and not request.path.endswith(("search", "get-latest-versions"))


def by_endpoint(requests: list[Any]) -> dict[str, int]:
    """The writes per `METHOD path` (artifact uploads counted under one path)."""
    out: dict[str, int] = {}
    for r in requests:
        if is_write(r):
            path = "2.0/mlflow-artifacts/artifacts/..." if "mlflow-artifacts" in r.path else r.path
            key = f"{r.method} {path}"
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


class _WritesWithoutPromptCheck:
    """MlflowClient for reads, MLflow's ModelRegistryClient for writes: the change proposed for
    MlflowRegistry (MlflowClient 3.x sends GET registered-models/get before every registry write
    to refuse prompts; the adapter's read already excludes prompts)."""

    WRITES = frozenset(
        {
            "create_registered_model",
            "update_registered_model",
            "set_registered_model_tag",
            "delete_registered_model_tag",
            "update_model_version",
            "set_model_version_tag",
            "delete_model_version_tag",
            "transition_model_version_stage",
            "set_registered_model_alias",
            "delete_registered_model_alias",
        }
    )

    def __init__(self, client: Any) -> None:
        self._client = client
        self._registry = client._get_registry_client()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry if name in self.WRITES else self._client, name)


def run_tool(url: str, file: Path, parallelism: int, proposed: bool = False) -> Run:
    """The tool's own path: make_plan (not timed), then apply_plan with bounded concurrency."""
    from mlflow_gitops.audit import AuditContext
    from mlflow_gitops.plan.changes import TransitionStage
    from mlflow_gitops.reconcile import apply_plan, make_plan
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
    from mlflow_gitops.spec.load import load

    loaded = load(file)
    registry = MlflowRegistry(url)
    planned = make_plan(loaded, registry, None, NOW)
    if proposed:
        registry.client = _WritesWithoutPromptCheck(registry.client)
    transitions = sum(isinstance(c, TransitionStage) for c in planned.plan.changes)
    audit = AuditContext(commit=COMMIT, pr=PR, actor=ACTOR)
    with HttpCounter() as http:
        started = time.perf_counter()
        result = apply_plan(planned, registry, audit, datetime.now(UTC), parallelism=parallelism)
        wall = time.perf_counter() - started
    after = make_plan(loaded, MlflowRegistry(url), None, NOW)
    return Run(
        mode=PROPOSED if proposed else TOOL,
        parallelism=parallelism,
        wall_s=wall,
        http_requests=http.count,
        transitions=transitions,
        failed=result.count("failed") + result.count("not applied"),
        plan_empty_after=after.plan.is_empty,
        errors=sorted({s.detail[:160] for s in result.steps if s.status == "failed"})[:3],
        http_writes=sum(is_write(r) for r in http.requests),
        writes_by_endpoint=by_endpoint(http.requests),
    )


class _Recorder:
    """A registry port that records the registry writes the applier makes, in order, and passes
    everything else (reads, the apply lock) to the real adapter."""

    WRITES = frozenset(
        {
            "create_model",
            "register_version",
            "set_model_description",
            "set_model_tag",
            "delete_model_tag",
            "set_version_description",
            "set_version_tag",
            "delete_version_tag",
            "transition_stage",
            "set_alias",
            "delete_alias",
            "delete_version",
        }
    )

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        if method not in self.WRITES:
            return getattr(self.registry, method)

        def record(*args: Any) -> None:
            self.calls.append((method, args))

        return record


def planned_writes(url: str, file: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """The applier's writes for this plan, recorded without touching the registry, so that the
    sequential loop makes exactly the same calls whatever the applier annotates."""
    from mlflow_gitops.audit import AuditContext
    from mlflow_gitops.reconcile import apply_plan, make_plan
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
    from mlflow_gitops.spec.load import load

    registry = MlflowRegistry(url)
    planned = make_plan(load(file), registry, None, NOW)
    recorder = _Recorder(registry)
    audit = AuditContext(commit=COMMIT, pr=PR, actor=ACTOR)
    apply_plan(planned, recorder, audit, datetime.now(UTC), parallelism=1)  # type: ignore[arg-type]
    return recorder.calls


def run_sequential(url: str, writes: list[tuple[str, tuple[Any, ...]]]) -> Run:
    """What a careful script does by hand: the same transitions, audit tags and history lines,
    one MlflowClient call after the other."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    calls = {
        "transition_stage": lambda n, v, stage, archive_others=False: (
            client.transition_model_version_stage(
                n, str(v), stage, archive_existing_versions=archive_others
            )
        ),
        "set_version_tag": lambda n, v, k, value: client.set_model_version_tag(n, str(v), k, value),
        "delete_version_tag": lambda n, v, k: client.delete_model_version_tag(n, str(v), k),
        "set_version_description": lambda n, v, text: client.update_model_version(
            n, str(v), description=text
        ),
        "set_model_tag": client.set_registered_model_tag,
        "delete_model_tag": client.delete_registered_model_tag,
        "set_model_description": lambda n, text: client.update_registered_model(
            n, description=text
        ),
        "set_alias": lambda n, alias, v: client.set_registered_model_alias(n, alias, str(v)),
        "delete_alias": client.delete_registered_model_alias,
    }
    unknown = sorted({method for method, _ in writes} - set(calls))
    if unknown:
        raise SystemExit(f"the applier makes calls this loop cannot replay: {unknown}")
    errors: list[str] = []
    with HttpCounter() as http:
        started = time.perf_counter()
        for method, args in writes:
            try:
                calls[method](*args)
            except Exception as exc:
                errors.append(f"{method}{args[:2]}: {str(exc)[:160]}")
        wall = time.perf_counter() - started
    return Run(
        mode=LOOP,
        parallelism=1,
        wall_s=wall,
        http_requests=http.count,
        transitions=sum(method == "transition_stage" for method, _ in writes),
        failed=len(errors),
        plan_empty_after=False,
        errors=errors[:3],
        http_writes=sum(is_write(r) for r in http.requests),
        writes_by_endpoint=by_endpoint(http.requests),
    )


def run_config(
    backend: str,
    db_uri: str,
    workdir: Path,
    server_opts: tuple[int, bool],
    rows: list[ModelRow],
    repeats: int,
) -> dict[str, Any]:
    file = workdir / "registry.yaml"
    file.write_text(desired(rows), encoding="utf-8")
    workers, gunicorn = server_opts
    runs: list[Run] = []
    with MlflowServer(db_uri, workdir, workers=workers, gunicorn=gunicorn) as server:
        label = f"{backend}, {server.label}"
        print(f"\n{label} at {server.url}", flush=True)
        for _ in range(repeats):
            for mode, parallelism in MODES:
                write_registry(db_uri, rows, replace=True)
                if mode == LOOP:
                    writes = planned_writes(server.url, file)
                    run = run_sequential(server.url, writes)
                else:
                    run = run_tool(server.url, file, parallelism, proposed=mode == PROPOSED)
                runs.append(run)
                print(
                    f"  {run.mode:36} p={run.parallelism}: {run.wall_s:7.2f} s, "
                    f"{run.http_requests} requests, {run.failed} failed",
                    flush=True,
                )
    summary = []
    for mode, parallelism in MODES:
        mine = [r for r in runs if r.mode == mode and r.parallelism == parallelism]
        summary.append(
            {
                "mode": mode,
                "parallelism": parallelism,
                "median_wall_s": median([r.wall_s for r in mine]),
                "runs_s": [r.wall_s for r in mine],
                "http_requests": mine[-1].http_requests,
                "transitions": mine[-1].transitions,
                "failed": sum(r.failed for r in mine),
                "plan_empty_after": None if mode == LOOP else all(r.plan_empty_after for r in mine),
                "errors": sorted({e for r in mine for e in r.errors})[:3],
            }
        )
    sequential = summary[0]["median_wall_s"]
    for s in summary:
        s["speedup_vs_sequential"] = sequential / s["median_wall_s"]
    by_method: dict[str, int] = {}
    for method, _ in writes:
        by_method[method] = by_method.get(method, 0) + 1
    return {
        "backend": backend,
        "server": label,
        "applier_writes": {"total": len(writes), "by_method": dict(sorted(by_method.items()))},
        "workers": workers,
        "gunicorn": gunicorn,
        "summary": summary,
    }


def keepalive_latency(url: str, n: int = 30) -> dict[str, float]:
    """Median ms of GET /health on one kept-alive connection and on a new connection each time."""
    import requests

    def median_ms(get: Any) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            get(url + "/health", timeout=10)
            times.append(time.perf_counter() - started)
        return 1000 * median(times)

    with requests.Session() as session:
        kept = median_ms(session.get)
    return {"keepalive_ms": kept, "new_connection_ms": median_ms(requests.get)}


def matrix(args: argparse.Namespace) -> None:
    """This checkout on every server configuration: the concurrency against the loop."""
    quiet_mlflow()
    n_models = 3 if args.smoke else 10 if args.quick else 50
    repeats = args.repeats or 1
    backends = ["sqlite"]
    configs = CONFIGS[:1] if args.smoke else CONFIGS
    if not (args.quick or args.no_postgres) and postgres_available():
        backends.append("postgresql")
    rows = models(n_models)
    results: dict[str, Any] = {
        "goal_min_ratio": GOAL_RATIO,
        "models": n_models,
        "transitions": n_models * TRANSITIONS_PER_MODEL,
        "repeats": repeats,
        "configs": [],
        "keepalive": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp_name:
        tmp = Path(tmp_name)
        for backend in backends:
            with contextlib.ExitStack() as stack:
                if backend == "sqlite":
                    db_uri = f"sqlite:///{tmp / 'mlflow.db'}"
                else:
                    db_uri = stack.enter_context(postgres_database(f"bench_apply_{os.getpid()}"))
                create_schema(db_uri)
                for name, workers, gunicorn in configs:
                    if name != backend:
                        continue
                    with MlflowServer(db_uri, tmp, workers=workers, gunicorn=gunicorn) as server:
                        results["keepalive"][f"{backend}, {server.label}"] = keepalive_latency(
                            server.url
                        )
                    results["configs"].append(
                        run_config(backend, db_uri, tmp, (workers, gunicorn), rows, repeats)
                    )
                    # partial figures survive a crash
                    write_results("apply", results, args.quick, smoke=args.smoke)
    report(results)
    path = write_results("apply", results, args.quick, smoke=args.smoke)
    print(f"\nwrote {path}")


def report(r: dict[str, Any]) -> None:
    print(
        f"\n{r['transitions']} stage transitions across {r['models']} models; "
        f"median of {r['repeats']} runs; apply time only (the plan's read is not timed)\n"
    )
    rows = []
    for config in r["configs"]:
        for s in config["summary"]:
            rows.append(
                [
                    config["server"],
                    s["mode"],
                    s["parallelism"],
                    s["http_requests"],
                    s["median_wall_s"],
                    f"{s['speedup_vs_sequential']:.2f}x",
                    s["failed"],
                    {True: "yes", False: "NO", None: ""}[s["plan_empty_after"]],
                ]
            )
    print(
        table(
            [
                "server",
                "mode",
                "parallel",
                "REST calls",
                "median s",
                "vs loop",
                "failed",
                "plan empty after",
            ],
            rows,
        )
    )
    best = max(
        (s["speedup_vs_sequential"], c["server"], s["parallelism"])
        for c in r["configs"]
        for s in c["summary"]
        if s["mode"] == TOOL
    )
    r["best_ratio"] = {"ratio": best[0], "server": best[1], "parallelism": best[2]}
    print(
        f"\nbest ratio vs the sequential loop: {best[0]:.2f}x ({best[1]}, parallelism {best[2]}); "
        f"goal >= {GOAL_RATIO:.0f}x: {'met' if best[0] >= GOAL_RATIO else 'NOT met'}"
    )
    print("\nGET /health latency (median ms): one kept-alive connection vs a new one each time")
    print(
        table(
            ["server", "keep-alive ms", "new connection ms"],
            [[k, v["keepalive_ms"], v["new_connection_ms"]] for k, v in r["keepalive"].items()],
        )
    )
    for config in r["configs"]:
        for s in config["summary"]:
            for error in s["errors"]:
                print(f"  error ({config['server']}, {s['mode']} p={s['parallelism']}): {error}")


# --- before and after, in one run ------------------------------------------------------------

REPO = BENCH.parent
WORK = BENCH / "work"
SIDE_PARALLELISM = 4
VERSION_WRITES = ("set_version", "delete_version", "transition_stage")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def before_commit() -> str:
    """The parent of the commit that introduced the single record tag (RECORD_TAG in record.py):
    the last tool that wrote one tag per audit field."""
    introduced = git(
        "log", "--reverse", "--format=%H", "-SRECORD_TAG", "--", "src/mlflow_gitops/record.py"
    )
    return git("rev-parse", introduced.split()[0] + "^")


def export(rev: str, dest: Path) -> Path:
    """`git archive <rev> src | tar -x -C dest`; the source directory to put on PYTHONPATH."""
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def side(args: argparse.Namespace) -> None:
    """One side in its own process (the tool on PYTHONPATH is that side's): the registry reset, the
    applier's writes recorded, the sequential loop replaying them; reset again, apply_plan."""
    quiet_mlflow()
    import mlflow_gitops

    rows = models(args.models)
    file = Path(args.file)
    write_registry(args.db, rows, replace=True)
    writes = planned_writes(args.url, file)
    loop = run_sequential(args.url, writes)
    write_registry(args.db, rows, replace=True)
    tool = run_tool(args.url, file, SIDE_PARALLELISM)
    methods: dict[str, int] = {}
    for method, _ in writes:
        methods[method] = methods.get(method, 0) + 1
    touched = {(a[0], a[1]) for method, a in writes if method.startswith(VERSION_WRITES)}
    doc = {
        "package": str(Path(mlflow_gitops.__file__).parent),
        "transitions": tool.transitions,
        "touched_versions": len(touched),
        "models": len({a[0] for _, a in writes}),
        "registry_writes": {"total": len(writes), "by_method": dict(sorted(methods.items()))},
        "loop": loop.__dict__,
        "tool": tool.__dict__,
    }
    print(json.dumps(doc))


def compare(args: argparse.Namespace) -> None:
    """Before and after against one server, each side in its own process."""
    quiet_mlflow()
    n_models = 10 if args.quick else args.models
    before = args.before or before_commit()
    head = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "src"))
    sides = {
        "before": (git("rev-parse", "--short", before), export(before, WORK / "before")),
        "after": (head + (" + uncommitted changes" if dirty else ""), REPO / "src"),
    }
    rows = models(n_models)
    results: dict[str, Any] = {
        "models": n_models,
        "transitions": n_models * TRANSITIONS_PER_MODEL,
        "parallelism": SIDE_PARALLELISM,
        "sides": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp_name:
        tmp = Path(tmp_name)
        db_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        create_schema(db_uri)
        file = tmp / "registry.yaml"
        file.write_text(desired(rows), encoding="utf-8")
        with MlflowServer(db_uri, tmp, workers=1) as server:
            results["server"] = f"sqlite, {server.label}"
            for name, (rev, src) in sides.items():
                print(f"{name} ({rev}) ...", flush=True)
                cmd = [sys.executable, __file__, "--side", "--url", server.url, "--db", db_uri]
                cmd += ["--file", str(file), "--models", str(n_models)]
                env = {**os.environ, "PYTHONPATH": str(src)}
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"the {name} side failed:\n{done.stderr[-4000:]}")
                results["sides"][name] = {"rev": rev, **json.loads(done.stdout.splitlines()[-1])}
    report_compare(results)
    path = write_results("apply-before-after", results, args.quick)
    print(f"\nwrote {path}")


def report_compare(r: dict[str, Any]) -> None:
    print(
        f"\n{r['transitions']} stage transitions across {r['models']} models, {r['server']}; "
        f"apply_plan at parallelism {r['parallelism']} against the sequential loop replaying the "
        "same side's writes; apply time only\n"
    )
    rows = []
    for name, s in r["sides"].items():
        writes, loop, tool = s["registry_writes"]["total"], s["loop"], s["tool"]
        s["writes_per_transition"] = writes / s["transitions"]
        s["writes_per_touched_version"] = writes / s["touched_versions"]
        s["loop_vs_tool"] = loop["wall_s"] / tool["wall_s"]
        rows.append(
            [
                f"{name} ({s['rev']})",
                writes,
                f"{s['writes_per_transition']:.2f}",
                f"{s['writes_per_touched_version']:.2f}",
                f"{loop['http_writes']} / {tool['http_writes']}",
                f"{loop['http_requests']} / {tool['http_requests']}",
                loop["wall_s"],
                tool["wall_s"],
                f"{s['loop_vs_tool']:.2f}x",
                "yes" if tool["plan_empty_after"] else "NO",
                loop["failed"] + tool["failed"],
            ]
        )
    headers = ["tool", "registry writes", "per transition", "per touched version"]
    headers += ["REST writes loop / tool", "REST requests loop / tool", "loop s", "apply s"]
    headers += ["loop / apply", "plan empty after", "failed"]
    print(table(headers, rows))
    for name, s in r["sides"].items():
        print(f"\n{name}: registry writes by port method {s['registry_writes']['by_method']}")
        print(f"  apply_plan's REST writes: {s['tool']['writes_by_endpoint']}")
        for error in s["loop"]["errors"] + s["tool"]["errors"]:
            print(f"  error: {error}")
    before, after = r["sides"].get("before"), r["sides"].get("after")
    if before and after:
        r["after_vs_before"] = {
            "registry_writes": after["registry_writes"]["total"]
            / before["registry_writes"]["total"],
            "apply_wall": after["tool"]["wall_s"] / before["tool"]["wall_s"],
            "loop_wall": after["loop"]["wall_s"] / before["loop"]["wall_s"],
        }
        goal = after["writes_per_touched_version"] <= 3
        print(
            f"\nafter / before: registry writes {r['after_vs_before']['registry_writes']:.2f}, "
            f"apply time {r['after_vs_before']['apply_wall']:.2f}; goal <= 3 writes per touched "
            f"version: {'met' if goal else 'NOT met'} ({after['writes_per_touched_version']:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 models, one repeat, SQLite only")
    parser.add_argument("--matrix", action="store_true", help="every server config, this checkout")
    parser.add_argument("--repeats", type=int, default=None, help="--matrix: runs per mode")
    parser.add_argument("--no-postgres", action="store_true", help="--matrix: SQLite only")
    parser.add_argument("--before", help="the 'before' revision (default: found with git log)")
    parser.add_argument("--models", type=int, default=50, help="models, 4 transitions each")
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the matrix on one SQLite server, 3 models (the before side needs git history)
        args.matrix, args.quick, args.models = True, True, 3
    if args.side:
        side(args)
    elif args.matrix:
        matrix(args)
    else:
        compare(args)


if __name__ == "__main__":
    sys.exit(main())
