"""How many REST calls and how long `plan` takes to read a large registry through `mlflow server`,
against a script that reads the same state one version at a time.

    .venv/bin/python bench/plan_reads.py [--quick | --smoke] [--workers N]

The registry (1,000 models x 20 versions by default) is written straight into the server's SQLite
file with MLflow's own SQLAlchemy models before the server starts: registering 20,000 versions over
REST would take longer than the benchmark itself.

The floor (issue 19: the CLI's plan within 1.5x of it): the same two searches with `requests`,
JSON decoded, in one process, measured as many times as the CLI, between its runs.
--smoke: 10 models x 5 versions, one run, no server limits probed, no gunicorn server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from _common import (
    GITOPS,
    SMOKE_HELP,
    HttpCounter,
    MlflowServer,
    ModelRow,
    create_schema,
    in_flight_seconds,
    median,
    quiet_mlflow,
    registry_yaml,
    synthetic_models,
    table,
    timed_subprocess,
    write_registry,
    write_results,
)

NOW = datetime.now(UTC)  # the one clock of the bench's plans, read once at start
GOAL_CALLS = 10
GOAL_SPEEDUP = 100.0
GOAL_CLI_OVER_FLOOR = 1.5  # issue 19: the command-line plan within 1.5x of the REST floor


def verify(url: str, models: list[ModelRow]) -> dict[str, Any]:
    """Counts as the server reports them (not as we wrote them)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    registered, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        registered += page
        token = page.token
        if not token:
            break
    versions = client.search_model_versions(max_results=200_000)
    seen = {
        "registered_models": len(registered),
        "model_versions": len(versions),
        "version_tags": sum(len(v.tags) for v in versions),
        "aliases": sum(len(m.aliases) for m in registered),
        "stages": dict(sorted(Counter(v.current_stage for v in versions).items())),
    }
    wanted = {
        "registered_models": len(models),
        "model_versions": sum(len(m.versions) for m in models),
        "version_tags": sum(len(v.tags) for m in models for v in m.versions),
        "aliases": sum(len(m.aliases) for m in models),
        "stages": dict(sorted(Counter(v.stage for m in models for v in m.versions).items())),
    }
    if seen != wanted:
        raise SystemExit(f"the server does not hold what was written: {seen} != {wanted}")
    return seen


def measure_plan(url: str, registry_file: Path, repeats: int) -> dict[str, Any]:
    """make_plan in-process: wall time, real HTTP requests and MlflowRegistry.calls."""
    from mlflow_gitops.plan.planner import plan as compute_plan
    from mlflow_gitops.reconcile import make_plan
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
    from mlflow_gitops.spec.load import load

    started = time.perf_counter()
    loaded = load(registry_file)
    load_s = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        registry = MlflowRegistry(url)
        with HttpCounter() as http:
            started = time.perf_counter()
            planned = make_plan(loaded, registry, None, NOW)
            wall = time.perf_counter() - started
        started = time.perf_counter()
        compute_plan(loaded, planned.observed, NOW)
        pure = time.perf_counter() - started
        runs.append(
            {
                "wall_s": wall,
                "http_requests": http.count,
                "registry_calls": registry.calls,
                # the two searches overlap: the time with a request in flight, counted once
                "http_s": in_flight_seconds(http.requests),
                "pure_plan_s": pure,
                "requests": [
                    {"path": r.path, "url_chars": r.url_chars, "status": r.status, "s": r.seconds}
                    for r in http.requests
                ],
                "changes": len(planned.plan.changes),
                "versions_read": sum(len(m.versions) for m in planned.observed.models.values()),
            }
        )
    return {
        "load_yaml_s": load_s,
        "runs": runs,
        "median_wall_s": median([r["wall_s"] for r in runs]),
    }


