"""The demo, end to end: data, three trained regressors, then validate, plan, apply, plan.

    python -m mlflow_gitops.demo [--data DIR] [--rows N] [--reset] [--s3] [--file registry.yaml]
    python -m mlflow_gitops.demo --promote [--data DIR] [--rows N] [--reset]

Either prints the story it tells: MLflow's own log lines (database creation, pickle cautions,
registration notes) show only with --verbose or MLFLOW_GITOPS_DEBUG=1, or when the demo fails.

--promote runs the second demo instead: a promotion from a dev registry to a prod registry (two
SQLite files) through a tree whose prod file copies dev's version (demo/promote.py).

It uses the embedded default registry, sqlite:///mlflow.db next to the registry file. With --s3
the pull request's gate reads the March data from a bucket: an S3-compatible server (moto, from
the dev extra) started on loopback for the demo, the data uploaded as a hive-partitioned dataset,
and the standard AWS variables set for the tool.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MODEL = "nyc-taxi-regressor"
MONTHS = (
    "green_tripdata_2021-01.parquet",
    "green_tripdata_2021-02.parquet",
    "green_tripdata_2021-03.parquet",
)
LOCAL_MARCH = "demo-data/green_tripdata_2021-03.parquet"
BUCKET_MARCH = "s3://demo-holdout/green/year=2021/month=3/"


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """What this process writes to stderr (MLflow's INFO and WARNING lines, its registration
    notes, library warnings) held back while the demo runs, and shown only if it fails: the
    output is the demo's story. The commands it runs write their own stderr, untouched."""
    if verbose:
        yield
        return
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):  # MLflow's log stream writes to sys.stderr
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise


def _run(*args: str, cwd: Path) -> int:
    print(f"$ mlflow-gitops {' '.join(args)}", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "mlflow_gitops", *args], cwd=cwd, check=False
    ).returncode


def _data(folder: Path, real: Path | None, rows: int) -> Path:
    """demo-data/ next to the registry file: generated months, or links to the real TLC files
    (registry.yaml's evaluate gate reads demo-data/green_tripdata_2021-03.parquet)."""
    out = folder / "demo-data"
    out.mkdir(exist_ok=True)
    if real is not None:
        missing = [m for m in MONTHS if not (real / m).exists()]
        if missing:
            sys.exit(f"error: {real} lacks {', '.join(missing)} (the TLC green taxi 2021 files)")
        for m in MONTHS:
            (out / m).unlink(missing_ok=True)
            (out / m).symlink_to((real / m).resolve())
        return out
    from mlflow_gitops.demo.taxi import write_months

    if any((out / m).is_symlink() for m in MONTHS) or not all((out / m).exists() for m in MONTHS):
        for m in MONTHS:
            (out / m).unlink(missing_ok=True)
        write_months(out, rows=rows)
    return out


def main() -> int:
    """Run the demo; returns the exit code of the last step that failed, or 0."""
    parser = argparse.ArgumentParser(prog="python -m mlflow_gitops.demo", description=__doc__)
    parser.add_argument("--file", type=Path, default=Path("registry.yaml"))
    parser.add_argument("--data", type=Path, help="folder with the real TLC parquet files")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per generated month")
    parser.add_argument("--reset", action="store_true", help="delete the demo registry first")
    parser.add_argument(
        "--s3", action="store_true", help="gate the pull request on March data in an S3 bucket"
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="the second demo: promote a version from a dev registry to a prod registry",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show MLflow's own log lines between the steps (as MLFLOW_GITOPS_DEBUG=1 does)",
    )
    args = parser.parse_args()
    with _quiet(args.verbose or bool(os.environ.get("MLFLOW_GITOPS_DEBUG"))):
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    folder = args.file.resolve().parent
    if args.promote:
        from mlflow_gitops.demo import promote

        _say("1. Data: NYC green taxi trips, January to March 2021")
        data = _data(folder, args.data, args.rows)
        return promote.run(folder, data, MONTHS, args.reset, _say)
    db, artifacts = folder / "mlflow.db", folder / "mlartifacts"
    uri = f"sqlite:///{db}"
    if args.reset:
        db.unlink(missing_ok=True)
        shutil.rmtree(artifacts, ignore_errors=True)

    _say("1. Data: NYC green taxi trips, January to March 2021")
    data = _data(folder, args.data, args.rows)
    print(
        f"data in {data}"
        + (" (generated, TLC-shaped)" if args.data is None else " (real TLC files)")
    )

    from mlflow_gitops.demo.train import train_or_reuse

    months = (data / MONTHS[0], data / MONTHS[1])
    train_or_reuse(MODEL, uri, months, artifacts, _say, "2", "the registry")

    file = str(args.file)
    _say("3. validate: the file alone, offline")
    if _run("validate", file, cwd=Path.cwd()) != 0:
        return 1
    _say("4. plan: what apply would change in the registry")
    _run("plan", file, cwd=Path.cwd())
    _say("5. apply: make it so, annotating every change")
    code = _run("apply", file, cwd=Path.cwd())
    _say("6. plan again: nothing left to do")
    _run("plan", file, "--detailed-exitcode", cwd=Path.cwd())
    _say("7. The annotated versions in the registry")
    _show(uri)

    _say("8. A pull request proposes the random forest (v3) for Production: the gates decide")
    proposed = _propose_random_forest(args.file, args.s3)
    print(f"(the proposed file is {proposed.name}: v3 -> Production, v2 -> Staging, champion -> 3)")
    with _bucket(data / MONTHS[2]) if args.s3 else contextlib.nullcontext():
        _run("plan", str(proposed), "--format", "markdown", cwd=Path.cwd())
        verdict = _run("apply", str(proposed), cwd=Path.cwd())
    if verdict == 3:
        print("\nBlocked by a gate: the evidence above says why; Production still serves v2.")
    elif verdict == 0:
        print("\nThe random forest earned Production: the gates passed on March data.")
    print(f"\nBrowse it: mlflow ui --backend-store-uri {uri}")
    return code if code else (0 if verdict in (0, 3) else verdict)


