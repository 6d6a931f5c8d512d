"""The plan of a tree of files over several registries: one Plan per registry, with the file
that declares each model, so that every renderer can group by registry, then by file."""

from __future__ import annotations

from pydantic import Field

from mlflow_gitops.plan.changes import Frozen, Plan
from mlflow_gitops.spec.model import DEFAULT_REGISTRY


class RegistryPlan(Frozen):
    """One registry's plan: its name in registry.yaml ("default" for a single file), its
    identity (the URI without credentials), and the file each of its models is declared in."""

    registry: str
    identity: str
    plan: Plan
    uri: str = ""  # the URI as given, credentials masked (a single file's plan names it)
    files: dict[str, str] = Field(default_factory=dict)  # model -> file, as shown to the user

    def file_of(self, model: str) -> str:
        """The file that declares the model ("" for a model only the registry holds)."""
        return self.files.get(model, "")


class TreePlan(Frozen):
    """Every selected registry's plan, in the order registry.yaml declares them."""

    registries: tuple[RegistryPlan, ...] = ()
    # --registry/--model restricted the plan: what was selected; the rest was neither read nor
    # changed, and every renderer says the plan is partial
    selected_registries: tuple[str, ...] = ()
    selected_models: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.selected_registries or self.selected_models)

    @property
    def single(self) -> RegistryPlan | None:
        """The one registry of a file without registries: planned whole, which every renderer
        shows as a plain plan (one registry is a tree of one); None for any other tree."""
        if len(self.registries) != 1 or self.partial:
            return None
        only = self.registries[0]
        return only if only.registry == DEFAULT_REGISTRY else None

    @property
    def is_empty(self) -> bool:
        return all(r.plan.is_empty for r in self.registries)

    @property
    def blocked(self) -> bool:
        return any(r.plan.blocked for r in self.registries)
