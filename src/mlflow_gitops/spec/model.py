"""The schema of registry.yaml, version 1, as frozen pydantic models that forbid unknown keys."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from mlflow_gitops.record import MAX_DESCRIPTION
from mlflow_gitops.spec.policies import PolicyRule
from mlflow_gitops.spec.webhooks import WebhookName, WebhookSpec

STAGES = ("None", "Staging", "Production", "Archived")
GUARDED_STAGES = ("Staging", "Production")
StageCount = Annotated[int, Field(ge=0)]
RUN_PREFIX = "run:"
SOURCE_PREFIX = "source:"
COPY_PREFIX = "copy_from:"


def canonical_stage(value: object) -> object:
    """`production`, `PRODUCTION` -> `Production`; anything else passes on to fail the Literal."""
    if isinstance(value, str):
        for stage in STAGES:
            if value.strip().lower() == stage.lower():
                return stage
    if value is None:
        # YAML `stage: None` is the string "None"; a bare `stage:` is null, which means unmanaged
        return value
    return value


StageName = Literal["None", "Staging", "Production", "Archived"]
Stage = Annotated[
    Literal["None", "Staging", "Production", "Archived"], BeforeValidator(canonical_stage)
]


def _tag_value(value: object) -> object:
    """MLflow tags are strings; YAML scalars such as `3` or `true` are written as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


TagValue = Annotated[str | None, BeforeValidator(_tag_value)]
Tags = dict[str, TagValue]


class Strict(BaseModel):
    """Base for every spec node: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --- references ------------------------------------------------------------------------------

_RUN_REF = re.compile(r"^(?P<run_id>[A-Za-z0-9_-]{1,64})(?:/(?P<path>[^\s]+))?$")


def parse_run_ref(ref: str) -> tuple[str, str]:
    """`3f2a9c/model` -> ("3f2a9c", "model"); the artifact path defaults to `model`."""
    match = _RUN_REF.match(ref.strip())
    if match is None:
        raise ValueError(
            f"'{ref}' is not a run reference: use <run_id> or <run_id>/<artifact_path>"
        )
    return match["run_id"], (match["path"] or "model").strip("/")


# --- registries and copies across them ------------------------------------------------------

DEFAULT_REGISTRY = "default"  # the one registry of a file without `registries:`
REGISTRY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RegistryName = Annotated[str, Field(pattern=REGISTRY_NAME_PATTERN)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


AuditExperiment = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="The experiment of the audit record (one run per apply), in the tracking "
        "server; default: mlflow-gitops-audit, or /Shared/mlflow-gitops-audit on Databricks "
        "(which names experiments by workspace path)",
    ),
]


class RegistryConnection(Strict):
    """How to reach one named registry: a literal URI or the variable holding it (its tracking
    URI, and its registry URI when the models live elsewhere), and the variables holding its
    credentials (a registry gets only its own)."""

    tracking_uri: str | None = Field(default=None, min_length=1)
    tracking_uri_env: EnvName | None = None
    registry_uri: str | None = Field(
        default=None,
        min_length=1,
        description="Where the models live, when not in the tracking server (default: the "
        "tracking URI; for databricks[://profile], databricks-uc[://profile], as in MLflow)",
    )
    registry_uri_env: EnvName | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    token_env: EnvName | None = None
    host_env: EnvName | None = Field(
        default=None,
        description="Databricks: the variable holding the workspace URL (with token_env: the "
        "variable holding its token); without it, the profile the URI names",
    )
    audit_experiment: AuditExperiment | None = None

    @model_validator(mode="after")
    def _one_uri(self) -> RegistryConnection:
        if (self.tracking_uri is None) == (self.tracking_uri_env is None):
            raise ValueError(
                "a registry names exactly one of tracking_uri: (a URI) or tracking_uri_env: "
                "(the variable that holds it)"
            )
        if self.registry_uri is not None and self.registry_uri_env is not None:
            raise ValueError(
                "a registry names at most one of registry_uri: (a URI) or registry_uri_env: "
                "(the variable that holds it)"
            )
        if self.host_env is not None and (self.token_env is None or self.username_env):
            raise ValueError(
                "host_env: (a Databricks workspace) goes with token_env: (its token), and "
                "without username_env:"
            )
        return self


_COPY_REF = re.compile(r"^(?:(?P<registry>[^:/\s]+):)?(?P<model>[^:/]+)/(?P<version>[0-9]+)$")
_REGISTRY_NAME = re.compile(REGISTRY_NAME_PATTERN)


class CopyFrom(Strict):
    """`[registry:]model/version`: the version this entry is a copy of. Without a registry, the
    source is in the registry of the file that declares the entry."""

    registry: str | None
    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.registry + ':' if self.registry else ''}{self.model}/{self.version}"

    def in_registry(self, default: str) -> CopyFrom:
        """The same reference with its registry filled in (`default` when it names none)."""
        return self if self.registry else self.model_copy(update={"registry": default})


def parse_copy_ref(value: object) -> object:
    """`dev:nyc-taxi/3` -> CopyFrom(registry='dev', model='nyc-taxi', version=3)."""
    if isinstance(value, CopyFrom):
        return value
    if not isinstance(value, str):
        raise ValueError("copy_from takes text: [registry:]model/version")
    match = _COPY_REF.match(value.strip())
    version = int(match["version"]) if match else 0
    if match is None or not 1 <= version <= 2**31 - 1:
        raise ValueError(
            f"'{value}' is not a copy reference: use [registry:]model/version, "
            "e.g. dev:nyc-taxi-regressor/3"
        )
    if match["registry"] is not None and not _REGISTRY_NAME.match(match["registry"]):
        raise ValueError(f"'{match['registry']}' is not a registry name")
    return CopyFrom(registry=match["registry"], model=match["model"], version=version)


CopyRef = Annotated[
    CopyFrom,
    BeforeValidator(parse_copy_ref),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([A-Za-z0-9][A-Za-z0-9_.-]*:)?[^:/]+/[1-9][0-9]*$",
            "description": "[registry:]model/version: this registry holds a copy of that "
            "version (registry default: the registry of this file)",
        }
    ),
]


# --- gates (parsed and validated here; evaluated by mlflow_gitops.gates) ----------------------


class MetricThreshold(Strict):
    """MLflow's MetricThreshold, with exact boundaries."""

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> MetricThreshold:
        if (
            self.threshold is None
            and self.min_absolute_change is None
            and self.min_relative_change is None
        ):
            raise ValueError(
                "give at least one of threshold, min_absolute_change, min_relative_change"
            )
        return self


