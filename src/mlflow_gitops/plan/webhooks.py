"""The webhook part of plan(desired, observed): like tags, a declared webhook is created or
updated in place, a webhook declared null is deleted, and the others are left alone. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlflow_gitops.errors import SpecIssue
from mlflow_gitops.observed import RegistryState, WebhookState
from mlflow_gitops.plan.changes import (
    Change,
    CreateWebhook,
    DeleteWebhook,
    Plan,
    UpdateWebhook,
    WebhookChange,
    WebhookFields,
)
from mlflow_gitops.spec.located import LoadedSpec, format_loc, locate
from mlflow_gitops.spec.tree import LoadedTree
from mlflow_gitops.spec.webhooks import WEBHOOKS, WebhookSpec

DEFAULT_STATUS = "ACTIVE"


def plan_webhooks(desired: LoadedSpec, observed: RegistryState, file: str) -> list[Change]:
    """The changes that make the server's webhooks match the file's `webhooks:`; two live
    webhooks with a declared name are a located error (which one is meant cannot be told)."""
    declared = desired.spec.webhooks
    if declared is None:
        return []
    live: dict[str, list[WebhookState]] = {}
    for hook in observed.webhooks or ():
        live.setdefault(hook.name, []).append(hook)
    out: list[Change] = []
    issues: list[SpecIssue] = []
    for name, spec in declared.items():
        found = live.get(name, [])
        if len(found) > 1:
            loc = ("webhooks", name)
            _, pos = locate(loc, desired.positions)
            ids = ", ".join(sorted(h.webhook_id for h in found))
            issues.append(
                SpecIssue(
                    file,
                    pos.line,
                    pos.column,
                    format_loc(loc),
                    f"the registry has {len(found)} webhooks named '{name}' ({ids})",
                    "delete all but one (MlflowClient().delete_webhook(id)), then plan again",
                )
            )
            continue
        change = _one(name, spec, found[0] if found else None)
        if change is not None:
            out.append(change)
    if issues:
        from mlflow_gitops.errors import SpecError

        raise SpecError(issues)
    return out


def _one(name: str, spec: WebhookSpec | None, live: WebhookState | None) -> WebhookChange | None:
    if spec is None:
        if live is None:
            return None
        return DeleteWebhook(name=name, webhook_id=live.webhook_id, before=fields_of(live))
    if live is None:
        after = WebhookFields(
            url=spec.url,
            events=tuple(sorted(spec.events)),
            description=spec.description,
            status=spec.status or DEFAULT_STATUS,
        )
        return CreateWebhook(name=name, after=after, secret_env=spec.secret_env)
    have = fields_of(live)
    want = {
        "url": spec.url,
        "events": tuple(sorted(spec.events)),
        "description": spec.description,  # absent: left alone
        "status": spec.status,  # absent: left alone
    }
    changed = {k: v for k, v in want.items() if v is not None and getattr(have, k) != v}
    if not changed:
        return None
    return UpdateWebhook(
        name=name,
        webhook_id=live.webhook_id,
        before=WebhookFields(**{k: getattr(have, k) for k in changed}),
        after=WebhookFields(**changed),
        secret_env=spec.secret_env,
    )


def fields_of(live: WebhookState) -> WebhookFields:
    """A live webhook's managed fields."""
    return WebhookFields(
        url=live.url,
        events=tuple(sorted(live.events)),
        description=live.description,
        status=live.status,
    )


def shown(fields: WebhookFields) -> str:
    """`url https://..., events a, b, status ACTIVE`: the fields that are set, for renderers."""
    parts = []
    if fields.url is not None:
        parts.append(f"url {fields.url}")
    if fields.events is not None:
        parts.append(f"events {', '.join(fields.events)}")
    if fields.description:  # an empty description is not worth a word
        parts.append(f'description "{fields.description}"')
    if fields.status is not None:
        parts.append(f"status {fields.status}")
    return "; ".join(parts)


def is_webhook_change(change: Change) -> bool:
    """Whether the change is to one of the registry's webhooks."""
    match change:
        case CreateWebhook() | UpdateWebhook() | DeleteWebhook():
            return True
        case _:
            return False


# --- in a tree: the file that declares a registry's webhooks ---------------------------------


def webhooks_file(
    tree: LoadedTree, registry: str, planned: Sequence[Path]
) -> tuple[LoadedSpec, str] | None:
    """The file of `registry` that declares webhooks:, as a plan file of no model, when it is
    not among the files already planned (it declares none of the selected models)."""
    for loaded in tree.files_in(registry):
        if loaded.spec.webhooks is None or loaded.path in planned:
            continue
        bare = LoadedSpec(
            loaded.spec.model_copy(update={"models": {}}),
            loaded.path,
            loaded.positions,
            loaded.shown,
        )
        return bare, str(loaded.path) if loaded.path == tree.root.path else loaded.name
    return None


def declaring_file(tree: LoadedTree | None, registry: str, plan: Plan) -> dict[str, str]:
    """{WEBHOOKS: the file that declares the registry's webhooks} when the plan changes them,
    so that renderers show the webhooks under their file."""
    if tree is None or not any(c.model == WEBHOOKS for c in plan.changes):
        return {}
    for loaded in tree.files_in(registry):
        if loaded.spec.webhooks is not None:
            return {WEBHOOKS: loaded.name}
    return {}
