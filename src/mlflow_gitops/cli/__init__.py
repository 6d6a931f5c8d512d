"""The command line: each command parses, calls one use case (mlflow_gitops.reconcile), renders
its outcome and returns an exit code; `main` is the one error funnel.

The use cases are imported inside the commands (and mlflow lazily below them) so that
`validate`, `schema` and `--help` start fast and work without a registry.
"""

from __future__ import annotations

import gc
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mlflow_gitops.cli.terminal import (
    DEBUG_VARIABLE,
    EXIT_BUG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DetailedOpt,
    EditedFileOpt,
    FileArg,
    Format,
    ModelOpt,
    NoColorOpt,
    RegistryOpt,
    Status,
    UriOpt,
    bug_report,
    color,
    emit,
    exit_code,
)
from mlflow_gitops.errors import GitopsError

if TYPE_CHECKING:
    from mlflow_gitops.plan.tree import TreePlan
    from mlflow_gitops.reconcile.plan import PlanOutcome

app = typer.Typer(
    name="mlflow-gitops",
    help="GitOps for the MLflow Model Registry: keep stages, aliases, tags and descriptions in "
    "registry.yaml; plan shows the difference, apply makes it so.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _Debug:
    """Whether --debug was given (the traceback of a bug); reset by every main()."""

    on = False


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"On an unexpected error (a bug), also print its traceback (or {DEBUG_VARIABLE}=1).",
        ),
    ] = False,
) -> None:
    _Debug.on = debug


# --- validate / schema: offline, no mlflow ---------------------------------------------------------


@app.command()
def validate(file: FileArg = Path("registry.yaml")) -> None:
    """Check registry.yaml and every file it includes (schema and semantics) offline; never
    contacts a registry."""
    from mlflow_gitops.spec.tree import load_tree

    tree = load_tree(file)
    versions = sum(len(m.spec.versions) for m in tree.models.values())
    more = f" in {len(tree.all_files)} files" if tree.files else ""
    emit(f"{file}: valid ({len(tree.models)} models, {versions} version entries{more})\n")


@app.command()
def schema() -> None:
    """Print the JSON Schema of registry.yaml (for editors and CI)."""
    from mlflow_gitops.spec.schema import schema_text

    emit(schema_text())


# --- plan / apply ----------------------------------------------------------------------------------


@app.command()
def plan(
    file: FileArg = Path("registry.yaml"),
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="text, markdown (PR comments) or json.")
    ] = Format.text,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also save the plan as JSON, for `apply PLAN`.")
    ] = None,
    detailed_exitcode: DetailedOpt = False,
    tracking_uri: UriOpt = None,
    registry: RegistryOpt = None,
    model: ModelOpt = None,
    no_color: NoColorOpt = False,
) -> int:
    """Read the registries, compute the difference with the files, and show it."""
    from mlflow_gitops.reconcile.plan import PlanRequest, plan_request

    request = PlanRequest(
        file, tracking_uri, _now(), out, registries=tuple(registry or ()), models=tuple(model or ())
    )
    with Status() as status:
        outcome = plan_request(request, status)
    emit(_render_plan(outcome.tree, fmt, file, no_color))
    if out is not None:
        emit(f"Saved the plan to {out}; apply it with `mlflow-gitops apply {out}`.\n", err=True)
    return exit_code(outcome.plan, detailed=detailed_exitcode)


@app.command()
def apply(
    target: Annotated[
        Path, typer.Argument(help="registry.yaml to plan and apply, or a plan saved by plan --out.")
    ] = Path("registry.yaml"),
    tracking_uri: UriOpt = None,
    commit: Annotated[
        str | None, typer.Option(help="Commit to record (default: from CI/git).")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who applies (default: from CI/git).")] = None,
    pr: Annotated[int | None, typer.Option(help="Pull request number to record.")] = None,
    parallelism: Annotated[
        int, typer.Option(min=1, max=32, help="Models applied at once (sqlite: always 1).")
    ] = 4,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="text or json.")] = Format.text,
    registry: RegistryOpt = None,
    model: ModelOpt = None,
    no_color: NoColorOpt = False,
) -> int:
    """Apply the file (plan, then apply) or a saved plan (refused when the registry changed);
    in a push job of GitHub Actions, the merged pull request, the commit status and the
    deployments tell what happened."""
    from mlflow_gitops.outcome import ApplyOutcome
    from mlflow_gitops.reconcile.apply import ApplyRequest
    from mlflow_gitops.reconcile.loop import apply_and_report
    from mlflow_gitops.render import json as render_json
    from mlflow_gitops.render import text as render_text

    request = ApplyRequest(
        target, tracking_uri, _now, commit, actor, pr, parallelism, tuple(registry or ()),
        tuple(model or ()),
    )  # fmt: skip
    status = Status()

    def show(planned: PlanOutcome) -> None:  # before any write, so a refused apply shows it too
        status.done()
        if fmt is Format.text:
            emit(_render_plan(planned.tree, Format.text, target, no_color))

    def result(outcome: ApplyOutcome) -> None:  # before GitHub is told
        if fmt is Format.json:
            emit(render_json.render_apply(outcome))
        else:
            emit(render_text.render_apply(outcome, color=color(no_color)))

    with status:
        done = apply_and_report(request, status, show, result, lambda line: emit(line, err=True))
    code = exit_code(done.outcome.plan, failed=not done.outcome.ok)
    return EXIT_ERROR if code == EXIT_OK and not done.told else code  # a result nobody sees


