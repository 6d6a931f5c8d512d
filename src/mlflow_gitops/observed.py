"""The live registry as frozen values, read once up front; MLflow's classes never get past the adapter."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlflow_gitops.record import TOOL_TAG_PREFIX, split_history


@dataclass(frozen=True)
class VersionState:
    """One model version as the registry holds it."""

    version: int
    stage: str = "None"
    source: str = ""
    run_id: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str = "READY"
    created_at: int = 0
    updated_at: int = 0

    @property
    def user_description(self) -> str:
        """The description without the history block the tool appends."""
        return split_history(self.description)[0]

    @property
    def user_tags(self) -> dict[str, str]:
        """Tags without the tool's own annotations."""
        return {k: v for k, v in self.tags.items() if not k.startswith(TOOL_TAG_PREFIX)}


@dataclass(frozen=True)
class ModelState:
    """One registered model with all of its versions."""

    name: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, int] = field(default_factory=dict)
    versions: tuple[VersionState, ...] = ()
    created_at: int = 0

    def version(self, number: int) -> VersionState | None:
        """The version with that number, if it exists."""
        return next((v for v in self.versions if v.version == number), None)

    @property
    def user_tags(self) -> dict[str, str]:
        """Tags without the tool's own annotations."""
        return {k: v for k, v in self.tags.items() if not k.startswith(TOOL_TAG_PREFIX)}

    def digest(self) -> str:
        """A fingerprint of what the planner compares; changes when anyone changes the model."""
        data = {
            "description": split_history(self.description)[0],
            "tags": sorted(self.user_tags.items()),
            "aliases": sorted(self.aliases.items()),
            "versions": [
                [v.version, v.stage, v.source, v.user_description, sorted(v.user_tags.items())]
                for v in sorted(self.versions, key=lambda v: v.version)
            ],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


ABSENT_DIGEST = "absent"


@dataclass(frozen=True)
class WebhookState:
    """One MLflow webhook as the server returns it (MLflow never returns its secret)."""

    webhook_id: str
    name: str
    url: str
    events: tuple[str, ...]  # MLflow's spelling, sorted
    description: str = ""
    status: str = "ACTIVE"


@dataclass(frozen=True)
class RegistryState:
    """The managed part of the live registry; a model missing here does not exist.
    `webhooks`: the server's webhooks, read only when a file declares webhooks: (else None)."""

    models: Mapping[str, ModelState] = field(default_factory=dict)
    webhooks: tuple[WebhookState, ...] | None = None

    def digest(self, name: str) -> str:
        """The model's fingerprint, or `absent`."""
        model = self.models.get(name)
        return model.digest() if model else ABSENT_DIGEST


@dataclass(frozen=True)
class RunSummary:
    """A training run as `propose` shows it."""

    run_id: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    start_time: int = 0
    end_time: int = 0

    @property
    def model_type(self) -> str:
        """The model_type tag or param the training logged, if any."""
        return self.tags.get("model_type") or self.params.get("model_type") or "—"

    @property
    def training_seconds(self) -> float | None:
        """A logged training_time metric, else the run's own duration."""
        if "training_time" in self.metrics:
            return self.metrics["training_time"]
        if self.end_time and self.start_time:
            return (self.end_time - self.start_time) / 1000
        return None
