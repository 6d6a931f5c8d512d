"""A copy between two basic-auth servers whose users have different passwords: each side's
requests carry that side's credentials only, whatever the process environment holds (a request
with the other side's password, or the environment's, is refused with 401 and fails the copy)."""

from __future__ import annotations

import os
import uuid

import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import DENIED, PermissionDenied
from mlflow_gitops.record import COPIES_EXPERIMENT, COPY_RUN_TAG, COPY_VERSION_TAG
from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry
from tests.auth.harness import AuthServer
from tests.integration.mlflow_helpers import register
from tests.integration.train_regressor import train_and_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_each_side_of_a_copy_gets_its_own_credentials(
    auth_server: AuthServer, closed_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = auth_server, closed_server
    name = f"copy-{uuid.uuid4().hex[:8]}"
    with dev.as_user("admin"):
        run_id, _ = train_and_log(dev.uri, "linear", 0, name)
        version = register(dev.uri, name, run_id)
    # neither server knows these: a request that is not given its side's credentials fails
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nobody")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-a-password")
    source = MlflowRegistry(dev.uri, Credentials("reader", dev.passwords["reader"]))
    dest = MlflowRegistry(prod.uri, Credentials("editor", prod.passwords["editor"]))

    assert source.describe_source(name, version).ok
    number = dest.copy_version(source, name, version, f"{name}-prod").version

    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "nobody"  # restored after each side
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "not-a-password"
    with prod.as_user("editor"):
        copied = prod.client().get_model_version(f"{name}-prod", str(number))
        assert (copied.tags[COPY_VERSION_TAG], copied.tags[COPY_RUN_TAG]) == (str(version), run_id)
        files = {f.path for f in prod.client().list_artifacts(copied.run_id, "model")}
    assert "model/MLmodel" in files

    # the copies experiment is editor's now: manager (no grant on it) is refused before anything
    # is registered, and told which experiment needs which permission
    refused = MlflowRegistry(prod.uri, Credentials("manager", prod.passwords["manager"]))
    with pytest.raises(PermissionDenied) as denied:
        refused.copy_version(source, name, version, f"{name}-manager")
    assert denied.value.message == (
        f"{DENIED}: user 'manager' may not write the run that holds the copy of {name}/{version} "
        f"at {dev.uri} in the experiment {COPIES_EXPERIMENT} at {prod.uri}"
    )
    assert f"grant EDIT on the experiment {COPIES_EXPERIMENT}" in denied.value.hint
    with prod.as_user("admin"):
        assert prod.client().search_registered_models(f"name = '{name}-manager'") == []
