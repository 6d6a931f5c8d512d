"""The evaluate gate on data in Google Cloud Storage and Azure, each reached the way its own
ecosystem does: gcp-storage-emulator through STORAGE_EMULATOR_HOST, Azurite's Blob service
through AZURE_STORAGE_CONNECTION_STRING (a key, a SAS, or the endpoint only with the
AZURE_STORAGE_ACCOUNT_* variables). Same gate, same data, same numbers as the local file."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.azureserver import ACCOUNT, Azurite
from tests.cli_runner import run_cli
from tests.gates.harness import Trained, plan_with_gates, registered, spec
from tests.gcsserver import GcsEmulator
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "holdout"  # a GCS bucket and an Azure container
PRIVATE = "private-holdout"  # a GCS bucket an anonymous caller may not read
MARCH = "green_tripdata_2021-03.parquet"
FEBRUARY = "green_tripdata_2021-02.parquet"
PARTITIONED_HOOK = '''
def only_kept(df):
    """Uses the hive partition column `keep`: February's rows sit under keep=0."""
    if "keep" not in df.columns:
        raise KeyError(f"no partition column keep in {sorted(df.columns)}")
    return _prepare(df[df["keep"] == 1].drop(columns=["keep"]))
'''
ABFS = f"abfs://{BUCKET}@{ACCOUNT}.dfs.core.windows.net"
STORE_VARIABLES = ("STORAGE_EMULATOR_HOST", "GOOGLE_", "AZURE_STORAGE_", "AWS_")


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    with GcsEmulator(tmp_path_factory.mktemp("gcs"), private=(PRIVATE,)) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with Azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def world(trained: Trained, gcs: GcsEmulator, azurite: Azurite) -> Trained:
    """March as one object, and a partitioned copy (March under keep=1, February under keep=0),
    in the GCS bucket and in the Azure container."""
    with (trained.folder / "features.py").open("a") as hook:
        hook.write(PARTITIONED_HOOK)
    data = trained.folder / "data"
    for store in (gcs, azurite):
        store.upload(data / MARCH, f"{BUCKET}/green/{MARCH}")
        store.upload(data / MARCH, f"{BUCKET}/parts/keep=1/part-0.parquet")
        store.upload(data / FEBRUARY, f"{BUCKET}/parts/keep=0/part-0.parquet")
    return trained


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    """Exactly these store variables, none from the machine."""
    for key in [k for k in os.environ if k.startswith(STORE_VARIABLES)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def reach(who: str, gcs: GcsEmulator, azurite: Azurite) -> dict[str, str]:
    """The environment of each way in (and of each wrong one)."""
    endpoint_only = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string("")}
    match who:
        case "gcs":
            return gcs.env()
        case "gcs-unreachable":
            return {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"}
        case "azure-key":
            return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string()}
        case "azure-sas":
            sas = f"SharedAccessSignature={azurite.sas()};"
            return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(sas)}
        case "azure-name-key":
            return {**endpoint_only, "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
                    "AZURE_STORAGE_ACCOUNT_KEY": azurite.key}  # fmt: skip
        case "azure-sas-variable":
            return {**endpoint_only, "AZURE_STORAGE_SAS_TOKEN": azurite.sas()}
        case "azure-wrong-key":
            wrong = azurite.connection_string(f"AccountKey={'A' * 86}==;")
            return {"AZURE_STORAGE_CONNECTION_STRING": wrong}
        case "azure-forged-sas":
            return {**endpoint_only, "AZURE_STORAGE_SAS_TOKEN": azurite.sas(key="B" * 88)}
        case "azure-expired-sas":
            expired = azurite.sas(expiry=timedelta(hours=-1))
            return {**endpoint_only, "AZURE_STORAGE_SAS_TOKEN": expired}
        case "azure-list-only-sas":
            return {**endpoint_only, "AZURE_STORAGE_SAS_TOKEN": azurite.sas("l")}
        case "azure-unreachable":
            elsewhere = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
            return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(None, elsewhere)}
        case "azure-no-account":
            return {}
    raise AssertionError(who)


def gated(trained: Trained, name: str, data: str, prepare: str = "features:prepare") -> str:
    """A registry.yaml promoting v2 (gradient boosting) over v1 (linear) on `data`."""
    registered(trained, name, {1: "Production"})
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
    body = "versions:\n  - {version: 2, stage: Production}\ngates:\n  Production:"
    return spec(trained, name, body + textwrap.indent(gate, "    "))


def numbers(plan: Any) -> dict[str, tuple[float | None, float | None]]:
    [gate] = plan.gates
    assert gate.verdict == "pass", gate
    return {c.name: (c.candidate, c.baseline) for c in gate.checks}


@pytest.fixture(scope="module")
def local_numbers(world: Trained) -> dict[str, tuple[float | None, float | None]]:
    plan, _ = plan_with_gates(world, gated(world, "clouds-local", f"data/{MARCH}"))
    return numbers(plan)


@pytest.mark.parametrize(
    ("who", "data"),
    [
        ("gcs", f"gs://{BUCKET}/green/{MARCH}"),
        ("azure-key", f"az://{BUCKET}/green/{MARCH}"),
        ("azure-key", f"{ABFS}/green/{MARCH}"),
        ("azure-sas", f"az://{BUCKET}/green/{MARCH}"),
        ("azure-name-key", f"{ABFS}/green/{MARCH}"),
        ("azure-sas-variable", f"az://{BUCKET}/green/{MARCH}"),
    ],
    ids=["gs", "az-key", "abfs-key", "az-sas", "abfs-name-key", "az-sas-variable"],
)
def test_each_store_gives_the_local_files_numbers(
    world: Trained,
    gcs: GcsEmulator,
    azurite: Azurite,
    local_numbers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    who: str,
    data: str,
    request: pytest.FixtureRequest,
) -> None:
    env = use_env(monkeypatch, reach(who, gcs, azurite))
    path = gated(world, f"clouds-{request.node.callspec.id}", data)
    plan, evidence = plan_with_gates(world, path)
    assert evidence.loads == 2
    assert numbers(plan) == local_numbers  # identical, not approximately equal
    assert local_numbers["rows"][0] > 0
    shown = run_cli(capsys, "plan", path, "--tracking-uri", world.uri, "--format", "json")
    assert shown.code == 0, shown.out + shown.err
    assert_no_secret(env, azurite, shown.out, shown.err)


@pytest.mark.parametrize(
    ("who", "data"),
    [
        ("gcs", f"gs://{BUCKET}/parts/"),
        ("gcs", f"gs://{BUCKET}/parts/keep=*/*.parquet"),
        ("azure-key", f"az://{BUCKET}/parts/"),
        ("azure-key", f"{ABFS}/parts/*/part-*.parquet"),
    ],
    ids=["gs-dir", "gs-glob", "az-dir", "abfs-glob"],
)
def test_directories_and_globs_read_hive_partitions(
    world: Trained,
    gcs: GcsEmulator,
    azurite: Azurite,
    local_numbers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    who: str,
    data: str,
    request: pytest.FixtureRequest,
) -> None:
    use_env(monkeypatch, reach(who, gcs, azurite))
    name = f"clouds-parts-{request.node.callspec.id}"
    plan, _ = plan_with_gates(world, gated(world, name, data, "features:only_kept"))
    got = numbers(plan)
    assert got["rows"] == local_numbers["rows"]  # February's rows (keep=0) were dropped
    for metric in ("rmse", "mae"):
        assert got[metric] == pytest.approx(local_numbers[metric], rel=1e-12)


def data_reads(store: str, requests: list[str]) -> list[str]:
    """The requests that read an object's bytes: GCS's media downloads (`alt=media`), Azure's
    GETs of a blob (/account/container/blob; listings are GETs of the container)."""
    found = []
    for line in requests:
        method, target = line.split('"')[1].split()[:2]
        path = target.split("?")[0]
        if "alt=media" in target if store == "gcs" else method == "GET" and path.count("/") >= 3:
            found.append(line)
    return found


@pytest.mark.parametrize(
    ("store", "who", "scheme"),
    [("gcs", "gcs", f"gs://{BUCKET}"), ("azure", "azure-key", f"az://{BUCKET}")],
    ids=["gs", "az"],
)
def test_a_replaced_object_reruns_the_gate_and_an_unchanged_one_reads_only_metadata(
    world: Trained,
    gcs: GcsEmulator,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    store: str,
    who: str,
    scheme: str,
) -> None:
    from mlflow_gitops.demo.taxi import write_months

    use_env(monkeypatch, reach(who, gcs, azurite))
    server: GcsEmulator | Azurite = gcs if store == "gcs" else azurite
    key = f"cache/{MARCH}"
    server.upload(world.folder / "data" / MARCH, f"{BUCKET}/{key}")
    path = gated(world, f"clouds-cache-{store}", f"{scheme}/{key}")

    before = server.mark()
    first, evidence = plan_with_gates(world, path)
    assert evidence.loads == 2
    assert not first.gates[0].cached  # type: ignore[attr-defined]
    server.mark()
    assert data_reads(store, server.requests(before))  # the first gate reads the object

    before = server.mark()
    second, evidence = plan_with_gates(world, path)
    server.mark()
    requests = server.requests(before)
    assert evidence.loads == 0, "an unchanged object must reuse the record"
    assert second.gates[0].cached  # type: ignore[attr-defined]
    assert requests, "the object's identity is asked of the store"
    assert data_reads(store, requests) == [], requests  # metadata requests only
    # GCS: the object's metadata (its listing); Azure: the namespace check, the listing, and
    # one HEAD for the ETag
    assert len(requests) == {"gcs": 1, "azure": 3}[store], requests

    [other] = write_months(tmp_path, rows=3000, months=((2021, 3),), seed=7)
    server.upload(other, f"{BUCKET}/{key}")  # same name, other content
    third, evidence = plan_with_gates(world, path)
    assert evidence.loads == 2
    assert not third.gates[0].cached  # type: ignore[attr-defined]
    assert numbers(third)["rmse"] != numbers(first)["rmse"]


@pytest.mark.parametrize(
    ("who", "data", "cause", "hint"),
    [
        ("gcs", f"gs://{BUCKET}/nope.parquet", "no such file or object", "check the bucket"),
        ("gcs", "gs://no-such-bucket/x.parquet", "no such file or object", "check the bucket"),
        ("gcs", f"gs://{PRIVATE}/green/{MARCH}", "access denied", "GOOGLE_APPLICATION_CREDENTIALS"),
        (
            "gcs-unreachable",
            f"gs://{BUCKET}/green/{MARCH}",
            "the store is unreachable",
            "STORAGE_EMULATOR_HOST",
        ),
        ("azure-key", f"az://{BUCKET}/nope.parquet", "no such file or object", "check the bucket"),
        (
            "azure-key",
            f"abfs://nocontainer@{ACCOUNT}.dfs.core.windows.net/x.parquet",
            "no such file or object",
            "check the bucket",
        ),
        (
            "azure-wrong-key",
            f"az://{BUCKET}/green/{MARCH}",
            "access denied",
            "AZURE_STORAGE_CONNECTION_STRING",
        ),
        ("azure-forged-sas", f"{ABFS}/parts/", "access denied", "AZURE_STORAGE_SAS_TOKEN"),
        ("azure-expired-sas", f"az://{BUCKET}/parts/", "access denied", "AZURE_STORAGE_SAS_TOKEN"),
        (
            "azure-list-only-sas",
            f"az://{BUCKET}/green/{MARCH}",
            "access denied",
            "AZURE_STORAGE_SAS_TOKEN",
        ),
        (
            "azure-unreachable",
            f"az://{BUCKET}/green/{MARCH}",
            "the store is unreachable",
            "BlobEndpoint",
        ),
        (
            "azure-no-account",
            f"az://{BUCKET}/green/{MARCH}",
            "it names no storage account",
            "AZURE_STORAGE_CONNECTION_STRING",
        ),
    ],
    ids=[
        "gs-missing-object",
        "gs-missing-bucket",
        "gs-denied",
        "gs-unreachable",
        "az-missing-object",
        "abfs-missing-container",
        "az-wrong-key",
        "abfs-forged-sas",
        "az-expired-sas",
        "az-list-only-sas",
        "az-unreachable",
        "az-no-account",
    ],
)
def test_store_failures_are_verdicts_with_cause_and_remedy(
    world: Trained,
    gcs: GcsEmulator,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    who: str,
    data: str,
    cause: str,
    hint: str,
    request: pytest.FixtureRequest,
) -> None:
    env = use_env(monkeypatch, reach(who, gcs, azurite))
    name = f"clouds-err-{request.node.callspec.id}"
    path = gated(world, name, data)
    plan, evidence = plan_with_gates(world, path)
    [result] = plan.gates  # type: ignore[attr-defined]
    assert result.verdict == "fail"
    assert f"cannot read the evaluation data {data}: {cause}" in result.message
    assert hint in result.message
    assert name in plan.blocked  # type: ignore[attr-defined]
    assert evidence.loads == 0
    shown = run_cli(capsys, "plan", path, "--tracking-uri", world.uri)
    assert shown.code == 3
    assert cause in shown.out
    assert_no_secret(env, azurite, shown.out, shown.err, result.message)


def assert_no_secret(env: dict[str, str], azurite: Azurite, *outputs: str) -> None:
    """Neither the account key nor any SAS signature (the connection string's or the variable's)
    appears."""
    found = re.findall(r"sig=([^&;]+)", " ".join(env.values()))
    for secret in [azurite.key, *found, *(v for k, v in env.items() if "KEY" in k or "SAS" in k)]:
        for text in outputs:
            assert secret not in text, "a credential leaked"
