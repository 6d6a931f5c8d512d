"""MLflow's own `databricks-uc` client against the Unity Catalog fake: the requests it sends are
the ones recorded in client_requests.json (an MLflow or Databricks SDK upgrade that changes them
fails here with a diff), and the fake answers as UC does where users notice it.

What is compared: the client's API requests (method, path, body or query keys), in order. The
Databricks SDK's unauthenticated `GET /.well-known/databricks-config` (its host metadata fetch,
made when a client config is resolved) is not part of that order: where it falls between the API
requests depends on when MLflow resolves credentials, which the tool's own reads change (they
resolve them once per read). It is compared as a count instead: never more than one per API
request, never with a token (the recording keeps the count it was made with, for reference).

To re-record after checking the fake still answers the new requests as UC does:
`MLFLOW_GITOPS_RECORD_UC_CONTRACT=1 pytest tests/uc/test_contract.py -k contract`."""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.uc.fake_uc import MLFLOW_VERSIONS_CHECKED, Request
from tests.uc.harness import UcWorld, apply_env

pytestmark = [pytest.mark.integration]

EXPECTED = Path(__file__).with_name("client_requests.json")
RECORD_VARIABLE = "MLFLOW_GITOPS_RECORD_UC_CONTRACT"
# the Databricks SDK's host metadata fetch: counted, not placed in the order (see above)
CONFIG_FETCH = "/.well-known/databricks-config"
# ids that change from run to run, in paths the client calls
_IDS = [
    (re.compile(r"/logged-models/m-[0-9a-f]+"), "/logged-models/{model_id}"),
]


@dataclass
class Logged:
    run_id: str
    model_uri: str
    model_id: str
    x: Any
    predictions: Any


def _train_and_log(world: UcWorld, experiment: str) -> Logged:
    """A real scikit-learn regressor logged with a signature to a run on the workspace's
    tracking server (through the fake's proxy: databricks://prod)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3.0
    model = LinearRegression().fit(x, y)
    predictions = model.predict(x)
    mlflow.set_tracking_uri(world.uris()[0])
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(x, predictions)
        )
    return Logged(run.info.run_id, info.model_uri, info.model_id, x, predictions)


def _signature(request: Request) -> list[Any]:
    method, path, keys = request.signature()
    for pattern, replacement in _IDS:
        path = pattern.sub(replacement, path)
    return [method, path, keys]


def _versions() -> dict[str, str]:
    return {
        "mlflow": importlib.metadata.version("mlflow"),
        "databricks-sdk": importlib.metadata.version("databricks-sdk"),
    }


@pytest.fixture(scope="module")
def logged(uc: UcWorld) -> Iterator[Logged]:
    """One run with a logged model on the workspace's tracking server, per module (the module's
    URIs are restored by tests/conftest.py)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        apply_env(uc, monkeypatch)
        yield _train_and_log(uc, "/Shared/uc-contract")