def measure_cli(url: str, registry_file: Path, repeats: int) -> dict[str, Any]:
    """The CLI as a subprocess, each run followed by one floor read (the same load for both)."""
    cmd = [GITOPS, "plan", str(registry_file), "--tracking-uri", url, "--detailed-exitcode"]
    times, floors, together, last = [], [], [], None
    for _ in range(repeats):
        seconds, last = timed_subprocess(cmd)
        times.append(seconds)
        floor = floor_read(url)
        floors.append(floor["sequential_s"])
        together.append(floor["concurrent_s"])
    assert last is not None
    return {
        "floor_runs_s": floors,
        "floor_median_s": median(floors),
        "over_floor": median(times) / median(floors),
        "over_floor_paired_median": median([t / f for t, f in zip(times, floors, strict=True)]),
        # the CLI sends its two searches at once: against the floor doing the same
        "floor_concurrent_runs_s": together,
        "over_concurrent_floor": median(times) / median(together),
        "command": f"mlflow-gitops plan registry.yaml --tracking-uri {url} --detailed-exitcode",
        "runs_s": times,
        "median_s": median(times),
        "exit_code": last.returncode,
        "output_tail": (last.stdout + last.stderr).strip().splitlines()[-3:],
    }


def measure_baseline(url: str, models: list[ModelRow], sample_versions: int) -> dict[str, Any]:
    """The hand-written reader: get_registered_model per model (description, tags, aliases) and
    get_model_version per version, on whole models until the sample is reached."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    per_model = len(models[0].versions)
    sample = models[: max(1, sample_versions // per_model)]
    read = 0
    with HttpCounter() as http:
        started = time.perf_counter()
        for m in sample:
            client.get_registered_model(m.name)
            for v in m.versions:
                client.get_model_version(m.name, str(v.version))
                read += 1
        wall = time.perf_counter() - started
    total_versions = sum(len(m.versions) for m in models)
    scale = total_versions / read
    return {
        "sample_models": len(sample),
        "sample_versions": read,
        "sample_http_requests": http.count,
        "sample_wall_s": wall,
        "ms_per_request": 1000 * wall / http.count,
        "scale_factor": scale,
        "scaled_http_requests": round(http.count * scale),
        "scaled_wall_s": wall * scale,
    }


# --- why the read takes the calls it takes -------------------------------------------------------


def _search(url: str, what: str, params: dict[str, Any]) -> tuple[int | str, str]:
    path = {"models": "registered-models/search", "versions": "model-versions/search"}[what]
    try:
        resp = requests.get(f"{url}/api/2.0/mlflow/{path}", params=params, timeout=120)
    except requests.RequestException as exc:
        return type(exc).__name__, ""
    return resp.status_code, resp.text[:160]


def url_limit(url: str, names: list[str]) -> dict[str, Any]:
    """The longest `name IN (...)` filter the server accepts in a GET query string."""
    from mlflow_gitops.registry.mlflow.base import quote as _quote

    def status(k: int) -> tuple[int | str, int]:
        flt = f"name IN ({', '.join(_quote(n) for n in names[:k])})"
        prepared = requests.Request(
            "GET", f"{url}/api/2.0/mlflow/registered-models/search", params={"filter": flt}
        ).prepare()
        code, _ = _search(url, "models", {"filter": flt, "max_results": 1000})
        return code, len(prepared.url or "")

    lo, hi = 1, len(names)
    if status(hi)[0] == 200:
        _code, chars = status(hi)
        return {"max_names": hi, "max_url_chars": chars, "all_names_fit": True}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if status(mid)[0] == 200:
            lo = mid
        else:
            hi = mid
    _ok_code, ok_chars = status(lo)
    bad_code, bad_chars = status(hi)
    flt_chars = len(f"name IN ({', '.join(_quote(n) for n in names[:lo])})")
    return {
        "max_names": lo,
        "max_filter_chars": flt_chars,
        "max_url_chars": ok_chars,
        "first_refused_url_chars": bad_chars,
        "refused_with": bad_code,
        "all_names_fit": False,
    }


def page_limits(url: str) -> dict[str, Any]:
    """The largest max_results the server accepts for each search."""
    out = {}
    for what, limit in (("models", 1000), ("versions", 200_000)):
        ok, _ = _search(url, what, {"max_results": limit, "filter": "name = 'none'"})
        refused, text = _search(url, what, {"max_results": limit + 1, "filter": "name = 'none'"})
        out[what] = {"max_results": limit, "status": ok, "above": refused, "message": text[:120]}
    return out


def chunked_reads(
    url: str, names: list[str], variants: list[tuple[int, int]]
) -> list[dict[str, Any]]:
    """The adapter's read with other MAX_FILTER_URL_CHARS / MAX_FILTER_CHUNKS (patched here only)."""
    import mlflow_gitops.registry.mlflow.reads as adapter
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    saved = adapter.MAX_FILTER_URL_CHARS, adapter.MAX_FILTER_CHUNKS
    out = []
    try:
        for chars, max_chunks in variants:
            adapter.MAX_FILTER_URL_CHARS, adapter.MAX_FILTER_CHUNKS = chars, max_chunks
            registry = MlflowRegistry(url)
            chunks = len(adapter.in_chunks(sorted(names)))
            with HttpCounter() as http:
                started = time.perf_counter()
                try:
                    state = registry.read(names)
                    error = ""
                except Exception as exc:
                    state, error = None, str(exc)[:200]
                wall = time.perf_counter() - started
            out.append(
                {
                    "MAX_FILTER_URL_CHARS": chars,
                    "MAX_FILTER_CHUNKS": max_chunks,
                    "in_chunks": chunks,
                    "mode": "IN chunks" if chunks <= max_chunks else "full scan",
                    "http_requests": http.count,
                    "longest_url_chars": max((r.url_chars for r in http.requests), default=0),
                    "wall_s": wall,
                    "versions_read": sum(len(m.versions) for m in state.models.values())
                    if state
                    else 0,
                    "error": error,
                }
            )
    finally:
        adapter.MAX_FILTER_URL_CHARS, adapter.MAX_FILTER_CHUNKS = saved
    return out


