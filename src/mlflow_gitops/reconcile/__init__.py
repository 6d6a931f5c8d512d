"""The use cases, one per command: each a function from a frozen request to an outcome value,
which the CLI renders. Sequencing lives here and nowhere else: read, plan, gate, check
permissions, lock, apply, record.

- `plan.plan_request`, `apply.apply_request` (`apply.apply_plan` for one planned registry),
  `comment.comment_request`, `importing.import_registry` and `importing.import_tree`,
  `lifecycle.propose_request`, `lifecycle.history_request`, `lifecycle.rollback_request`;
- `loop.apply_and_report`: `apply` in the pull-request loop (what the `apply` command calls);
- `planning`: one registry's plan over its files; `connect`: where each registry is, its
  credentials and its adapter; `permission`: whether this user may apply a plan (pure).
"""

from mlflow_gitops.reconcile.apply import ApplyRequest, apply_plan, apply_request, check_fresh
from mlflow_gitops.reconcile.connect import read_models
from mlflow_gitops.reconcile.importing import ImportTreeRequest, import_tree
from mlflow_gitops.reconcile.plan import PlanOutcome, PlanRequest, plan_request, save_plan
from mlflow_gitops.reconcile.planning import PlanFile, Planned, make_plan, match_copies

__all__ = [
    "ApplyRequest",
    "ImportTreeRequest",
    "PlanFile",
    "PlanOutcome",
    "PlanRequest",
    "Planned",
    "apply_plan",
    "apply_request",
    "check_fresh",
    "import_tree",
    "make_plan",
    "match_copies",
    "plan_request",
    "read_models",
    "save_plan",
]
