"""One small frozen type per kind of change; a Plan is a sorted tuple of them plus findings."""

from __future__ import annotations

from typing import Annotated, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field

from mlflow_gitops.plan.gates import GateResult
from mlflow_gitops.spec.webhooks import WEBHOOKS

# the version of every JSON output of the tool: a plan (shown or saved), a tree's plan, an
# apply's result, a model's history (the audit record in MLflow has its own, in record/)
SCHEMA_VERSION = 1


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Target(Frozen):
    """A version: by number, or by its file entry when it is registered by this plan."""

    version: int | None = None
    entry: str | None = None  # e.g. "run 3f2a.../model": resolved to a number when applied

    def label(self) -> str:
        """`v3`, or `new version (run 3f2a/model)`."""
        if self.version is not None:
            return f"v{self.version}"
        entry = self.entry or ""
        if entry.startswith("run "):
            run_id, _, path = entry[4:].partition("/")
            entry = f"run {run_id[:8]}/{path}"
        return f"new version ({entry if len(entry) <= 48 else entry[:47] + '…'})"


class CreateModel(Frozen):
    kind: Literal["create_model"] = "create_model"
    model: str


class RegisterVersion(Frozen):
    kind: Literal["register_version"] = "register_version"
    model: str
    entry: str
    source: str
    run_id: str | None = None


class CopyVersion(Frozen):
    """Register, in this registry, a copy of a version of another registry (or of another model
    of this one): `copy dev:nyc-taxi-regressor/3 -> prod`. A copy is found again by its
    provenance tags, so a second apply registers nothing."""

    kind: Literal["copy_version"] = "copy_version"
    model: str
    entry: str  # `copy_from dev:nyc-taxi-regressor/3`, the entry's key in the file
    source_registry: str  # the source's registry name in registry.yaml
    source_model: str
    source_version: int
    registry: str  # the destination's registry name

    @property
    def source(self) -> str:
        """`dev:nyc-taxi-regressor/3`"""
        return f"{self.source_registry}:{self.source_model}/{self.source_version}"

    def text(self) -> str:
        """`copy dev:nyc-taxi-regressor/3 -> prod`: the change as plans and history show it."""
        return f"copy {self.source} -> {self.registry}"


class SetModelDescription(Frozen):
    kind: Literal["set_model_description"] = "set_model_description"
    model: str
    before: str | None
    after: str


class SetModelTag(Frozen):
    kind: Literal["set_model_tag"] = "set_model_tag"
    model: str
    key: str
    before: str | None
    after: str


class DeleteModelTag(Frozen):
    kind: Literal["delete_model_tag"] = "delete_model_tag"
    model: str
    key: str
    before: str


class SetVersionDescription(Frozen):
    kind: Literal["set_version_description"] = "set_version_description"
    model: str
    target: Target
    before: str | None
    after: str
    drift: bool = False  # someone rewrote the text the tool last wrote


class RestoreHistory(Frozen):
    """The history block was removed or edited by hand: write it back, rebuilt from the audit
    record (the user's text before it is kept)."""

    kind: Literal["restore_history"] = "restore_history"
    model: str
    target: Target
    before: str  # the block as found ("" when removed)
    after: str  # the block rebuilt from the audit record
    drift: bool = True


class SetVersionTag(Frozen):
    kind: Literal["set_version_tag"] = "set_version_tag"
    model: str
    target: Target
    key: str
    before: str | None
    after: str


class DeleteVersionTag(Frozen):
    kind: Literal["delete_version_tag"] = "delete_version_tag"
    model: str
    target: Target
    key: str
    before: str


TransitionReason = Literal["declared", "archive_previous", "unmanaged"]


class TransitionStage(Frozen):
    kind: Literal["transition_stage"] = "transition_stage"
    model: str
    target: Target
    before: str
    after: str
    reason: TransitionReason = "declared"
    replaced_by: tuple[int | str, ...] = ()  # for archive_previous: the new holders
    drift: bool = False  # the registry moved away from what the tool last applied
    # hand over in one call: MLflow archives the stage's other holders in the same transaction,
    # so the stage never has more holders than max_per_stage, nor none
    archive_others: bool = False


class SetAlias(Frozen):
    kind: Literal["set_alias"] = "set_alias"
    model: str
    alias: str
    before: int | None
    target: Target
    drift: bool = False
    mirrors: str | None = None  # the stage this alias follows (mirror_stages_to_aliases)


class DeleteAlias(Frozen):
    kind: Literal["delete_alias"] = "delete_alias"
    model: str
    alias: str
    before: int
    mirrors: str | None = None  # the stage this alias follows (mirror_stages_to_aliases)


class DeleteVersion(Frozen):
    kind: Literal["delete_version"] = "delete_version"
    model: str
    target: Target
    stage: str


