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


@dataclass(frozen=True)
class Credentials:
    """One registry's credentials; the secrets never show in a repr. Credentials() is "none".
    `source`: the names of the variables they were read from (not secrets), for messages."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: tuple[str, ...] = field(default=(), compare=False)

    def variables(self) -> dict[str, str | None]:
        """These credentials as MLflow's variables (None: unset)."""
        values = (self.username, self.password, self.token)
        return dict(zip(CREDENTIAL_VARIABLES, values, strict=True))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to mask in any output (the password and the token; a username is not one)."""
        return tuple(v for v in (self.password, self.token) if v)

    @property
    def sends(self) -> bool:
        """Whether they identify anyone (a user or a token)."""
        return bool(self.username or self.token)
