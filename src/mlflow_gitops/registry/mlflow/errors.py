"""MLflow's failures as the errors a user reads: the one mapping every call to MLflow goes
through (the adapter's registry calls and the gate evidence alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlflow_gitops.errors import DENIED, PermissionDenied, RegistryError
from mlflow_gitops.permissions import OPERATIONS, WHAT_NEEDS
from mlflow_gitops.secrets import redact

UC_SCHEME = "databricks-uc"
Kind = Literal["schema", "unauthenticated", "denied", "unreachable", "other"]

# MLflow 2.x's SearchUtils answer to `name IN (...)`, in search_registered_models and
# search_model_versions alike (2.9 to 2.22)
_NAME_IN_REFUSAL = "Only the 'run_id' attribute supports comparison with a list of quoted string"


def kind(exc: BaseException) -> Kind:
    """What went wrong, as far as the user can act on it."""
    if "out-of-date database schema" in str(exc):
        return "schema"
    if unauthenticated(exc):
        return "unauthenticated"
    if denied(exc):
        return "denied"
    if type(exc).__name__ in ("ConnectionError", "MaxRetryError", "NewConnectionError", "Timeout"):
        return "unreachable"
    if "Max retries exceeded" in str(exc) or "Connection refused" in str(exc):
        return "unreachable"
    return "other"


def translate(
    exc: BaseException,
    doing: str,
    uri: str,
    *,
    operation: str | None = None,
    model: str | None = None,
    version: int | None = None,
    who: str,
    hint: str,
) -> RegistryError:
    """`doing` completes "cannot <doing> <uri>"; `who`: the user the refused request acted as;
    `hint`: which credentials to check after a 401. A 403 from a Unity Catalog URI names UC's
    privilege, any other MLflow's permission."""
    text = redact(first_line(exc))
    where = redact(uri)
    match kind(exc):
        case "schema":
            return RegistryError(
                f"the registry database at {where} was created by an older MLflow",
                f"back it up, then run `mlflow db upgrade {where}`",
            )
        case "unauthenticated":
            return RegistryError(
                f"cannot {doing} {where}: the registry refused the credentials "
                "(401 Unauthenticated)",
                hint,
            )
        case "denied":
            if unity_catalog_uri(uri):
                return uc_permission_denied(doing, where, operation, model, version, who)
            return permission_denied(doing, where, operation, model, version, who)
        case "unreachable":
            return RegistryError(
                f"cannot {doing} {where}: the registry is unreachable ({text[:200]})",
                "check the tracking URI and that the server is up; nothing was changed by this "
                "step",
            )
        case "other":
            return RegistryError(f"cannot {doing} {where}: {text[:500]}", "")


def permission_denied(
    doing: str,
    where: str,
    operation: str | None,
    model: str | None,
    version: int | None,
    who: str,
) -> PermissionDenied:
    """A 403: the operation, the model, and the MLflow permission it needs."""
    need = OPERATIONS.get(operation or "")
    if model is None:
        return PermissionDenied(
            f"{DENIED}: {who} may not {doing} {where}",
            "ask an MLflow admin for the permission, or run as a user who has it",
        )
    target = f"registered model '{model}'" + (f" (version {version})" if version else "")
    needs = f" needs {need}" if need else " is not allowed"
    return PermissionDenied(
        f"{DENIED}: {operation or doing}{needs} on {target}, which {who} lacks at {where}",
        f"ask an MLflow admin to grant {need or 'it'} on '{model}', or apply as a user who "
        f"holds it ({WHAT_NEEDS}); applying again as the same user will not help",
    )


@dataclass(frozen=True)
class UcPrivilege:
    """What UC wants for an operation, as a sentence and as the object of a SQL GRANT (SQL
    names a registered model as a FUNCTION)."""

    text: str
    grant: str  # formatted with the model's and the schema's full names