def test_contract_requests_of_mlflows_client(uc_env: UcWorld, logged: Logged) -> None:
    """The client's requests for a whole model life in UC, compared with the recording."""
    import mlflow

    mlflow.set_tracking_uri(uc_env.uris()[0])  # the UC store looks the logged model up there
    client = uc_env.client()
    fake = uc_env.workspace()
    name = "contract.ml.regressor"
    mark = fake.mark()

    client.create_registered_model(name, description="contract")
    mv = client.create_model_version(
        name, source=logged.model_uri, model_id=logged.model_id,
        tags={"origin": "contract"}, description="v1",
    )  # fmt: skip
    client.set_registered_model_alias(name, "champion", mv.version)
    client.set_registered_model_tag(name, "team", "forecasting")
    client.set_model_version_tag(name, mv.version, "validated", "true")
    client.update_registered_model(name, description="contract model")
    client.update_model_version(name, mv.version, description="first")
    by_alias = client.get_model_version_by_alias(name, "champion")
    client.get_registered_model(name)
    by_name = client.search_model_versions(f"name='{name}'")
    by_run = client.search_model_versions(f"run_id='{logged.run_id}'")
    client.search_registered_models()
    client.get_model_version_download_uri(name, mv.version)
    client.delete_model_version_tag(name, mv.version, "validated")
    client.delete_registered_model_tag(name, "team")
    client.delete_registered_model_alias(name, "champion")
    client.delete_model_version(name, mv.version)
    client.delete_registered_model(name)

    # what users see
    assert mv.status == "READY"
    assert mv.version == "1"
    assert mv.run_id == logged.run_id
    assert by_alias.version == "1"
    assert by_alias.aliases == ["champion"]
    assert [v.version for v in by_name] == ["1"]
    assert [v.version for v in by_run] == ["1"]

    received = fake.since(mark)
    assert all(r.status < 400 for r in received), [
        (r.method, r.path, r.status) for r in received if r.status >= 400
    ]
    assert {r.user for r in received if r.user} == {uc_env.user("alice")}
    fetches = [r for r in received if r.path == CONFIG_FETCH]
    sent = [_signature(r) for r in received if r.path != CONFIG_FETCH]
    # the SDK's config fetches: at most one per API request, never sent a token
    assert len(fetches) <= len(sent), f"{len(fetches)} config fetches for {len(sent)} requests"
    assert all(r.token is None for r in fetches)
    recording = {"recorded_with": _versions(), "requests": sent, "config_fetches": len(fetches)}
    if os.environ.get(RECORD_VARIABLE) == "1":
        EXPECTED.write_text(json.dumps(recording, indent=1) + "\n")
    expected = json.loads(EXPECTED.read_text())
    if expected["requests"] != sent:
        diff = "\n".join(
            difflib.unified_diff(
                [json.dumps(r) for r in expected["requests"]],
                [json.dumps(r) for r in sent],
                "client_requests.json",
                "this run",
                lineterm="",
            )
        )
        pytest.fail(
            f"MLflow's databricks-uc client sent other requests than recorded in {EXPECTED.name} "
            f"(recorded with {expected['recorded_with']}, running {_versions()}). Check that "
            f"tests/uc/fake_uc.py answers the new ones as Unity Catalog does, then re-record "
            f"with {RECORD_VARIABLE}=1 and add the MLflow version to MLFLOW_VERSIONS_CHECKED "
            f"and docs/compatibility.md.\n{diff}"
        )


def test_the_recording_names_a_checked_mlflow() -> None:
    recorded = json.loads(EXPECTED.read_text())["recorded_with"]["mlflow"]
    assert recorded in MLFLOW_VERSIONS_CHECKED
    assert importlib.metadata.version("mlflow") in MLFLOW_VERSIONS_CHECKED, (
        "this MLflow was never checked against the UC fake: run test_contract.py, re-record, and "
        "add it to MLFLOW_VERSIONS_CHECKED (tests/uc/fake_uc.py) and docs/compatibility.md"
    )


def test_pending_until_finalize_and_load_by_alias(uc_env: UcWorld, logged: Logged) -> None:
    """The version is PENDING_REGISTRATION while the client uploads, READY after finalize, and
    `models:/...@champion` loads a model that predicts as the source (files read from S3 with
    the temporary credentials)."""
    import mlflow

    mlflow.set_tracking_uri(uc_env.uris()[0])
    mlflow.set_registry_uri(uc_env.uris()[1])
    client = uc_env.client()
    fake = uc_env.workspace()
    name = "prod.ml.served"
    client.create_registered_model(name)
    mark = fake.mark()
    mv = client.create_model_version(name, source=logged.model_uri, model_id=logged.model_id)
    created = next(r for r in fake.since(mark) if r.path.endswith("/model-versions/create"))
    assert created.status == 200
    states = [
        (r.path.rsplit("/", 1)[-1], r.body.get("operation")) for r in fake.since(mark, uc_only=True)
    ]
    # credentials were asked for writing, then the version was finalized
    assert ("generate-temporary-credentials", "MODEL_VERSION_OPERATION_READ_WRITE") in states
    assert states[-1][0] == "finalize"
    assert mv.status == "READY"
    stored = uc_env.metastore().model(name).versions[1]
    listed = uc_env.s3.client("s3").list_objects_v2(
        Bucket="uc-fake", Prefix=stored.storage_location.split("uc-fake/", 1)[1]
    )
    assert any(o["Key"].endswith("/MLmodel") for o in listed.get("Contents", []))

    client.set_registered_model_alias(name, "champion", mv.version)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(loaded.predict(logged.x), logged.predictions)