@app.command("import")
def import_(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    aliases_from_stages: Annotated[
        bool,
        typer.Option(
            "--aliases-from-stages",
            help="Describe stages as aliases (Production: champion, Staging: challenger) and "
            "declare no stage: the file for a team moving off deprecated stages.",
        ),
    ] = False,
    tracking_uri: UriOpt = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="Write a tree for the root file's registries: registries/<name>.yaml per "
            "registry (each read once), and print the include: lines the root needs.",
        ),
    ] = False,
    root: Annotated[
        Path, typer.Option("--root", help="With --tree: the root file that names registries:.")
    ] = Path("registry.yaml"),
    split: Annotated[
        bool,
        typer.Option("--split", help="With --tree: one file per model, <registry>/<model>.yaml."),
    ] = False,
    registry: Annotated[
        list[str] | None,
        typer.Option("--registry", "-r", help="With --tree: only this registry (repeatable)."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", help="With --tree: write here (default: registries/ next to the root)."
        ),
    ] = None,
) -> None:
    """Print (or write) a registry.yaml that describes the live registry; plan on it is empty.
    With --tree, write a file per registry of the root (or per model) instead."""
    from mlflow_gitops.importer import ImportTreeOutcome
    from mlflow_gitops.reconcile import importing
    from mlflow_gitops.render.text import render_import_tree

    mapping = importing.STAGES_AS_ALIASES if aliases_from_stages else None
    request = importing.ImportRequest(
        _now(), tuple(model or ()), out, tracking_uri, mapping, tree, root, split,
        tuple(registry or ()), out_dir,
    )  # fmt: skip
    imported = importing.import_request(request)
    if isinstance(imported, ImportTreeOutcome):
        emit(render_import_tree(str(root), imported), err=True)
    elif out is None:
        emit(imported.text, verbatim=True)  # the registry's data exactly, as --out writes it
    else:
        emit(f"Wrote {imported.models} models to {out}.\n", err=True)


# --- comment: the plan on a GitHub pull request ----------------------------------------------------


@app.command()
def comment(
    file: FileArg = Path("registry.yaml"),
    detailed_exitcode: DetailedOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the full comment to this file.")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="Registry URI; default: $MLFLOW_TRACKING_URI, then the file's tracking_uri "
            "(never a local default: without one, the comment says so and the check fails).",
        ),
    ] = None,
    registry: RegistryOpt = None,
    model: ModelOpt = None,
) -> int:
    """In a pull_request job: plan, write the plan to the job summary, and post it as the pull
    request's one comment (updated in place). An invalid file or an unreachable registry is
    posted too, and exits 1. Needs GITHUB_TOKEN; never falls back to sqlite:///mlflow.db."""
    from mlflow_gitops.github import body as bodies
    from mlflow_gitops.github.context import actions_context
    from mlflow_gitops.github.publish import Outcome
    from mlflow_gitops.reconcile.comment import CommentRequest, comment_request

    actions = actions_context()
    request = CommentRequest(
        file, tracking_uri, actions, _now(), tuple(registry or ()), tuple(model or ()), out
    )

    def show(outcome: Outcome) -> None:  # before GitHub is asked, so the job log has it
        out, err = bodies.job_log(outcome.body, outcome.error, actions.active)
        emit(out)
        emit(err, err=True)

    done = comment_request(request, show)
    published = done.published
    emit((published.note or f"comment {published.action}: {published.url}") + "\n", err=True)
    if done.outcome.error is not None or done.outcome.plan is None:
        return EXIT_ERROR
    return exit_code(done.outcome.plan, detailed=detailed_exitcode)


# --- lifecycle: propose, history, rollback --------------------------------------------------------