# What each operation needs in Unity Catalog, from Databricks' documentation:
# - "Manage model lifecycle in Unity Catalog" (https://docs.databricks.com/mlflow/models-in-uc.html):
#   creating a model needs CREATE MODEL on the schema, with USE CATALOG and USE SCHEMA;
# - the model-versions and registered-models API and CLI reference
#   (https://docs.databricks.com/aws/dev-tools/cli/reference/model-versions-commands): reading
#   needs ownership of the model or EXECUTE on it; deleting a version, setting and deleting an
#   alias need ownership; each also USE CATALOG on the catalog and USE SCHEMA on the schema;
# - "Manage Unity Catalog object ownership"
#   (https://docs.gcp.databricks.com/en/data-governance/unity-catalog/manage-privileges/ownership.html):
#   MANAGE is a privilege similar to ownership;
# - "Unity Catalog privileges and securable objects"
#   (https://learn.microsoft.com/azure/databricks/data-governance/unity-catalog/manage-privileges/privileges):
#   APPLY TAG lets a principal add and edit tags on an object; grants on models use FUNCTION.
OWNER = UcPrivilege(
    "ownership of the model or the MANAGE privilege on it", "MANAGE ON FUNCTION {model}"
)
APPLY_TAG = UcPrivilege("the APPLY TAG privilege on the model", "APPLY TAG ON FUNCTION {model}")
UC_PRIVILEGES: dict[str, UcPrivilege] = {
    "read": UcPrivilege(
        "the EXECUTE privilege on the model (or its ownership)", "EXECUTE ON FUNCTION {model}"
    ),
    "create model": UcPrivilege(
        "the CREATE MODEL privilege on the schema", "CREATE MODEL ON SCHEMA {schema}"
    ),
    "register version": OWNER,
    "set description": OWNER,
    "set tag": APPLY_TAG,
    "delete model tag": APPLY_TAG,
    "delete version tag": APPLY_TAG,
    "set alias": OWNER,
    "delete alias": OWNER,
    "delete version": OWNER,
    "delete model": OWNER,
}


def uc_permission_denied(
    doing: str,
    where: str,
    operation: str | None,
    model: str | None,
    version: int | None,
    who: str,
) -> PermissionDenied:
    """A 403 from Unity Catalog: the operation, the model, and the UC privilege it needs, with
    USE CATALOG and USE SCHEMA named too (UC refuses without them whatever the model grants)."""
    privilege = UC_PRIVILEGES.get(operation or "")
    if model is None:
        return PermissionDenied(
            f"{DENIED}: {who} may not {doing} {where} (Unity Catalog)",
            "ask the catalog's owner or a metastore admin for the privilege (USE CATALOG and "
            "USE SCHEMA on the models' catalog and schema at least), or run as a principal who "
            "has it",
        )
    catalog, _, rest = model.partition(".")
    schema = f"{catalog}.{rest.partition('.')[0]}" if rest else catalog
    target = f"Unity Catalog model '{model}'" + (f" (version {version})" if version else "")
    need = privilege.text if privilege else None
    needs = f"needs {need}" if need else "is not allowed"
    example = (
        f" (`GRANT {privilege.grant.format(model=model, schema=schema)} TO <principal>`)"
        if privilege
        else ""
    )
    return PermissionDenied(
        f"{DENIED}: {operation or doing} on {target} {needs}, which {who} lacks at {where}",
        f"ask the model's owner or a metastore admin to grant {need or 'it'}{example}, with USE "
        f"CATALOG on '{catalog}' and USE SCHEMA on '{schema}'; or apply as a principal who holds "
        "them. Applying again as the same principal will not help",
    )


def unity_catalog_uri(uri: str) -> bool:
    """Whether a registry URI is Databricks Unity Catalog's (`databricks-uc`,
    `databricks-uc://<profile>`)."""
    return uri.split(":", 1)[0] == UC_SCHEME


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def denied(exc: BaseException) -> bool:
    """A 403 from the server (basic-auth's "Permission denied")."""
    return getattr(exc, "error_code", "") == "PERMISSION_DENIED" or ("error code 403" in str(exc))


def unauthenticated(exc: BaseException) -> bool:
    """A 401: no credentials, or wrong ones."""
    return getattr(exc, "error_code", "") == "UNAUTHENTICATED" or "error code 401" in str(exc)


def not_found(exc: Any) -> bool:
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
        "not found" in str(exc).lower()
    )


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def refuses_name_in(exc: BaseException) -> bool:
    """True for exactly MLflow 2.x's refusal of `name IN (...)`, and no other error."""
    return error_code(exc) == "INVALID_PARAMETER_VALUE" and (
        _NAME_IN_REFUSAL in str(getattr(exc, "message", exc))
    )


def no_webhook_api(exc: BaseException) -> bool:
    """A server without MLflow 3.3's webhook API: one that does not know the route (404,
    ENDPOINT_NOT_FOUND), or a store without webhooks (MLflow's file store raises
    NotImplementedError)."""
    return (
        error_code(exc) == "ENDPOINT_NOT_FOUND"
        or "error code 404" in str(exc)
        or isinstance(exc, NotImplementedError)
    )
