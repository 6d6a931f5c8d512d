"""The registry's webhooks (MLflow 3.3+), over any backend's WebhookPort (registry/port.py): the
read of them that planning and import do, and the apply of one planned change after a fresh
check. The MLflow implementation is registry/mlflow/webhooks.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from mlflow_gitops.errors import PermissionDenied, RegistryError, SpecError, SpecIssue
from mlflow_gitops.observed import RegistryState, WebhookState
from mlflow_gitops.plan.changes import (
    CreateWebhook,
    DeleteWebhook,
    UpdateWebhook,
    WebhookFields,
)
from mlflow_gitops.plan.webhooks import fields_of
from mlflow_gitops.registry.port import WebhookPort
from mlflow_gitops.secrets import redact, register_secrets
from mlflow_gitops.spec.located import LoadedSpec, format_loc, locate
from mlflow_gitops.spec.webhooks import MIN_MLFLOW


class WebhooksUnsupported(RegistryError):
    """The server has no webhook API (MLflow 2.x, 3.x before 3.3, a file store)."""

    @classmethod
    def at(cls, where: str) -> WebhooksUnsupported:
        """The error for the registry at `where` (shown without credentials)."""
        return cls(
            f"the registry at {redact(where)} has no webhook API: webhooks need an MLflow "
            f"{MIN_MLFLOW}+ server (MLflow 2.x and 3.x before {MIN_MLFLOW} have none)",
            f"upgrade the server to MLflow {MIN_MLFLOW} or later, or remove webhooks:",
        )


def live_webhooks(state: RegistryState, port: Callable[[], WebhookPort]) -> RegistryState:
    """`state` with the server's webhooks for `import`; as it is on a server without webhooks
    or for a user who may not read them (MLflow admins only, on basic-auth servers)."""
    try:
        return replace(state, webhooks=port().read())
    except (WebhooksUnsupported, PermissionDenied):
        return state


# --- planning and applying ---------------------------------------------------------------------


def observe_webhooks(
    observed: RegistryState,
    files: Sequence[tuple[LoadedSpec, str]],
    port: Callable[[], WebhookPort],
) -> RegistryState:
    """`observed` with the server's webhooks when one of these files (loaded, shown name)
    declares webhooks:, else as it is (no request). A server without webhooks is a located
    error at that file's webhooks:."""
    declaring = [(f, shown) for f, shown in files if f.spec.webhooks is not None]
    if not declaring:
        return observed
    try:
        return replace(observed, webhooks=port().read())
    except WebhooksUnsupported as exc:
        loaded, shown = declaring[0]
        _, pos = locate(("webhooks",), loaded.positions)
        raise SpecError(
            [
                SpecIssue(
                    shown, pos.line, pos.column, format_loc(("webhooks",)), exc.message, exc.hint
                )
            ]
        ) from None


def apply_webhook(
    port: WebhookPort,
    change: CreateWebhook | UpdateWebhook | DeleteWebhook,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Make one planned webhook change, after reading the webhooks again: a webhook that changed
    since the plan (made, edited or deleted by someone else) is refused, like a stale model. The
    secret comes from the change's variable, is masked in all output from now on, and is never
    written anywhere else."""
    env = os.environ if environ is None else environ
    live = [h for h in port.read() if h.name == change.name]
    match change:
        case CreateWebhook(name=name, after=after, secret_env=var):
            if live:
                raise RegistryError(_STALE.format(name=name, what="was created"), _AGAIN)
            port.create(name, after, _secret(name, var, env))
        case UpdateWebhook(name=name, webhook_id=hook, before=before, after=after, secret_env=var):
            _same(name, hook, before, live)
            port.update(hook, after, _secret(name, var, env))
        case DeleteWebhook(name=name, webhook_id=hook, before=before):
            _same(name, hook, before, live)
            port.delete(hook)


_STALE = "webhook {name} {what} since the plan was made; nothing of it was applied"
_AGAIN = "run plan again and review"


def _same(name: str, hook: str, before: WebhookFields, live: list[WebhookState]) -> None:
    now = next((h for h in live if h.webhook_id == hook), None)
    if now is None:
        raise RegistryError(_STALE.format(name=name, what="was deleted"), _AGAIN)
    have = fields_of(now)
    if any(getattr(have, k) != v for k, v in before if v is not None):
        raise RegistryError(_STALE.format(name=name, what="was changed"), _AGAIN)


def _secret(name: str, var: str | None, environ: Mapping[str, str]) -> str | None:
    if var is None:
        return None
    value = environ.get(var, "")
    if not value:
        raise RegistryError(
            f"webhook {name}: its secret variable {var} is not set; nothing of it was applied",
            f"set {var} for the apply (in GitHub Actions from a secret: "
            f"{var}: ${{{{ secrets.{var} }}}})",
        )
    register_secrets((value,))
    return value