@app.command()
def propose(
    model: Annotated[str, typer.Argument(help="Registered model to add the run to.")],
    experiment: Annotated[str, typer.Option(help="Experiment whose runs to rank.")],
    filter_: Annotated[
        str, typer.Option("--filter", help='MLflow search filter, e.g. "metrics.rmse < 7".')
    ] = "",
    order_by: Annotated[
        str, typer.Option("--order-by", help='MLflow order, e.g. "metrics.rmse ASC".')
    ] = "metrics.rmse ASC",
    stage: Annotated[
        str | None, typer.Option(help="Stage to declare for the new version (e.g. Staging).")
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Add this run instead of the best.")
    ] = None,
    max_results: Annotated[int, typer.Option(min=1, max=1000, help="Runs to show.")] = 5,
    file: EditedFileOpt = Path("registry.yaml"),
    tracking_uri: UriOpt = None,
) -> None:
    """Show the best runs of an experiment and add one to registry.yaml (comments kept)."""
    from mlflow_gitops.reconcile.lifecycle import ProposeRequest, Ranked, propose_request
    from mlflow_gitops.render.text import render_runs

    def show(ranked: Ranked) -> None:  # before the file is edited, so a refusal shows them too
        table = render_runs(ranked.runs, ranked.order_by, ranked.registered)
        emit(f"Best runs of {ranked.experiment} ({ranked.order_by or 'unordered'}):\n{table}")

    request = ProposeRequest(
        model, experiment, file, filter_, order_by, stage, run, max_results, tracking_uri
    )
    edit = propose_request(request, show)
    emit(f"\n{edit.summary}:\n{edit.diff}")


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="Registered model.")],
    version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="text, markdown or json.")
    ] = Format.text,
    file: Annotated[
        Path, typer.Option("--file", help="registry.yaml, for its tracking_uri (optional).")
    ] = Path("registry.yaml"),
    tracking_uri: UriOpt = None,
) -> None:
    """The promotion history of a model, newest first: when, what, commit, PR, actor, gate."""
    from mlflow_gitops.reconcile.lifecycle import HistoryRequest, history_request
    from mlflow_gitops.render import json, markdown, text

    found = history_request(HistoryRequest(model, file, version, tracking_uri))
    shown = {Format.text: text, Format.markdown: markdown, Format.json: json}[fmt]
    emit(shown.render_history(model, found))


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Registered model to roll back.")],
    file: EditedFileOpt = Path("registry.yaml"),
    tracking_uri: UriOpt = None,
) -> None:
    """Edit registry.yaml so Production goes back to its previous holder (open a PR with it)."""
    from mlflow_gitops.reconcile.lifecycle import RollbackRequest, rollback_request

    edit = rollback_request(RollbackRequest(model, file, tracking_uri))
    emit(f"{edit.summary}:\n{edit.diff}")


@app.command()
def relay(
    repository: Annotated[
        str | None,
        typer.Option(
            help="OWNER/NAME to send repository_dispatch to (default: $GITHUB_REPOSITORY)."
        ),
    ] = None,
    secret_env: Annotated[
        str, typer.Option(help="The variable holding the webhook's secret (its secret_env).")
    ] = "MLFLOW_WEBHOOK_SECRET",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    journal: Annotated[
        Path, typer.Option(help="The on-disk queue (JSON lines); keep it across restarts.")
    ] = Path("mlflow-gitops-relay.jsonl"),
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds an event waits for the tool's own record.")
    ] = 10.0,
    max_body: Annotated[int, typer.Option(min=1, help="Largest delivery accepted, in bytes.")] = (
        1_048_576
    ),
    retry_for: Annotated[
        float, typer.Option(min=0, help="Seconds a dispatch is retried before it is given up.")
    ] = 3600.0,
) -> None:
    """Turn MLflow's signed registry events into GitHub repository_dispatch events
    (mlflow-registry-event) that start the drift workflow; the GitHub token is GITHUB_TOKEN."""
    from mlflow_gitops.relay.command import serve_command

    raise typer.Exit(
        serve_command(
            repository=repository,
            secret_env=secret_env,
            journal=journal,
            host=host,
            port=port,
            settle=settle,
            max_body=max_body,
            retry_for=retry_for,
        )
    )


# --- helpers ---------------------------------------------------------------------------------------


def _render_plan(tree: TreePlan, fmt: Format, file: Path, no_color: bool) -> str:
    """The plan in the format asked for (a file without registries: reads as it always did)."""
    from mlflow_gitops.render import json, markdown, text

    if fmt is Format.json:
        return json.render_tree(tree, file=str(file))
    if fmt is Format.markdown:
        return markdown.render_tree(tree, by_file=False)
    return text.render_tree(tree, color=color(no_color), file=str(file))


def _now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: one error funnel turns every failure into a message and an exit code."""
    _Debug.on = False
    try:
        # without standalone mode typer returns the code of a typer.Exit instead of raising it
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        emit("interrupted\n", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as exc:  # usage errors: never 2 or 3, those mean something else
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":
            emit(message + "\n")
            sys.exit(EXIT_OK)
        emit(f"error: {message}\n  hint: see `mlflow-gitops --help`\n", err=True)
        sys.exit(EXIT_ERROR)
    except GitopsError as exc:
        emit(exc.render() + "\n", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        emit("interrupted: the registry holds what was applied so far; run apply again\n", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        emit(bug_report(exc, _Debug.on), err=True)
        sys.exit(EXIT_BUG)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def run() -> NoReturn:
    """The `mlflow-gitops` command (and `python -m mlflow_gitops`): main() in a process of its
    own. What the process builds lives as long as it does (MLflow's modules, the file's tree,
    the registry's state), so the collector runs less often than Python's default, which
    rescans all of it every 700 allocations (a third of a second of a 20,000-version plan), and
    it is frozen before the interpreter's teardown scans it once more (docs/performance.md,
    section 1a). Tests call main() in their own process and keep Python's defaults."""
    gc.set_threshold(50_000, 10, 10)
    try:
        main()
    finally:
        gc.freeze()
