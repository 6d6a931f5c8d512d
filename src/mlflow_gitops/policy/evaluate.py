"""Every rule over every planned change: which hold, which are still unmet, which could not be
evaluated (those block: a rule that errs never passes a change), and which a policy owner's
label overrode. Pure: the pull request's facts come in as values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlflow_gitops.cel import Compiled, EvalError, Problem, activation, compile_rule, evaluate
from mlflow_gitops.plan.changes import (
    Change,
    DeleteAlias,
    Plan,
    SetAlias,
    Target,
    TransitionStage,
)
from mlflow_gitops.plan.gates import GateResult
from mlflow_gitops.plan.tree import TreePlan
from mlflow_gitops.policy.facts import PullFacts, change_value, plan_value
from mlflow_gitops.spec.policies import PolicyRule

Status = Literal["pass", "fail", "error", "overridden"]


@dataclass(frozen=True)
class RuleResult:
    rule: str
    status: Status
    detail: str  # fail: the rule's message; error: why; overridden: by whom; pass: ""


@dataclass(frozen=True)
class ChangeVerdict:
    """The rules that apply to one planned change, and what each said."""

    registry: str
    model: str
    change: Change
    results: tuple[RuleResult, ...]

    @property
    def held(self) -> bool:
        return all(r.status in ("pass", "overridden") for r in self.results)


@dataclass(frozen=True)
class PolicyReport:
    verdicts: tuple[ChangeVerdict, ...] = ()

    @property
    def blocked(self) -> dict[tuple[str, str], list[str]]:
        """(registry, model) -> why each unmet rule blocks it."""
        out: dict[tuple[str, str], list[str]] = {}
        for v in self.verdicts:
            for r in v.results:
                if r.status in ("fail", "error"):
                    reason = reason_text(r)
                    reasons = out.setdefault((v.registry, v.model), [])
                    if reason not in reasons:
                        reasons.append(reason)
        return out

    @property
    def overrides(self) -> list[tuple[ChangeVerdict, RuleResult]]:
        return [(v, r) for v in self.verdicts for r in v.results if r.status == "overridden"]


def reason_text(result: RuleResult) -> str:
    """`policy prod-needs-platform: a promotion in prod needs ...` (a blocked model's reason)."""
    if result.status == "error":
        return f"policy {result.rule} could not be evaluated, so it blocks: {result.detail}"
    return f"policy {result.rule}: {result.detail}"


def judge(
    rules: Sequence[PolicyRule], tree: TreePlan, pr: PullFacts, now: datetime
) -> PolicyReport:
    """Each rule over each change of every registry's plan (models a gate already blocks too:
    the comment shows everything a change still lacks)."""
    if not rules:
        return PolicyReport()
    compiled = [(rule, _compile(rule.if_), _compile(rule.require)) for rule in rules]
    shared = activation({"pr": pr.value(), "plan": plan_value(tree)}, now)  # converted once
    memo: dict[int, bool | EvalError] = {}  # expressions that do not read `change`: once a plan
    verdicts = []
    for reg in tree.registries:
        for change in reg.plan.changes:
            change_only = change_value(change, reg.registry, reg.file_of(change.model))
            values = {**shared, **activation({"change": change_only})}
            results = []
            for rule, when, require in compiled:
                result = _one(rule, when, require, values, pr, memo)
                if result is not None:
                    results.append(result)
            if results:
                verdicts.append(ChangeVerdict(reg.registry, change.model, change, tuple(results)))
    return PolicyReport(tuple(verdicts))


def _compile(text: str) -> Compiled | Problem:
    return compile_rule(text)


def _one(
    rule: PolicyRule,
    when: Compiled | Problem,
    require: Compiled | Problem,
    values: Mapping[str, object],
    pr: PullFacts,
    memo: dict[int, bool | EvalError],
) -> RuleResult | None:
    try:
        if not _holds(when, values, memo):
            return None
        if _holds(require, values, memo):
            return RuleResult(rule.name, "pass", "")
        result = RuleResult(rule.name, "fail", rule.message)
    except EvalError as exc:
        result = RuleResult(rule.name, "error", _explain(str(exc), pr))
    return _overridden(rule, pr) or result


def _holds(
    expression: Compiled | Problem, values: Mapping[str, object], memo: dict[int, bool | EvalError]
) -> bool:
    if isinstance(expression, Problem):  # validate reports it; never passes a change
        raise EvalError(expression.message)
    if "change" in expression.roots:
        return evaluate(expression, values)
    key = id(expression)
    if key not in memo:
        try:
            memo[key] = evaluate(expression, values)
        except EvalError as exc:
            memo[key] = exc
    found = memo[key]
    if isinstance(found, EvalError):
        raise found
    return found


def _explain(error: str, pr: PullFacts) -> str:
    """The evaluation error, with why a field is missing when the tool knows."""
    if "'teams'" in error and pr.teams_problem:
        return f"{error}: {pr.teams_problem}"
    if pr.problem and ("'pr'" in error or pr.number is None):
        return f"{error} ({pr.problem})"
    return error


def _overridden(rule: PolicyRule, pr: PullFacts) -> RuleResult | None:
    """The rule's override label, set by a member of one of its teams."""
    override = rule.override
    if override is None or override.label not in pr.labels:
        return None
    setter = pr.label_setters.get(override.label)
    if setter is None:
        return None
    teams = sorted(set(pr.teams_of.get(setter, ())) & set(override.teams))
    if not teams:
        return None
    return RuleResult(
        rule.name, "overridden", f"label '{override.label}' set by {setter} ({', '.join(teams)})"
    )


def enforce(tree: TreePlan, report: PolicyReport) -> TreePlan:
    """The tree with every model an unmet rule blocks blocked (nothing of it is applied), and
    each rule's verdict among the model's gate results, where the audit run records them
    (overrides included)."""
    blocked = report.blocked
    registries = []
    for reg in tree.registries:
        verdicts = [v for v in report.verdicts if v.registry == reg.registry]
        if not verdicts:
            registries.append(reg)
            continue
        plan = _with_verdicts(
            reg.plan, verdicts, {m: r for (n, m), r in blocked.items() if n == reg.registry}
        )
        registries.append(reg.model_copy(update={"plan": plan}))
    return tree.model_copy(update={"registries": tuple(registries)})


def _with_verdicts(
    plan: Plan, verdicts: list[ChangeVerdict], blocked: dict[str, list[str]]
) -> Plan:
    merged = {m: list(r) for m, r in plan.blocked.items()}
    for model, reasons in blocked.items():
        merged.setdefault(model, []).extend(r for r in reasons if r not in merged.get(model, []))
    gates = [
        GateResult(
            model=v.model,
            target=_target(v.change),
            version=_version(v.change),
            gate=f"policy {r.rule}",
            verdict="pass" if r.status in ("pass", "overridden") else "fail",
            message=r.detail if r.status != "pass" else "holds",
        )
        for v in verdicts
        for r in v.results
    ]
    return plan.model_copy(
        update={
            "blocked": {m: tuple(r) for m, r in sorted(merged.items())},
            "gates": (*plan.gates, *gates),
        }
    )


def _target(change: Change) -> str:
    """What the change moves to: a stage, `alias:<name>`, or the kind of change."""
    match change:
        case TransitionStage():
            return change.after
        case SetAlias() | DeleteAlias():
            return f"alias:{change.alias}"
        case _:
            return change.kind.replace("_", " ")


def _version(change: Change) -> str:
    target = getattr(change, "target", None)
    if isinstance(target, Target):
        return target.label()
    if isinstance(change, DeleteAlias):
        return f"v{change.before}"
    return change.model
