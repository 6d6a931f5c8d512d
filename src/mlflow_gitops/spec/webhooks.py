"""`webhooks:` of a registry's file: MLflow 3.3+ webhooks as declared state (validated here,
planned by plan/webhooks.py). Pure, offline: no mlflow."""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# MLflow's own names (mlflow.entities.webhook.WebhookEventStr), restated so `validate` never
# imports mlflow; the model registry's and the prompt registry's events of MLflow 3.3+
Event = Literal[
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "prompt.created",
    "prompt_version.created",
    "prompt_tag.set",
    "prompt_tag.deleted",
    "prompt_version_tag.set",
    "prompt_version_tag.deleted",
    "prompt_alias.created",
    "prompt_alias.deleted",
]
EVENTS: tuple[str, ...] = get_args(Event)
# mlflow.utils.validation._WEBHOOK_NAME_REGEX
WEBHOOK_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
WebhookName = Annotated[str, Field(pattern=WEBHOOK_NAME_PATTERN)]
MIN_MLFLOW = "3.3"  # the first MLflow whose server has webhooks
# the plan's pseudo-model that holds a registry's webhook changes: ':' is not allowed in a
# registered model's name (spec/check.py), so it never names a real model
WEBHOOKS = "webhooks:"


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class WebhookSpec(BaseModel):
    """One webhook: where MLflow sends which events, and the variable holding its secret (the
    secret itself is never in a file, a plan or any output)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    url: str = Field(min_length=1, max_length=1000, description="http(s) URL MLflow posts to")
    events: list[Event] = Field(
        min_length=1, description="MLflow's event names, e.g. model_version_alias.created"
    )
    description: str | None = Field(default=None, max_length=1000)
    secret_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")] | None = Field(
        default=None,
        description="the environment variable that holds the signing secret at apply time",
    )
    status: Annotated[Literal["ACTIVE", "DISABLED"], BeforeValidator(_upper)] | None = Field(
        default=None, description="absent: left alone (ACTIVE when created)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError(f"'{value[:80]}' is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value[:80]}' is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError(
                "the webhook URL carries credentials: never commit secrets; MLflow signs "
                "each delivery with the secret named by secret_env"
            )
        return value

    @field_validator("events")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        twice = sorted({e for e in value if value.count(e) > 1})
        if twice:
            raise ValueError(f"event '{twice[0]}' is listed twice")
        return value
