"""Unity Catalog's rules for the files of a registry whose models live there (registry URI
`databricks-uc[://profile]`, MLflow's default for a `databricks` tracking URI): three-level model
names, and no stages. Pure and offline: `validate` runs them for a registry whose URIs the file
gives, `plan` again once a registry's URI is resolved from the environment."""

from __future__ import annotations

from collections.abc import Sequence

from mlflow_gitops.errors import SpecIssue
from mlflow_gitops.settings import default_registry_uri, is_unity_catalog
from mlflow_gitops.spec.located import LoadedSpec, Loc, format_loc, locate
from mlflow_gitops.spec.model import STAGES, RegistryConnection, RegistrySpec

# settings that act on stages only: Unity Catalog has none
STAGE_SETTINGS = ("archive_previous", "max_per_stage", "mirror_stages_to_aliases")
NO_STAGES = (
    "Unity Catalog has no stages: manage versions with aliases (aliases: {champion: 3}) and "
    "gate alias:<name> targets; `mlflow-gitops import` of a Unity Catalog registry writes aliases"
)
NAME_HINT = (
    "name the model catalog.schema.model (e.g. prod.ml.nyc_taxi_regressor): Unity Catalog "
    "registers models in a schema of a catalog"
)


def literal_registry_uri(spec: RegistrySpec, connection: RegistryConnection | None) -> str | None:
    """A registry's URI as the root file gives it (None: it comes from a variable, known only
    when planning). Without registries:, the file's own registry_uri or the default for its
    tracking_uri (MLFLOW_REGISTRY_URI and MLFLOW_TRACKING_URI are planning's)."""
    if connection is None:
        if spec.registry_uri is not None:
            return spec.registry_uri
        return default_registry_uri(spec.tracking_uri) if spec.tracking_uri else None
    if connection.registry_uri is not None:
        return connection.registry_uri
    if connection.registry_uri_env is not None or connection.tracking_uri is None:
        return None
    return default_registry_uri(connection.tracking_uri)


def uc_name_problem(name: str) -> str | None:
    """Why a name is not a Unity Catalog model's `catalog.schema.model` (None: it is)."""
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        return f"'{name}' is not a Unity Catalog model name (catalog.schema.model)"
    if any(c.isspace() or c == "/" or not c.isprintable() for c in name):
        return f"'{name}': Unity Catalog names hold no spaces, slashes or control characters"
    return None


def unity_catalog_issues(
    files: Sequence[LoadedSpec], root: LoadedSpec, registry: str
) -> list[SpecIssue]:
    """Every Unity Catalog rule the files of `registry` (a UC registry) break, located. Of the
    root's defaults, which every included file inherits, mirror_stages_to_aliases counts even
    when the root's models live elsewhere: in a file without stages it would delete the alias.
    The root's archive_previous and max_per_stage act on stages only, so a UC file inherits
    them harmlessly (a tree of several registries keeps its defaults)."""
    issues: list[SpecIssue] = []
    where = f"registry '{registry}' keeps its models in Unity Catalog"

    def add(loaded: LoadedSpec, loc: Loc, message: str, hint: str) -> None:
        _, pos = locate(loc, loaded.positions)
        issues.append(SpecIssue(loaded.name, pos.line, pos.column, format_loc(loc), message, hint))

    inherited = False
    for loaded in files:
        spec = loaded.spec
        for key in STAGE_SETTINGS:
            if key not in spec.defaults.model_fields_set:
                continue
            if ("defaults", key) in loaded.positions:
                add(loaded, ("defaults", key), f"defaults.{key}: {where}", NO_STAGES)
            elif (
                key == "mirror_stages_to_aliases"
                and loaded is not root
                and not inherited
                and ("defaults", key) in root.positions
            ):
                inherited = True  # once: the root's line is the one to change
                add(
                    root,
                    ("defaults", key),
                    f"defaults.{key} is inherited by {loaded.name}, whose {where}",
                    NO_STAGES + "; set it in the files of the registries that have stages (it "
                    "would delete the alias in a file without stages)",
                )
        for name, model in spec.models.items():
            base: Loc = ("models", name)
            problem = uc_name_problem(name)
            if problem:
                add(loaded, base, f"{problem}: {where}", NAME_HINT)
            for key in STAGE_SETTINGS:
                if getattr(model, key) is not None:
                    add(loaded, (*base, key), f"{key}: {where}", NO_STAGES)
            for i, entry in enumerate(model.versions):
                if entry.stage is not None:
                    loc = (*base, "versions", i, "stage")
                    add(loaded, loc, f"stage: {entry.stage}: {where}", NO_STAGES)
            for target in model.gates:
                if target.strip().lower() in {s.lower() for s in STAGES}:
                    loc = (*base, "gates", target)
                    add(loaded, loc, f"gates on the stage {target}: {where}", NO_STAGES)
    return sorted(issues, key=lambda i: (i.file != root.name, i.file, i.line, i.column))


def is_uc(uri: str | None) -> bool:
    """Whether a registry URI known offline is Unity Catalog's."""
    return uri is not None and is_unity_catalog(uri)