def adapter_read(url: str, names: list[str]) -> dict[str, Any]:
    """The adapter's read as it is, with these names: the URLs it sends and what came back."""
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
    from mlflow_gitops.registry.mlflow.reads import in_chunks as _in_chunks

    registry = MlflowRegistry(url)
    with HttpCounter() as http:
        try:
            registry.read(names)
            error = ""
        except Exception as exc:
            error = str(exc).splitlines()[0][:200]
    return {
        "names": len(names),
        "example_name": names[0],
        "filter_chars": [len(c) for c in _in_chunks(sorted(names))],
        "requests": [{"url_chars": r.url_chars, "status": r.status} for r in http.requests],
        "error": error,
    }


def floor_read(url: str) -> dict[str, Any]:
    """The same two searches with plain requests + json (no protobuf, no MlflowClient entities):
    what a read through MLflow's REST API costs at the least, sequentially and concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    def get(what: str) -> int:
        path, size = {
            "models": ("registered-models/search", 1000),
            "versions": ("model-versions/search", 200_000),
        }[what]
        resp = requests.get(
            f"{url}/api/2.0/mlflow/{path}", params={"max_results": size}, timeout=300
        )
        resp.raise_for_status()
        body = resp.json()
        return len(body.get("registered_models", body.get("model_versions", [])))

    started = time.perf_counter()
    counts = [get("models"), get("versions")]
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(get, ["models", "versions"]))
    concurrent = time.perf_counter() - started
    return {"items": counts, "sequential_s": sequential, "concurrent_s": concurrent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 models, one repeat")
    parser.add_argument("--workers", type=int, default=1, help="mlflow server --workers")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    quiet_mlflow()
    n_models, n_versions = (10, 5) if args.smoke else (100, 20) if args.quick else (1000, 20)
    repeats, sample = (1, 10) if args.smoke else (1, 200) if args.quick else (3, 1000)
    models = synthetic_models(n_models, n_versions)
    names = [m.name for m in models]
    # the URL probe needs more names than fit; they need not exist (same length as the real ones)
    probe_names = [f"bench-model-{i:04d}"[-16:] for i in range(20_000)]
    results: dict[str, Any] = {
        "goals": {"max_rest_calls": GOAL_CALLS, "min_speedup_vs_per_version": GOAL_SPEEDUP},
        "registry": {"models": n_models, "versions_per_model": n_versions},
    }
    with tempfile.TemporaryDirectory(prefix="bench-plan-reads-") as tmp_name:
        tmp = Path(tmp_name)
        db_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        started = time.perf_counter()
        create_schema(db_uri)
        results["populate"] = {
            "schema_s": time.perf_counter() - started,
            "insert_s": write_registry(db_uri, models),
        }
        registry_file = tmp / "registry.yaml"
        registry_file.write_text(registry_yaml(models), encoding="utf-8")
        results["registry_yaml_bytes"] = registry_file.stat().st_size

        with MlflowServer(db_uri, tmp, workers=args.workers) as server:
            results["server"] = server.label
            print(f"mlflow server ({server.label}) at {server.url}, SQLite backend", flush=True)
            results["verified"] = verify(server.url, models)
            print(f"server holds: {results['verified']}", flush=True)
            results["plan"] = measure_plan(server.url, registry_file, repeats)
            results["cli"] = measure_cli(server.url, registry_file, repeats)
            results["baseline"] = measure_baseline(server.url, models, sample)
            if not args.smoke:
                results["limits"] = {
                    "uvicorn_url": url_limit(server.url, probe_names),
                    "page_sizes": page_limits(server.url),
                }
            results["floor_read"] = floor_read(server.url)
            results["chunked_reads"] = chunked_reads(
                server.url, names, [(3000, 2), (3000, 10**6), (12000, 10**6)]
            )
        if not args.smoke:
            with MlflowServer(db_uri, tmp, workers=1, gunicorn=True) as gunicorn:
                results["limits"]["gunicorn_url"] = url_limit(gunicorn.url, probe_names)
                # names MLflow accepts, with characters that URL-encode to 3-9 characters each
                accented = [f"modèle prévision n°{i:04d}" for i in range(200)]
                results["limits"]["gunicorn_adapter_accented_names"] = adapter_read(
                    gunicorn.url, accented
                )

    report(results)
    path = write_results("plan_reads", results, args.quick, smoke=args.smoke)
    print(f"\nwrote {path}")


def report(r: dict[str, Any]) -> None:
    plan, base, cli = r["plan"], r["baseline"], r["cli"]
    run = plan["runs"][-1]
    n_versions = r["verified"]["model_versions"]
    speedup = base["scaled_wall_s"] / plan["median_wall_s"]
    r["speedup"] = speedup
    r["speedup_cli"] = base["scaled_wall_s"] / cli["median_s"]
    print(f"\nRegistry: {r['verified']} (server {r['server']})")
    print(
        f"populated in {r['populate']['schema_s'] + r['populate']['insert_s']:.1f} s "
        f"(schema {r['populate']['schema_s']:.1f} s, rows {r['populate']['insert_s']:.1f} s)\n"
    )
    rows = [
        [
            "make_plan (in-process, median)",
            run["http_requests"],
            run["registry_calls"],
            plan["median_wall_s"],
            n_versions,
        ],
        ["mlflow-gitops plan (CLI, median)", run["http_requests"], "", cli["median_s"], n_versions],
        [
            f"per-version baseline, measured on {base['sample_versions']:,} versions",
            base["sample_http_requests"],
            "",
            base["sample_wall_s"],
            base["sample_versions"],
        ],
        [
            f"per-version baseline, scaled x{base['scale_factor']:.0f} (estimate)",
            base["scaled_http_requests"],
            "",
            base["scaled_wall_s"],
            n_versions,
        ],
    ]
    print(table(["read", "REST calls", "adapter calls", "wall s", "versions"], rows))
    print(
        f"\nspeed-up, make_plan vs the per-version baseline (scaled): {speedup:,.1f}x "
        f"(goal >= {GOAL_SPEEDUP:.0f}x: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'})"
    )
    print(
        f"REST calls to read {n_versions:,} versions: {run['http_requests']} "
        f"(goal <= {GOAL_CALLS}: {'met' if run['http_requests'] <= GOAL_CALLS else 'NOT met'})"
    )
    print(f"CLI exit code {cli['exit_code']} (0 = no changes); plan had {run['changes']} changes")
    print(
        f"CLI plan / REST floor (two searches with requests + json, one process, measured after "
        f"each CLI run): {cli['median_s']:.2f} s / {cli['floor_median_s']:.2f} s = "
        f"{cli['over_floor']:.2f}x (paired {cli['over_floor_paired_median']:.2f}x; goal "
        f"{GOAL_CLI_OVER_FLOOR}x: {'met' if cli['over_floor'] <= GOAL_CLI_OVER_FLOOR else 'NOT met'})"
    )
    print(
        f"  against the floor sending its two searches at once, as the CLI does: "
        f"{median(cli['floor_concurrent_runs_s']):.2f} s, {cli['over_concurrent_floor']:.2f}x"
    )
    print(
        f"where make_plan's time goes (last run, {run['wall_s']:.2f} s): "
        f"a request in flight {run['http_s']:.2f} s, "
        f"pure plan() {run['pure_plan_s']:.3f} s, the rest (JSON -> VersionState, the plan's "
        f"checks) {run['wall_s'] - run['http_s'] - run['pure_plan_s']:.2f} s; "
        f"loading registry.yaml {plan['load_yaml_s']:.2f} s"
    )
    print("requests of the last run:")
    print(
        table(
            ["request", "URL chars", "status", "s"],
            [[q["path"], q["url_chars"], q["status"], q["s"]] for q in run["requests"]],
        )
    )
    if "limits" in r:
        report_limits(r)
    floor = r["floor_read"]
    print(
        f"\nfloor through REST (requests + json, no MLflow entities): {floor['sequential_s']:.2f} s "
        f"sequential, {floor['concurrent_s']:.2f} s with the two searches concurrent; "
        f"the baseline / floor ratio bounds any REST reader at "
        f"{base['scaled_wall_s'] / min(floor['sequential_s'], floor['concurrent_s']):.0f}x"
    )
    report_chunks(r)


def report_limits(r: dict[str, Any]) -> None:
    lim = r["limits"]
    print("\nServer limits (measured):")
    rows = []
    for server in ("uvicorn_url", "gunicorn_url"):
        u = lim[server]
        rows.append(
            [
                server.split("_")[0],
                u["max_names"],
                u.get("max_filter_chars", ""),
                u["max_url_chars"],
                u.get("first_refused_url_chars", ""),
                u.get("refused_with", ""),
            ]
        )
    print(
        table(
            ["server", "names per IN filter", "filter chars", "URL chars ok", "refused at", "as"],
            rows,
        )
    )
    for what, p in lim["page_sizes"].items():
        print(
            f"  search {what}: max_results={p['max_results']:,} -> {p['status']}, "
            f"{p['max_results'] + 1:,} -> {p['above']}"
        )
    acc = lim["gunicorn_adapter_accented_names"]
    print(
        f"  the adapter's read of {acc['names']} names like '{acc['example_name']}' on gunicorn: "
        f"IN filters of {acc['filter_chars']} chars -> URLs of "
        f"{[q['url_chars'] for q in acc['requests']]} chars, "
        f"status {[q['status'] for q in acc['requests']]}"
        + (f"; FAILS: {acc['error'][:90]}" if acc["error"] else "")
    )


def report_chunks(r: dict[str, Any]) -> None:
    print("\nThe adapter's read with other settings (patched in this process only):")
    print(
        table(
            [
                "MAX_FILTER_URL_CHARS",
                "MAX_FILTER_CHUNKS",
                "IN chunks",
                "mode",
                "REST calls",
                "URL chars",
                "wall s",
                "error",
            ],
            [
                [
                    c["MAX_FILTER_URL_CHARS"],
                    c["MAX_FILTER_CHUNKS"] if c["MAX_FILTER_CHUNKS"] < 10**6 else "unlimited",
                    c["in_chunks"],
                    c["mode"],
                    c["http_requests"],
                    c["longest_url_chars"],
                    c["wall_s"],
                    c["error"][:60],
                ]
                for c in r["chunked_reads"]
            ],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
