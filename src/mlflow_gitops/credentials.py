"""One registry's credentials as a value: who its requests act as, and the secrets they send.

Defined once, below every layer: the tree resolves them from the variables a registry names
(spec/tree.py, spec/connection.py), the adapters send them (registry/mlflow/env.py lends them to
MLflow's file transfers), and messages name their source. A repr never shows a secret."""

from __future__ import annotations

from dataclasses import dataclass, field

# the variables MLflow's client reads for a server's credentials, in Credentials' field order
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# the variables MLflow's Databricks stores and the Databricks SDK read for a workspace
DATABRICKS_VARIABLES = ("DATABRICKS_HOST", "DATABRICKS_TOKEN")


@dataclass(frozen=True)
class Credentials:
    """One registry's credentials; the secrets never show in a repr. Credentials() is "none".
    `host`: a Databricks workspace's URL (not a secret), whose `token` they are; without it the
    token is an MLflow server's bearer token. `source`: the names of the variables they were
    read from (not secrets), for messages."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: tuple[str, ...] = field(default=(), compare=False)
    host: str | None = None

    def variables(self) -> dict[str, str | None]:
        """These credentials as the variables MLflow and the Databricks SDK read (None: unset):
        a Databricks workspace's host and token, or an MLflow server's user, password, token;
        never both, so a registry's file transfers see no other registry's."""
        if self.host:
            mlflow: tuple[str | None, ...] = (None, None, None)
            databricks: tuple[str | None, ...] = (self.host, self.token)
        else:
            mlflow, databricks = (self.username, self.password, self.token), (None, None)
        return {
            **dict(zip(CREDENTIAL_VARIABLES, mlflow, strict=True)),
            **dict(zip(DATABRICKS_VARIABLES, databricks, strict=True)),
        }

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to mask in any output (the password and the token; a username is not one)."""
        return tuple(v for v in (self.password, self.token) if v)

    @property
    def sends(self) -> bool:
        """Whether they identify anyone (a user or a token)."""
        return bool(self.username or self.token)
