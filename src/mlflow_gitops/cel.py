"""CEL through cel-python (`celpy`), imported only when a file has policies (it takes about half
a second). Two changes to plain CEL, so that a rule over an absent field reads naturally: an
ordering comparison (< <= > >=) with null is false instead of an error (== and != with null
already are plain comparisons), and a name the rule cannot see is an error at `validate`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import celpy
    import lark

ROOTS = ("change", "pr", "plan", "now")  # the names a rule sees
MACROS = {"exists", "all", "exists_one", "map", "filter"}


@dataclass(frozen=True)
class Problem:
    """What is wrong with an expression, at its own line and column (1-based)."""

    line: int
    column: int
    message: str


@dataclass(frozen=True)
class Compiled:
    text: str
    program: celpy.Runner
    roots: frozenset[str] = frozenset()  # the names it reads: without `change`, one value per plan


class EvalError(Exception):
    """The expression could not be evaluated: the rule blocks its change."""


def compile_rule(text: str) -> Compiled | Problem:
    """The compiled expression, or where and why it is not a CEL expression this tool runs."""
    import celpy
    from celpy.celparser import CELParseError

    env = celpy.Environment()
    try:
        ast = env.compile(text)
    except CELParseError as exc:
        line, column = getattr(exc, "line", None) or 1, getattr(exc, "column", None) or 1
        return Problem(line, column, _syntax(exc.__context__, text, line, column))
    names = list(_free_names(ast, frozenset()))
    for token, name in names:
        if name not in ROOTS:
            return Problem(
                token.line or 1,
                token.column or 1,
                f"unknown name '{name}': a rule sees {', '.join(ROOTS)}",
            )
    roots = frozenset(name for _, name in names)
    return Compiled(text, env.program(ast, functions=_functions()), roots)


def activation(values: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Plain values (dicts, lists, str, int, None) as CEL values, converted once: a rule over
    many changes shares the pull request's and the plan's."""
    from celpy import celtypes
    from celpy.adapter import json_to_cel

    out: dict[str, Any] = {k: json_to_cel(v) for k, v in values.items()}
    if now is not None:
        out["now"] = celtypes.TimestampType(now)
    return out


def evaluate(compiled: Compiled, activation: Mapping[str, Any]) -> bool:
    """The expression's value over an activation; raises EvalError when it errs or gives
    something that is not a bool."""
    from celpy import celtypes
    from celpy.evaluation import CELEvalError

    try:
        result = compiled.program.evaluate(dict(activation))
    except CELEvalError as exc:
        raise EvalError(_message(exc)) from None
    except (TypeError, ValueError, ArithmeticError, KeyError) as exc:  # celpy lets some escape
        raise EvalError(str(exc)[:300]) from None
    if isinstance(result, CELEvalError):
        raise EvalError(_message(result))
    if not isinstance(result, celtypes.BoolType | bool):
        raise EvalError(f"gives {type(result).__name__.removesuffix('Type').lower()}, not a bool")
    return bool(result)


def _syntax(cause: BaseException | None, text: str, line: int, column: int) -> str:
    """`syntax error: unexpected '&'`, or `... unexpected end of the expression`."""
    token = getattr(cause, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        return "syntax error: the expression ends too early"
    if token is not None and str(token):
        return f"syntax error: unexpected {str(token)!r}"
    lines = text.splitlines() or [""]
    rest = lines[line - 1][column - 1 :] if line <= len(lines) else ""
    char = getattr(cause, "char", None) or rest[:1]
    return f"syntax error: unexpected {char!r}" if char else "syntax error"


def _message(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    if text.startswith("undeclared reference"):
        return text.split(" (in activation", 1)[0]
    text = text.replace("no such member in mapping: ", "no field ")
    return text[:300]


def _functions() -> dict[str, Any]:
    """The ordering operators, false when either side is null."""
    from celpy import celtypes, evaluation

    def null_false(name: str) -> Any:
        base = evaluation.base_functions[name]

        def op(left: Any, right: Any) -> Any:
            if left is None or right is None:
                return celtypes.BoolType(False)
            return base(left, right)

        return op

    return {name: null_false(name) for name in ("_<_", "_<=_", "_>_", "_>=_")}


def _free_names(tree: lark.Tree[Any], bound: frozenset[str]) -> Iterator[tuple[Any, str]]:
    """Each identifier that no macro (`exists(a, ...)`) binds, with its token."""
    import lark

    if tree.data == "ident":
        token = tree.children[0]
        if isinstance(token, lark.Token) and str(token) not in bound:
            yield token, str(token)
        return
    if tree.data == "member_dot_arg" and len(tree.children) == 3:
        target, method, args = tree.children
        if str(method) in MACROS and isinstance(args, lark.Tree) and len(args.children) == 2:
            variable = _ident(args.children[0])
            if isinstance(target, lark.Tree):
                yield from _free_names(target, bound)
            body = args.children[1]
            inner = bound | {variable} if variable else bound
            if isinstance(body, lark.Tree):
                yield from _free_names(body, inner)
            return
    for child in tree.children:
        if isinstance(child, lark.Tree):
            yield from _free_names(child, bound)


def _ident(tree: Any) -> str | None:
    """The name of an expression that is a bare identifier (a macro's variable)."""
    import lark

    while isinstance(tree, lark.Tree):
        if tree.data == "ident":
            return str(tree.children[0])
        if len(tree.children) != 1:
            return None
        tree = tree.children[0]
    return None
