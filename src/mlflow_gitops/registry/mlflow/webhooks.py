"""The server's webhooks (MLflow 3.3+) over the adapter's connection: registry/port.WebhookPort,
every call through the connection's one error mapping (a server without the webhook API is
registry/webhooks.WebhooksUnsupported)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.observed import WebhookState
from mlflow_gitops.plan.changes import WebhookFields
from mlflow_gitops.registry.mlflow.base import Connection
from mlflow_gitops.registry.mlflow.errors import no_webhook_api
from mlflow_gitops.registry.webhooks import WebhooksUnsupported

PAGE = 100  # MLflow's own default page of list_webhooks


class MlflowWebhooks:
    """WebhookPort over one connection's MlflowClient (its credentials, its error messages)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except GitopsError:
            raise
        except Exception as exc:
            if no_webhook_api(exc):
                raise WebhooksUnsupported.at(self.connection.uri) from None
            raise self.connection._translate(exc, doing) from exc

    def read(self) -> tuple[WebhookState, ...]:
        out: list[WebhookState] = []
        token = None
        conn = self.connection
        with self._errors("read the webhooks of"):
            while True:
                conn.calls += 1
                page = conn.client.list_webhooks(max_results=PAGE, page_token=token)
                out += [_state(h) for h in page]
                token = page.token
                if not token:
                    break
        return tuple(sorted(out, key=lambda h: (h.name, h.webhook_id)))

    def create(self, name: str, fields: WebhookFields, secret: str | None) -> str:
        assert fields.url is not None
        assert fields.events is not None
        conn = self.connection
        with self._errors(f"create webhook {name} at"):
            conn.calls += 1
            made = conn.client.create_webhook(
                name=name,
                url=fields.url,
                events=list(fields.events),
                description=fields.description,
                secret=secret,
                status=fields.status,
            )
        return str(made.webhook_id)

    def update(self, webhook_id: str, fields: WebhookFields, secret: str | None) -> None:
        conn = self.connection
        with self._errors(f"update webhook {webhook_id} at"):
            conn.calls += 1
            conn.client.update_webhook(
                webhook_id=webhook_id,
                url=fields.url,
                events=list(fields.events) if fields.events is not None else None,
                description=fields.description,
                secret=secret,
                status=fields.status,
            )

    def delete(self, webhook_id: str) -> None:
        conn = self.connection
        with self._errors(f"delete webhook {webhook_id} at"):
            conn.calls += 1
            conn.client.delete_webhook(webhook_id)


def _state(hook: Any) -> WebhookState:
    return WebhookState(
        webhook_id=str(hook.webhook_id),
        name=str(hook.name),
        url=str(hook.url),
        events=tuple(sorted(str(e) for e in hook.events)),
        description=str(hook.description or ""),
        status=str(hook.status),
    )
