"""registry/mlflow/errors.py on Unity Catalog: a 403 names the operation, the model and the UC
privilege it needs (with USE CATALOG and USE SCHEMA); other registries keep MLflow's levels."""

from __future__ import annotations

import pytest

from mlflow_gitops.errors import PermissionDenied
from mlflow_gitops.registry.mlflow.errors import translate, unity_catalog_uri


class Refused(Exception):
    """MLflow's RestException as a 403 from Databricks carries it (error_code)."""

    error_code = "PERMISSION_DENIED"


def refuse(operation: str, uri: str = "databricks-uc://prod", version: int | None = None) -> str:
    error = translate(
        Refused("User does not have permission"),
        f"{operation} at",
        uri,
        operation=operation,
        model="prod.ml.taxi",
        version=version,
        who="the principal of profile prod",
        hint="",
    )
    assert isinstance(error, PermissionDenied)
    return f"{error.message}\n{error.hint}"


@pytest.mark.parametrize(
    ("operation", "privilege", "grant"),
    [
        ("set alias", "ownership of the model or the MANAGE privilege on it", "MANAGE ON FUNCTION"),
        ("delete alias", "ownership of the model or the MANAGE privilege", "MANAGE ON FUNCTION"),
        ("set description", "ownership of the model or the MANAGE privilege", "MANAGE ON"),
        ("register version", "ownership of the model or the MANAGE privilege", "MANAGE ON"),
        ("delete version", "ownership of the model or the MANAGE privilege", "MANAGE ON"),
        ("set tag", "the APPLY TAG privilege on the model", "APPLY TAG ON FUNCTION"),
        ("delete model tag", "the APPLY TAG privilege on the model", "APPLY TAG ON FUNCTION"),
        ("delete version tag", "the APPLY TAG privilege on the model", "APPLY TAG ON FUNCTION"),
        ("read", "the EXECUTE privilege on the model", "EXECUTE ON FUNCTION"),
    ],
)
def test_a_uc_403_names_the_privilege(operation: str, privilege: str, grant: str) -> None:
    text = refuse(operation)
    assert text.startswith(
        f"403 Permission denied: {operation} on Unity Catalog model 'prod.ml.taxi'"
    )
    assert privilege in text
    assert f"GRANT {grant}" in text
    assert "prod.ml.taxi" in text.split("GRANT")[1]
    assert "USE CATALOG on 'prod'" in text
    assert "USE SCHEMA on 'prod.ml'" in text
    assert "the principal of profile prod" in text
    assert "databricks-uc://prod" in text


def test_creating_a_model_needs_create_model_on_the_schema() -> None:
    text = refuse("create model")
    assert "CREATE MODEL privilege on the schema" in text
    assert "GRANT CREATE MODEL ON SCHEMA prod.ml TO <principal>" in text


def test_a_version_is_named() -> None:
    assert "model 'prod.ml.taxi' (version 3)" in refuse("set tag", version=3)


def test_other_registries_keep_mlflow_permissions() -> None:
    text = refuse("set alias", uri="http://mlflow.example:5000")
    assert "needs EDIT on registered model 'prod.ml.taxi'" in text
    assert "Unity Catalog" not in text
    assert "USE CATALOG" not in text


@pytest.mark.parametrize(
    ("uri", "uc"),
    [
        ("databricks-uc", True),
        ("databricks-uc://prod", True),
        ("databricks://prod", False),
        ("databricks", False),
        ("uc:http://localhost:8080", False),
        ("http://127.0.0.1:5000", False),
    ],
)
def test_unity_catalog_uri(uri: str, uc: bool) -> None:
    assert unity_catalog_uri(uri) is uc
