"""What the reliability tests share: the fixed clock and audit context of their applies, and the
rich scenario seeded into a real MLflow registry (the real-registry convergence and fault tests)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import UTC, datetime

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.observed import ModelState, VersionState
from tests.reliability.scenarios import ModelDecl, Scenario, VersionDecl

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
AUDIT = AuditContext(commit="1a2b3c4d5e6f", pr=6, actor="reliability")

# a rich case always runs first: a swap, an archived holder, an alias move, tags and a new version
RICH = Scenario(
    observed={
        "m0": ModelState(
            name="m0",
            description="old text",
            tags={"team": "rides", "task": "regression"},
            aliases={"champion": 1, "challenger": 2},
            versions=(
                VersionState(1, "Production", source="file:///models/m0/v1", tags={"owner": "a"}),
                VersionState(2, "Staging", source="file:///models/m0/v2", description="two"),
                VersionState(3, "Production", source="file:///models/m0/v3"),
            ),
        )
    },
    desired={
        "m0": ModelDecl(
            versions=(
                VersionDecl(1, "version", "Staging", tags={"owner": None}),
                VersionDecl(2, "source", "Production", description="GBR, 50 trees"),
                VersionDecl("new0", "source", "None", tags={"team": "search"}),
            ),
            description="Trip duration.",
            tags={"task": None, "owner": "alice"},
            aliases={"champion": 2, "challenger": "new0", "shadow": 1},
        )
    },
    run_refs=False,
)


def seed(uri: str, scenario: Scenario) -> Scenario:
    """Create the scenario's live state in MLflow; the scenario with the state MLflow reports."""
    from mlflow import MlflowClient

    from mlflow_gitops.registry.mlflow.adapter import MlflowRegistry

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated since MLflow 2.9
        for name, model in scenario.observed.items():
            client.create_registered_model(
                name, tags=dict(model.tags), description=model.description
            )
            for v in model.versions:
                created = client.create_model_version(
                    name, v.source, tags=dict(v.tags), description=v.description
                )
                assert int(created.version) == v.version
                if v.stage != "None":
                    client.transition_model_version_stage(
                        name, created.version, v.stage, archive_existing_versions=False
                    )
            for alias, number in model.aliases.items():
                client.set_registered_model_alias(name, alias, str(number))
    live = MlflowRegistry(uri).read(list(scenario.observed))
    return replace(scenario, observed=dict(live.models), parallelism=1)
