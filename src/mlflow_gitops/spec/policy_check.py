"""The offline check of the root file's `policies:` (every expression compiles and names only
what a rule sees, names are unique), so that `validate` reports each problem at its
file:line:col. CEL is imported only for a file that has rules."""

from __future__ import annotations

from mlflow_gitops.cel import Problem, compile_rule
from mlflow_gitops.errors import SpecIssue
from mlflow_gitops.spec.located import LoadedSpec, format_loc, locate

HINT = (
    "write the rule in CEL over change, pr, plan and now (docs/policies.md); "
    "a string literal takes double quotes inside a YAML value"
)


def check_policies(loaded: LoadedSpec) -> list[SpecIssue]:
    """The located problems of the root file's policies (none when it has none)."""
    rules = loaded.spec.policies or []
    issues: list[SpecIssue] = []
    lines: list[str] | None = None
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.name in seen:
            loc = ("policies", index, "name")
            _, pos = locate(loc, loaded.positions)
            issues.append(
                SpecIssue(
                    loaded.name, pos.line, pos.column, format_loc(loc),
                    f"policy '{rule.name}' is declared twice (first as policies[{seen[rule.name]}])",
                    "give every rule its own name: the comment and the audit record name rules",
                )
            )  # fmt: skip
        seen.setdefault(rule.name, index)
        for key, text in (("if", rule.if_), ("require", rule.require)):
            if key == "if" and "if_" not in rule.model_fields_set:
                continue
            found = compile_rule(text)
            if not isinstance(found, Problem):
                continue
            loc = ("policies", index, key)
            _, pos = locate(loc, loaded.positions)
            if lines is None:
                lines = _lines(loaded)
            line, column = _in_file(lines, pos.line, pos.column, text, found)
            issues.append(
                SpecIssue(
                    loaded.name, line, column, format_loc(loc),
                    f"{found.message} (at {found.line}:{found.column} of the expression)", HINT,
                )
            )  # fmt: skip
    return issues


def _lines(loaded: LoadedSpec) -> list[str]:
    try:
        return loaded.path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _in_file(
    lines: list[str], line: int, column: int, text: str, problem: Problem
) -> tuple[int, int]:
    """Where the expression's problem is in the file: exact when the expression is written on
    the value's own line (plain or quoted); else the field's key."""
    if problem.line != 1 or "\n" in text or line > len(lines):
        return line, column
    found = lines[line - 1].find(text, column - 1)  # after `require:` and an opening quote
    return (line, found + problem.column) if found >= 0 else (line, column)
