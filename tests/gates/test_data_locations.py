"""The evaluate gate on data where it lives: a local file or directory, file://, and an
S3-compatible bucket (moto in server mode, on loopback, authentication on)."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import run_cli
from tests.gates.harness import HOOK, Trained, plan_with_gates, registered, spec
from tests.integration.mlflow_helpers import client
from tests.s3server import MotoServer
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "holdout"
MARCH = "green_tripdata_2021-03.parquet"
FEBRUARY = "green_tripdata_2021-02.parquet"
PARTITIONED_HOOK = '''
def only_kept(df):
    """Uses the hive partition column `keep`: February's rows sit under keep=0."""
    if "keep" not in df.columns:
        raise KeyError(f"no partition column keep in {sorted(df.columns)}")
    return _prepare(df[df["keep"] == 1].drop(columns=["keep"]))
'''
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken0123456789"


@dataclass(frozen=True)
class World:
    trained: Trained
    moto: MotoServer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from mlflow_gitops.demo.taxi import write_months
    from mlflow_gitops.demo.train import train_and_log

    folder = tmp_path_factory.mktemp("data-locations")
    paths = write_months(folder / "data", rows=3000)
    (folder / "features.py").write_text(HOOK + PARTITIONED_HOOK)
    uri = f"sqlite:///{folder}/mlflow.db"
    runs = train_and_log(paths[0], paths[1], "locations", uri, (folder / "artifacts").as_uri())
    trained = Trained(uri, folder, [r.run_id for r in runs])
    # a partitioned copy: March under keep=1, February under keep=0 (the hook drops it)
    for keep, name in ((1, MARCH), (0, FEBRUARY)):
        part = folder / "parts" / f"keep={keep}"
        part.mkdir(parents=True)
        (part / "part-0.parquet").write_bytes((folder / "data" / name).read_bytes())
    with MotoServer(folder / "moto") as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(folder / "data" / MARCH), BUCKET, f"green/{MARCH}")
        for keep in (1, 0):
            s3.upload_file(
                str(folder / "parts" / f"keep={keep}" / "part-0.parquet"),
                BUCKET,
                f"parts/keep={keep}/part-0.parquet",
            )
        yield World(trained, moto)


@pytest.fixture
def aws(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The reader's standard AWS environment, and nothing else of AWS's."""
    return use_env(monkeypatch, world.moto.env(world.moto.reader))


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    import os

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def gated(world: World, name: str, data: str, prepare: str = "features:prepare") -> str:
    """A registry.yaml promoting v2 (gradient boosting) over v1 (linear) on `data`."""
    registered(world.trained, name, {1: "Production"})
    gate = textwrap.dedent(
        f"""
        - evaluate:
            data: {data}
            prepare: {prepare}
            preprocessor: preprocessor/preprocessor.b
            metrics:
              rmse: {{min_absolute_change: 0}}
              mae: {{threshold: 100}}
        """
    )
    return spec(
        world.trained,
        name,
        f"versions:\n  - {{version: 2, stage: Production}}\ngates:\n  Production:{textwrap.indent(gate, '    ')}",
    )


def numbers(plan: Any) -> dict[str, tuple[float | None, float | None]]:
    [gate] = plan.gates
    assert gate.verdict == "pass", gate
    return {c.name: (c.candidate, c.baseline) for c in gate.checks}


@pytest.fixture(scope="module")
def local_numbers(world: World) -> dict[str, tuple[float | None, float | None]]:
    plan, _ = plan_with_gates(world.trained, gated(world, "local-file", f"data/{MARCH}"))
    return numbers(plan)


def test_the_bucket_gives_the_local_files_numbers(
    world: World, aws: dict[str, str], local_numbers: dict[str, Any]
) -> None:
    plan, evidence = plan_with_gates(
        world.trained, gated(world, "s3-file", f"s3://{BUCKET}/green/{MARCH}")
    )
    assert evidence.loads == 2
    assert numbers(plan) == local_numbers  # identical, not approximately equal
    assert local_numbers["rows"][0] > 0


@pytest.mark.parametrize(
    "data",
    [
        "parts",
        "parts/",
        "FILE_URI",
        f"s3://{BUCKET}/parts/",
        f"s3://{BUCKET}/parts/keep=*/*.parquet",
        f"s3://{BUCKET}/parts/*/part-*.parquet",
    ],
    ids=["local-dir", "local-dir-slash", "file-uri", "s3-dir", "s3-glob", "s3-glob-above-keys"],
)
def test_directories_and_globs_read_hive_partitions(
    world: World,
    aws: dict[str, str],
    local_numbers: dict[str, Any],
    data: str,
    request: pytest.FixtureRequest,
) -> None:
    if data == "FILE_URI":
        data = (world.trained.folder / "parts").as_uri()
    name = f"parts-{request.node.callspec.id}"
    plan, _ = plan_with_gates(world.trained, gated(world, name, data, "features:only_kept"))
    got = numbers(plan)
    assert got["rows"] == local_numbers["rows"]  # February's rows (keep=0) were dropped
    for metric in ("rmse", "mae"):
        assert got[metric] == pytest.approx(local_numbers[metric], rel=1e-12)


def test_a_replaced_object_reruns_the_gate_and_an_unchanged_one_does_not(
    world: World, aws: dict[str, str], tmp_path: Path
) -> None:
    from mlflow_gitops.demo.taxi import write_months

    s3 = world.moto.client("s3")
    key = f"cache/{MARCH}"
    s3.upload_file(str(world.trained.folder / "data" / MARCH), BUCKET, key)
    path = gated(world, "s3-cache", f"s3://{BUCKET}/{key}")

    first, evidence = plan_with_gates(world.trained, path)
    assert evidence.loads == 2
    assert not first.gates[0].cached  # type: ignore[attr-defined]

    second, evidence = plan_with_gates(world.trained, path)
    assert evidence.loads == 0, "an unchanged object must reuse the record"
    assert second.gates[0].cached  # type: ignore[attr-defined]

    [other] = write_months(tmp_path, rows=3000, months=((2021, 3),), seed=7)
    s3.upload_file(str(other), BUCKET, key)  # same key, other content
    third, evidence = plan_with_gates(world.trained, path)
    assert evidence.loads == 2
    assert not third.gates[0].cached  # type: ignore[attr-defined]
    assert numbers(third)["rmse"] != numbers(first)["rmse"]


def test_the_cache_key_reads_no_object_data(world: World, aws: dict[str, str]) -> None:
    """Deciding that a record holds lists and asks for metadata; it never GETs an object."""
    from mlflow_gitops.gates.data import identity, open_source

    source = open_source(f"s3://{BUCKET}/parts/", world.trained.folder)
    before = world.moto.log_path.read_text()
    digest = identity(source)
    requests = world.moto.log_path.read_text()[len(before) :].splitlines()
    assert len(digest) == 64
    assert [r for r in requests if '"HEAD /' in r], requests
    assert not [r for r in requests if '"GET /' in r], requests


@pytest.mark.parametrize(
    ("data", "who", "cause", "hint"),
    [
        (f"s3://{BUCKET}/nope.parquet", "reader", "no such file or object", "check the bucket"),
        ("s3://no-such-bucket/x.parquet", "reader", "no such file or object", "check the bucket"),
        (f"s3://{BUCKET}/green/{MARCH}", "denied", "access denied", "AWS_SECRET_ACCESS_KEY"),
        (f"s3://{BUCKET}/parts/", "wrong-secret", "access denied", "AWS_SECRET_ACCESS_KEY"),
        (f"s3://{BUCKET}/parts/", "session-token", "access denied", "AWS_SESSION_TOKEN"),
        (f"s3://{BUCKET}/parts/", "unreachable", "the store is unreachable", "AWS_ENDPOINT_URL"),
        (
            f"s3://{BUCKET}/parts/x=*/*.parquet",
            "reader",
            "it matches no parquet",
            "check the bucket",
        ),
        ("data/no-such-folder/", "reader", "no such file or object", "relative to registry.yaml"),
        ("ftp://host/x.parquet", "reader", "unsupported scheme ftp://", "s3://"),
    ],
    ids=[
        "missing-object",
        "missing-bucket",
        "denied",
        "wrong-secret",
        "bad-session-token",
        "unreachable",
        "empty-glob",
        "missing-local-dir",
        "unsupported-scheme",
    ],
)
def test_store_failures_are_verdicts_with_cause_and_remedy(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: str,
    who: str,
    cause: str,
    hint: str,
    request: pytest.FixtureRequest,
) -> None:
    env = credentials(world, who)
    use_env(monkeypatch, env)
    name = f"s3-err-{request.node.callspec.id}"
    path = gated(world, name, data)
    plan, evidence = plan_with_gates(world.trained, path)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert f"cannot read the evaluation data {data}: {cause}" in result.message
    assert hint in result.message
    assert name in plan.blocked  # type: ignore[attr-defined]
    assert evidence.loads == 0
    shown = run_cli(capsys, "plan", path, "--tracking-uri", world.trained.uri)
    assert shown.code == 3
    assert cause in shown.out
    assert_no_secret(env, shown.out, shown.err, result.message)


def credentials(world: World, who: str) -> dict[str, str]:
    moto = world.moto
    match who:
        case "reader":
            return moto.env(moto.reader)
        case "denied":
            return moto.env(moto.denied)
        case "wrong-secret":
            return moto.env({**moto.reader, "AWS_SECRET_ACCESS_KEY": "not-the-secret-0123456789"})
        case "session-token":
            return {**moto.env(moto.reader), "AWS_SESSION_TOKEN": SESSION_TOKEN}
        case "unreachable":
            return {**moto.env(moto.reader), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    raise AssertionError(who)


def assert_no_secret(env: dict[str, str], *outputs: str) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if key in env:
            for text in outputs:
                assert env[key] not in text, f"{key} leaked"


def test_credentials_appear_in_no_output_plan_file_or_tag(
    world: World, aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = "s3-secrets"
    path = gated(world, name, f"s3://{BUCKET}/parts/", "features:only_kept")
    uri = world.trained.uri
    saved = world.trained.folder / "s3-secrets-plan.json"
    outputs = []
    for fmt in ("text", "markdown", "json"):
        shown = run_cli(capsys, "plan", path, "--tracking-uri", uri, "--format", fmt)
        assert shown.code == 0, shown.out + shown.err
        outputs += [shown.out, shown.err]
    planned = run_cli(capsys, "plan", path, "--tracking-uri", uri, "--out", str(saved))
    applied = run_cli(capsys, "apply", str(saved), "--tracking-uri", uri)
    assert applied.code == 0, applied.out + applied.err
    assert "PASS" in applied.out
    version = client(uri).get_model_version(name, "2")
    model = client(uri).get_registered_model(name)
    assert "mlflow_gitops.gate.Production" in version.tags
    recorded = [
        planned.out, planned.err, applied.out, applied.err, saved.read_text(),
        json.dumps(version.tags), version.description or "",
        json.dumps(model.tags), model.description or "",
    ]  # fmt: skip
    assert_no_secret(aws, *outputs, *recorded)


def test_a_bucket_object_reads_in_batches(world: World, aws: dict[str, str]) -> None:
    """The object is streamed: more than one batch, never one download into memory."""
    from mlflow_gitops.gates.evidence import stream_frames

    frames = list(stream_frames(f"s3://{BUCKET}/green/{MARCH}", 1000))
    assert len(frames) == 3
    assert [len(f) for f in frames] == [1000, 1000, 1000]
    local = io.BytesIO((world.trained.folder / "data" / MARCH).read_bytes())
    import pandas as pd

    whole = pd.read_parquet(local)
    assert pd.concat(frames, ignore_index=True).equals(whole)