def _propose_random_forest(file: Path, s3: bool = False) -> Path:
    """registry.yaml as a reviewer would see it in the PR: the random forest promoted (and with
    --s3 the evaluate gate reading the bucket)."""
    text = file.read_text(encoding="utf-8")
    moves = [(f"data: {LOCAL_MARCH}", f"data: {BUCKET_MARCH}")] if s3 else []
    for old, new in (
        *moves,
        ("champion: 2 ", "champion: 3 "),
        ("challenger: 3", "challenger: 2"),
        (
            "      - version: 2\n        stage: Production",
            "      - version: 2\n        stage: Staging",
        ),
        (
            "      - version: 3\n        stage: Staging",
            "      - version: 3\n        stage: Production",
        ),
    ):
        if old not in text:
            sys.exit(
                f"error: {file} does not look like the demo's registry.yaml (no {old.strip()!r})"
            )
        text = text.replace(old, new, 1)
    out = file.resolve().parent / "registry.proposed.yaml"
    out.write_text(text, encoding="utf-8")
    return out


@contextlib.contextmanager
def _bucket(march: Path) -> Iterator[None]:
    """An S3-compatible server (moto) on a free loopback port holding the March data as
    s3://demo-holdout/green/year=2021/month=3/part-0.parquet, and the standard AWS variables
    pointing at it (throwaway credentials), for as long as the block runs."""
    import pyarrow.fs as pafs

    try:
        import moto.server  # noqa: F401
    except ImportError:
        sys.exit("error: --s3 needs moto: pip install 'moto[server]' (bash examples/demo.sh does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "demo-access-key",
        "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=env["AWS_ENDPOINT_URL"],
            region="us-east-1",
            allow_bucket_creation=True,
        )
        for _ in range(100):
            try:
                fs.create_dir("demo-holdout")
                break
            except OSError:
                time.sleep(0.2)  # the server is still starting
        target = BUCKET_MARCH.removeprefix("s3://") + "part-0.parquet"
        pafs.copy_files(str(march.resolve()), target, destination_filesystem=fs)
        print(f"S3-compatible server on {env['AWS_ENDPOINT_URL']}: {BUCKET_MARCH}part-0.parquet")
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.terminate()
        server.wait(timeout=20)


def _show(uri: str) -> None:
    from mlflow_gitops.record import TOOL_TAG_PREFIX
    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    model = MlflowRegistry(uri).read([MODEL]).models[MODEL]
    print(f"{MODEL}: aliases {dict(model.aliases)}")
    for v in model.versions:
        tool = {
            k.removeprefix(TOOL_TAG_PREFIX): val
            for k, val in v.tags.items()
            if k.startswith(TOOL_TAG_PREFIX)
        }
        print(f"\n  version {v.version} [{v.stage}] tags: {dict(v.user_tags)}")
        print(f"    annotations: {tool}")
        for line in v.description.splitlines():
            print(f"    | {line}")


if __name__ == "__main__":
    sys.exit(main())