class MetricGate(Strict):
    """A metric of the version's source run must be within bounds."""

    metric: str
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> MetricGate:
        if self.max is None and self.min is None:
            raise ValueError(f"metric gate '{self.metric}' needs max: or min:")
        return self


EVALUATION_METRICS = (
    "accuracy",
    "f1",
    "mae",
    "mape",
    "mse",
    "precision",
    "r2",
    "recall",
    "rmse",
    "roc_auc",
)
TABLE_PREFIX = "table:"


class SparkSpec(Strict):
    """Where `engine: spark` runs: a master URL, or a Spark Connect server (`remote`)."""

    master: str | None = Field(default=None, min_length=1)  # local[2], spark://host:7077, yarn
    remote: str | None = Field(default=None, pattern=r"^sc://")  # sc://host:15002
    conf: dict[str, str] = Field(default_factory=dict)  # spark.* settings for the session

    @model_validator(mode="after")
    def _one_place(self) -> SparkSpec:
        if self.master is not None and self.remote is not None:
            raise ValueError("spark: give master: or remote:, not both")
        return self


class EvaluateSpec(Strict):
    """Predict held-out data with the candidate and the baseline and compare metrics."""

    engine: Literal["local", "spark"] = "local"
    spark: SparkSpec | None = None
    data: str
    prepare: str | None = None
    target: str | None = None
    preprocessor: str | None = None
    metrics: dict[str, MetricThreshold] = Field(min_length=1)
    baseline: str | None = None
    on_missing_baseline: Literal["pass", "fail"] = "pass"

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, MetricThreshold]) -> dict[str, MetricThreshold]:
        unknown = sorted(set(value) - set(EVALUATION_METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric '{unknown[0]}': use one of {', '.join(EVALUATION_METRICS)}"
            )
        return value

    @model_validator(mode="after")
    def _engine_settings(self) -> EvaluateSpec:
        if self.engine != "spark" and self.spark is not None:
            raise ValueError("spark: applies to engine: spark only")
        if self.engine != "spark" and self.data.startswith(TABLE_PREFIX):
            raise ValueError("data: table:<name> is read by engine: spark only")
        return self

    @model_validator(mode="after")
    def _prepare_or_target(self) -> EvaluateSpec:
        if self.prepare is None and self.target is None:
            raise ValueError("evaluate needs prepare: (module:function) or target: (a column)")
        if self.prepare is not None and ":" not in self.prepare:
            raise ValueError(f"prepare '{self.prepare}' must be module:function")
        return self


class EvaluateGate(Strict):
    evaluate: EvaluateSpec


class SizeGate(Strict):
    max_size_mb: float = Field(gt=0)


class LatencySpec(Strict):
    batch_rows: int = Field(default=1000, gt=0)
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)