def test_a_second_create_is_refused(uc_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    client = uc_env.client()
    client.create_registered_model("prod.ml.twice")
    with pytest.raises(MlflowException) as e:
        client.create_registered_model("prod.ml.twice")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert uc_env.workspace().since(0)[-1].status == 409


def test_a_two_level_name_is_refused(uc_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as e:
        uc_env.client().create_registered_model("ml.two_levels")
    assert uc_env.workspace().since(0)[-1].status == 400
    assert "specify all three levels" in e.value.message
    # MLflow's client adds its hint for users of the workspace registry, and in re-raising loses
    # the error code (MLflow 3.17.2 passes the code's name where MlflowException wants its
    # number: the exception says INTERNAL_ERROR)
    assert "legacy Workspace Model Registry" in e.value.message
    with pytest.raises(MlflowException) as e:
        uc_env.client().get_registered_model("ml.two_levels")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_stages_are_refused_and_aliases_stay(uc_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    name = uc_env.metastore().seed(
        ["prod.ml.staged"], owner=uc_env.user("alice"), aliases={"champion": 1}
    )[0]
    with pytest.raises(MlflowException) as e:
        uc_env.client().transition_model_version_stage(name, 2, "Production")
    assert "unsupported for models in the Unity Catalog" in e.value.message
    assert uc_env.client().get_model_version(name, 2).current_stage in (None, "", "None")
    assert uc_env.metastore().model(name).aliases == {"champion": 1}


def test_a_non_owners_alias_change_is_refused(uc_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    name = uc_env.metastore().seed(
        ["prod.ml.guarded"], owner=uc_env.user("alice"), aliases={"champion": 1}
    )[0]
    bob = uc_env.client(user="bob")
    for change in (
        lambda: bob.set_registered_model_alias(name, "champion", 2),
        lambda: bob.delete_registered_model_alias(name, "champion"),
        lambda: bob.set_registered_model_tag(name, "team", "bob"),
    ):
        with pytest.raises(MlflowException) as e:
            change()
        assert e.value.error_code == "PERMISSION_DENIED"
        assert f"Registered Model '{name}'" in e.value.message
        assert "MANAGE" in e.value.message
    assert uc_env.workspace().since(0)[-1].status == 403
    assert uc_env.client().get_registered_model(name).aliases == {"champion": "1"}
    assert uc_env.client().get_registered_model(name).tags == {}
    # MANAGE, granted, lets bob change it
    uc_env.metastore().grant(uc_env.user("bob"), "MANAGE", name)
    bob.set_registered_model_alias(name, "champion", 2)
    assert bob.get_model_version_by_alias(name, "champion").version == "2"


def test_version_search_takes_one_condition(uc_env: UcWorld) -> None:
    from mlflow.exceptions import MlflowException

    name = uc_env.metastore().seed(["prod.ml.searched"], owner=uc_env.user("alice"))[0]
    client = uc_env.client()
    assert sorted(v.version for v in client.search_model_versions(f"name='{name}'")) == ["1", "2"]
    for refused in (f"name='{name}' AND run_id='abc'", "name LIKE 'prod.%'", "tags.a = 'b'"):
        with pytest.raises(MlflowException) as e:
            client.search_model_versions(refused)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "exactly one condition" in e.value.message


def test_model_search_takes_no_filter(uc_env: UcWorld) -> None:
    """MLflow's client refuses a filter itself; the fake refuses one sent anyway."""
    import requests
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        uc_env.client().search_registered_models(filter_string="name='prod.ml.x'")
    token = uc_env.tokens[("prod", "alice")]
    answer = requests.get(
        f"{uc_env.workspace().url}/api/2.0/mlflow/unity-catalog/registered-models/search",
        params={"filter": "name='prod.ml.x'"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    unauthenticated = requests.get(
        f"{uc_env.workspace().url}/api/2.0/mlflow/unity-catalog/registered-models/search",
        timeout=30,
    )
    assert unauthenticated.status_code == 401
