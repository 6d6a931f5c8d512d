"""The registry's webhooks (MLflow 3.3+): a port of their own, its MLflow implementation, and the
read of them that planning does when a file declares `webhooks:`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from mlflow_gitops.errors import PermissionDenied, RegistryError, SpecError, SpecIssue
from mlflow_gitops.observed import RegistryState, WebhookState
from mlflow_gitops.plan.changes import (
    CreateWebhook,
    DeleteWebhook,
    UpdateWebhook,
    WebhookFields,
)
from mlflow_gitops.plan.webhooks import fields_of
from mlflow_gitops.secrets import redact, register_secrets
from mlflow_gitops.spec.load import LoadedSpec, format_loc, locate
from mlflow_gitops.spec.webhooks import MIN_MLFLOW

if TYPE_CHECKING:
    from mlflow_gitops.registry.client import MlflowRegistry

PAGE = 100  # MLflow's own default page of list_webhooks


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


class WebhookPort(Protocol):
    """The webhook operations the tool needs; MLflow's admin-only API on basic-auth servers."""

    def read(self) -> tuple[WebhookState, ...]:
        """Every webhook of the server (MLflow never returns their secrets)."""
        ...

    def create(self, name: str, fields: WebhookFields, secret: str | None) -> str:
        """Create a webhook; returns its id."""
        ...

    def update(self, webhook_id: str, fields: WebhookFields, secret: str | None) -> None:
        """Change the fields that are set (and the secret, when given)."""
        ...

    def delete(self, webhook_id: str) -> None: ...


class MlflowWebhooks:
    """WebhookPort over the adapter's MlflowClient (its credentials, its error messages)."""

    def __init__(self, registry: MlflowRegistry) -> None:
        self.registry = registry

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except RegistryError:
            raise
        except Exception as exc:
            if _no_webhook_api(exc):
                raise WebhooksUnsupported.at(self.registry.uri) from None
            raise self.registry._translate(exc, doing) from exc

    def read(self) -> tuple[WebhookState, ...]:
        out: list[WebhookState] = []
        token = None
        with self._errors("read the webhooks of"):
            while True:
                self.registry.calls += 1
                page = self.registry.client.list_webhooks(max_results=PAGE, page_token=token)
                out += [_state(h) for h in page]
                token = page.token
                if not token:
                    break
        return tuple(sorted(out, key=lambda h: (h.name, h.webhook_id)))

    def create(self, name: str, fields: WebhookFields, secret: str | None) -> str:
        assert fields.url is not None
        assert fields.events is not None
        with self._errors(f"create webhook {name} at"):
            self.registry.calls += 1
            made = self.registry.client.create_webhook(
                name=name,
                url=fields.url,
                events=list(fields.events),
                description=fields.description,
                secret=secret,
                status=fields.status,
            )
        return str(made.webhook_id)

    def update(self, webhook_id: str, fields: WebhookFields, secret: str | None) -> None:
        with self._errors(f"update webhook {webhook_id} at"):
            self.registry.calls += 1
            self.registry.client.update_webhook(
                webhook_id=webhook_id,
                url=fields.url,
                events=list(fields.events) if fields.events is not None else None,
                description=fields.description,
                secret=secret,
                status=fields.status,
            )

    def delete(self, webhook_id: str) -> None:
        with self._errors(f"delete webhook {webhook_id} at"):
            self.registry.calls += 1
            self.registry.client.delete_webhook(webhook_id)


def _state(hook: Any) -> WebhookState:
    return WebhookState(
        webhook_id=str(hook.webhook_id),
        name=str(hook.name),
        url=str(hook.url),
        events=tuple(sorted(str(e) for e in hook.events)),
        description=str(hook.description or ""),
        status=str(hook.status),
    )


def _no_webhook_api(exc: Exception) -> bool:
    """A server that does not know the route (404 / ENDPOINT_NOT_FOUND), or a store without
    webhooks (MLflow's file store raises NotImplementedError)."""
    code = getattr(exc, "error_code", "")
    return (
        code == "ENDPOINT_NOT_FOUND"
        or "error code 404" in str(exc)
        or isinstance(exc, NotImplementedError)
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