class LatencyGate(Strict):
    latency: LatencySpec


class RequireTagsGate(Strict):
    require_tags: list[str] = Field(min_length=1)


class RequireSignatureGate(Strict):
    require_signature: bool


GATE_KINDS = {
    "metric": MetricGate,
    "evaluate": EvaluateGate,
    "max_size_mb": SizeGate,
    "latency": LatencyGate,
    "require_tags": RequireTagsGate,
    "require_signature": RequireSignatureGate,
}


def _gate_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((key for key in GATE_KINDS if key in value), None)
    return next((k for k, cls in GATE_KINDS.items() if isinstance(value, cls)), None)


Gate = Annotated[
    Annotated[MetricGate, Tag("metric")]
    | Annotated[EvaluateGate, Tag("evaluate")]
    | Annotated[SizeGate, Tag("max_size_mb")]
    | Annotated[LatencyGate, Tag("latency")]
    | Annotated[RequireTagsGate, Tag("require_tags")]
    | Annotated[RequireSignatureGate, Tag("require_signature")],
    Discriminator(
        _gate_kind,
        custom_error_type="gate_kind",
        custom_error_message="a gate is one of: " + ", ".join(GATE_KINDS),
    ),
]


def _gate_list(value: object) -> object:
    """`Production: [gates]` is shorthand for `Production: {checks: [gates]}`."""
    return {"checks": value} if isinstance(value, list) else value


class GateSet(Strict):
    """The gates of one target; on_rollback: skip lets a revert to a former holder through."""

    checks: list[Gate] = Field(default_factory=list)
    on_rollback: Literal["run", "skip"] = "run"


GateSetIn = Annotated[GateSet, BeforeValidator(_gate_list)]


# --- the registry ----------------------------------------------------------------------------


class VersionSpec(Strict):
    """One model version: named by exactly one of version, run or source."""

    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    run: str | None = None
    source: str | None = Field(default=None, min_length=1, max_length=500)
    copy_from: CopyRef | None = None
    stage: Stage | None = None
    tags: Tags | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    deleted: bool = False

    @field_validator("run")
    @classmethod
    def _run_ref(cls, value: str | None) -> str | None:
        if value is not None:
            run_id, path = parse_run_ref(value)
            return f"{run_id}/{path}"
        return value

    @model_validator(mode="after")
    def _exactly_one_ref(self) -> VersionSpec:
        named = [
            k for k in ("version", "run", "source", "copy_from") if getattr(self, k) is not None
        ]
        if len(named) != 1:
            raise ValueError(
                "a version entry names exactly one of version:, run: or source: (or copy_from:)"
                + (f" (found {', '.join(named)})" if named else "")
            )
        return self

    @property
    def key(self) -> str:
        """The entry's identity in the file: `version 2`, `run abc/model`, `source models:/...`,
        `copy_from dev:m/3`."""
        if self.version is not None:
            return f"version {self.version}"
        if self.run is not None:
            return f"run {self.run}"
        if self.copy_from is not None:
            return f"copy_from {self.copy_from}"
        return f"source {self.source}"


AliasTarget = Annotated[int | str | None, Field(union_mode="left_to_right")]


def _one_in_production() -> dict[StageName, StageCount]:
    return {"Production": 1}


