"""What the commands share: where output goes (every byte through redact), the progress line,
the options several commands take, and the exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlflow_gitops.secrets import redact

if TYPE_CHECKING:
    from mlflow_gitops.plan.changes import Plan

# 0: done (no changes with --detailed-exitcode); 1: a known error, or an apply that failed;
# 2: changes pending (--detailed-exitcode); 3: a gate or policy blocked a model;
# 70: a bug in mlflow-gitops (sysexits EX_SOFTWARE); 130: interrupted
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BLOCKED = 0, 1, 2, 3
EXIT_BUG, EXIT_INTERRUPTED = 70, 130
DEBUG_VARIABLE = "MLFLOW_GITOPS_DEBUG"


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


FileArg = Annotated[
    Path, typer.Argument(help="The registry file.", show_default=True, dir_okay=False)
]
UriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="Registry URI; default: $MLFLOW_TRACKING_URI, then the file's tracking_uri, "
        "then sqlite:///mlflow.db next to the file.",
    ),
]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="Plain output even on a terminal.")]
DetailedOpt = Annotated[
    bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none.")
]
EditedFileOpt = Annotated[Path, typer.Option("--file", help="The registry file to edit.")]
RegistryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--registry",
        help="Only this registry of the tree (repeatable); the others are neither read nor "
        "changed.",
    ),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Only this model (repeatable); the others are neither read nor changed.",
    ),
]


def emit(text: str, *, err: bool = False, verbatim: bool = False) -> None:
    """Every byte the tool prints goes through here, and through redact(); `verbatim` text is
    data reproduced from the registry (its URI already redacted), which is never altered."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text if verbatim else redact(text))
    stream.flush()


def color(no_color: bool) -> bool:
    """Colors on a terminal, unless --no-color, NO_COLOR or CI."""
    return (
        not no_color
        and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
        and not os.environ.get("CI")
    )


class Status:
    """A one-line progress display on stderr while long work runs (terminals only)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty() and not os.environ.get("CI")

    def __call__(self, text: str = "") -> None:
        if self.live:
            sys.stderr.write("\r\033[K" + redact(text))
            sys.stderr.flush()

    def done(self) -> None:
        self()

    def __enter__(self) -> Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self()


def exit_code(plan: Plan, *, failed: bool = False, detailed: bool = False) -> int:
    """1 when something failed, 3 when a gate or policy blocked, 2 for pending changes when
    asked (--detailed-exitcode), else 0."""
    if failed:
        return EXIT_ERROR
    if plan.blocked:
        return EXIT_BLOCKED
    return EXIT_CHANGES if detailed and not plan.is_empty else EXIT_OK


def bug_report(exc: Exception, debug: bool) -> str:
    """One line that says it is a bug and what to do; the traceback only when asked for
    (--debug or MLFLOW_GITOPS_DEBUG=1)."""
    if debug or os.environ.get(DEBUG_VARIABLE):
        return "".join(traceback.format_exception(exc)) + (
            "this is a bug in mlflow-gitops; please report it with the command you ran and the "
            "traceback above\n"
        )
    return (
        f"error: unexpected {type(exc).__name__}: {exc}: this is a bug in mlflow-gitops; please "
        "report it with the command you ran (run it again with --debug for the traceback)\n"
    )