class WebhookFields(Frozen):
    """The managed fields of a webhook; in an update, only the fields that change are set."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None
    status: str | None = None


class CreateWebhook(Frozen):
    """Create one of the registry's webhooks; its secret is read from `secret_env` at apply
    time and never stored in the plan. `model` is the registry's webhook entry (WEBHOOKS)."""

    kind: Literal["create_webhook"] = "create_webhook"
    model: str = WEBHOOKS
    name: str
    after: WebhookFields
    secret_env: str | None = None


class UpdateWebhook(Frozen):
    """Change a webhook in place (only the fields in `after`; the secret is sent again)."""

    kind: Literal["update_webhook"] = "update_webhook"
    model: str = WEBHOOKS
    name: str
    webhook_id: str
    before: WebhookFields
    after: WebhookFields
    secret_env: str | None = None


class DeleteWebhook(Frozen):
    """Delete a webhook the file declares as null."""

    kind: Literal["delete_webhook"] = "delete_webhook"
    model: str = WEBHOOKS
    name: str
    webhook_id: str
    before: WebhookFields


WebhookChange = CreateWebhook | UpdateWebhook | DeleteWebhook


Change = Annotated[
    CreateModel
    | RegisterVersion
    | CopyVersion
    | SetModelDescription
    | SetModelTag
    | DeleteModelTag
    | SetVersionDescription
    | RestoreHistory
    | SetVersionTag
    | DeleteVersionTag
    | TransitionStage
    | SetAlias
    | DeleteAlias
    | DeleteVersion
    | CreateWebhook
    | UpdateWebhook
    | DeleteWebhook,
    Field(discriminator="kind"),
]


class Plan(Frozen):
    """What apply would do, what it saw, and what stops it."""

    schema_version: int = SCHEMA_VERSION
    changes: tuple[Change, ...] = ()
    blocked: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    unmanaged: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    observed: dict[str, str] = Field(default_factory=dict)  # model -> digest of what was read
    gates: tuple[GateResult, ...] = ()
    notes: tuple[str, ...] = ()  # worth knowing, blocks nothing (e.g. gate results not recorded)

    @property
    def models(self) -> list[str]:
        """The models with at least one change, sorted."""
        return sorted({c.model for c in self.changes})

    def changes_for(self, model: str) -> list[Change]:
        """That model's changes in apply order."""
        return [c for c in self.changes if c.model == model]

    @property
    def is_empty(self) -> bool:
        """No change to make (blocked or not)."""
        return not self.changes


# apply order within a model (DESIGN.md): create/register, tags and descriptions, promote the new
# holder, archive the old one, aliases. Promotions into Production go first so that Production is
# never without a holder when two versions swap stages.
_STAGE_RANK = {"Production": 0, "Staging": 1, "None": 2, "Archived": 3}


def phase(change: Change) -> tuple[int, int]:
    """The (phase, sub-order) of a change within its model."""
    match change:
        case CreateModel():
            return (0, 0)
        case RegisterVersion() | CopyVersion():
            return (1, 0)
        case SetModelDescription() | SetModelTag() | DeleteModelTag():
            return (2, 0)
        case SetVersionDescription() | RestoreHistory() | SetVersionTag() | DeleteVersionTag():
            return (2, 1)
        case TransitionStage(after=after) if after in ("Staging", "Production"):
            return (3, _STAGE_RANK[after])
        case TransitionStage(after=after):
            return (4, _STAGE_RANK[after])
        case DeleteAlias(mirrors=str()):
            # the mirrored stage is being emptied: unset the alias before its holder leaves, so
            # it never names a version that holds another stage
            return (2, 9)
        case SetAlias(mirrors=str()):
            # a mirrored alias moves after the new holder is promoted and before the old one is
            # archived, so the alias always names a version that holds its stage
            return (3, 9)
        case SetAlias() | DeleteAlias():
            return (5, 0)
        case DeleteVersion():
            return (6, 0)
        case CreateWebhook() | UpdateWebhook():
            return (0, 1)
        case DeleteWebhook():
            return (6, 1)
        case _:
            assert_never(change)


def sort_key(change: Change) -> tuple[object, ...]:
    """Model, phase, then version and key (aliases by name): deterministic, so PR comments diff
    cleanly."""
    if isinstance(change, SetAlias | DeleteAlias):
        return (change.model, *phase(change), 0, "", change.alias)
    if isinstance(change, CreateWebhook | UpdateWebhook | DeleteWebhook):
        return (change.model, *phase(change), 0, "", change.name)
    target = getattr(change, "target", None)
    number = target.version if isinstance(target, Target) and target.version else 0
    entry = (target.entry or "") if isinstance(target, Target) else getattr(change, "entry", "")
    key = getattr(change, "key", None) or ""
    return (change.model, *phase(change), number, entry, key)