_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def _seconds(value: object) -> object:
    """`90`, `30m`, `24h`, `2d` -> seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"'{value}' is not a duration: use seconds or a number with s, m, h, d or w"
            )
        return float(match["n"]) * _UNIT_SECONDS[match["unit"]]
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


class Policy(Strict):
    """Promotion rules; a planned change that breaks one blocks its model (exit 3)."""

    allowed_transitions: dict[Stage, list[Stage]] | None = None  # target -> allowed sources
    min_time_in_staging: Duration | None = None  # before a version may enter Production
    protected_aliases: list[str] | None = None  # move only through gates on alias:<name>


class Defaults(Strict):
    """Settings every model inherits unless it overrides them."""

    archive_previous: bool = True
    unmanaged_versions: Literal["ignore", "archive"] = "ignore"
    max_per_stage: dict[Stage, StageCount] = Field(default_factory=_one_in_production)
    mirror_stages_to_aliases: dict[Stage, str] | None = None  # e.g. {Production: champion}
    policy: Policy | None = None


class ModelSpec(Strict):
    """One registered model: its own description, tags and aliases, its versions and gates."""

    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    tags: Tags | None = None
    aliases: dict[str, AliasTarget] | None = None
    versions: list[VersionSpec] = Field(default_factory=list)
    gates: dict[str, GateSetIn] = Field(default_factory=dict)
    archive_previous: bool | None = None
    unmanaged_versions: Literal["ignore", "archive"] | None = None
    max_per_stage: dict[Stage, StageCount] | None = None
    mirror_stages_to_aliases: dict[Stage, str] | None = None
    policy: Policy | None = None


class RegistrySpec(Strict):
    """One registry file: the root registry.yaml or a file it includes. The root may name
    `registries`, `default_registry` and `include`; an included file may name its `registry`."""

    version: Literal[1]
    tracking_uri: str | None = None
    registry_uri: str | None = Field(
        default=None,
        min_length=1,
        description="Root file without registries: only: where the models live, when not in "
        "the tracking server (default: $MLFLOW_REGISTRY_URI, then the tracking URI; for "
        "databricks[://profile], databricks-uc[://profile], as in MLflow)",
    )
    audit_experiment: AuditExperiment | None = Field(
        default=None,
        description="Root file without registries: only: the experiment of the audit record "
        "(default: mlflow-gitops-audit; /Shared/mlflow-gitops-audit on Databricks)",
    )
    registries: dict[RegistryName, RegistryConnection] | None = Field(
        default=None,
        description="Root file only: named registries (without it, one registry: default)",
    )
    default_registry: RegistryName | None = Field(
        default=None,
        description="Root file only: the registry of the root's models and of included files "
        "without registry: (required when registries: lists more than one)",
    )
    include: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        description="Root file only: glob patterns, relative to the root file, of the files "
        "that declare more models (one level: an included file includes nothing)",
    )
    registry: RegistryName | None = Field(
        default=None,
        description="Included file only: the registry of every model in this file "
        "(default: default_registry)",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    webhooks: dict[WebhookName, WebhookSpec | None] | None = Field(
        default=None,
        description="MLflow 3.3+ webhooks of this file's registry, by name (null: delete it); "
        "declared webhooks are managed, others are left alone",
    )
    policies: list[PolicyRule] | None = Field(
        default=None,
        description="Root file only: rules in CEL over each planned change; unmet at plan time "
        "is shown in the pull request, unmet at apply time blocks the model like a gate",
    )


class Settings(Strict):
    """A model's effective settings: its own overrides over the defaults."""

    archive_previous: bool
    unmanaged_versions: Literal["ignore", "archive"]
    max_per_stage: dict[str, int]
    mirror_stages_to_aliases: dict[str, str]
    policy: Policy


def settings_for(spec: RegistrySpec, model: ModelSpec) -> Settings:
    """Resolve a model's overrides against the file's defaults."""
    d = spec.defaults
    return Settings(
        archive_previous=d.archive_previous
        if model.archive_previous is None
        else model.archive_previous,
        unmanaged_versions=model.unmanaged_versions or d.unmanaged_versions,
        max_per_stage={
            str(k): v for k, v in {**d.max_per_stage, **(model.max_per_stage or {})}.items()
        },
        mirror_stages_to_aliases={
            str(k): v
            for k, v in (
                model.mirror_stages_to_aliases
                if model.mirror_stages_to_aliases is not None
                else d.mirror_stages_to_aliases or {}
            ).items()
        },
        policy=_merge_policy(d.policy, model.policy),
    )


def merge_defaults(base: Defaults, own: Defaults) -> Defaults:
    """An included file's `defaults:` over the root's, the way a model's own settings combine
    with the defaults: each key the file sets wins, except `max_per_stage`, merged stage by stage,
    and `policy`, merged key by key; a key the file leaves out (or sets to null) is the root's."""
    update: dict[str, Any] = {}
    for key in own.model_fields_set:
        value = getattr(own, key)
        if value is None:
            continue
        if key == "max_per_stage":
            value = {**base.max_per_stage, **value}
        elif key == "policy":
            value = _merge_policy(base.policy, value)
        update[key] = value
    return base.model_copy(update=update)


def _merge_policy(default: Policy | None, own: Policy | None) -> Policy:
    """Field by field: a model's policy keys override the defaults' keys."""
    merged = (default or Policy()).model_dump(exclude_none=True)
    merged.update((own or Policy()).model_dump(exclude_none=True))
    return Policy.model_validate(merged)
