"""The command line: each command parses, calls one function, renders and returns an exit code.

mlflow is imported lazily (through mlflow_gitops.reconcile.open_registry) so that `validate`,
`schema` and `--help` start fast and work without a registry.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mlflow_gitops.errors import GitopsError
from mlflow_gitops.secrets import redact

if TYPE_CHECKING:
    from mlflow_gitops.plan.changes import Plan
    from mlflow_gitops.reconcile import ApplyOutcome, PlanOutcome, RegistryResult

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BLOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="mlflow-gitops",
    help="GitOps for the MLflow Model Registry: keep stages, aliases, tags and descriptions in "
    "registry.yaml; plan shows the difference, apply makes it so.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


def _color(no_color: bool) -> bool:
    return (
        not no_color
        and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ
        and not os.environ.get("CI")
    )


class _Status:
    """A one-line progress display on stderr while long work runs (terminals only)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty() and not os.environ.get("CI")

    def __call__(self, text: str) -> None:
        if self.live:
            sys.stderr.write("\r\033[K" + redact(text))
            sys.stderr.flush()

    def done(self) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


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
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none."),
    ] = False,
    tracking_uri: UriOpt = None,
    registry: RegistryOpt = None,
    model: ModelOpt = None,
    no_color: NoColorOpt = False,
) -> int:
    """Read the registries, compute the difference with the files, and show it."""
    from mlflow_gitops.reconcile import PlanRequest, plan_request

    request = PlanRequest(
        file, tracking_uri, _now(), out, registries=tuple(registry or ()), models=tuple(model or ())
    )
    with _Status() as status:
        outcome = plan_request(request, status)
    emit(_render_outcome(outcome, fmt, file, no_color))
    if out is not None:
        emit(f"Saved the plan to {out}; apply it with `mlflow-gitops apply {out}`.\n", err=True)
    return _exit_code(outcome.plan, detailed=detailed_exitcode)


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
    """Apply the file (plan, then apply) or a saved plan (refused when the registry changed)."""
    from mlflow_gitops.reconcile import ApplyRequest, apply_request
    from mlflow_gitops.render import json as render_json
    from mlflow_gitops.render import text as render_text

    status = _Status()

    def show(planned: PlanOutcome) -> None:  # before any write, so a refused apply shows it too
        status.done()
        if fmt is Format.text:
            emit(_render_outcome(planned, Format.text, target, no_color))

    from mlflow_gitops.github import loop as pull_loop

    loop = pull_loop.start(target, _now)  # the merged pull request, its policies' verdicts
    request = ApplyRequest(
        target,
        tracking_uri,
        _now,
        commit,
        actor,
        pr if pr is not None else loop.pr,
        parallelism,
        registries=tuple(registry or ()),
        models=tuple(model or ()),
        judge=loop.judge,
    )
    with status:
        try:
            outcome = apply_request(request, status, show)
        except GitopsError as exc:  # refused before any change: the pull request says so too
            loop.refused(exc, lambda line: emit(line, err=True))
            raise
    if len(outcome.registries) > 1:
        emit(_render_results(outcome, fmt, no_color))
    elif outcome.result is not None:
        emit(
            render_json.render_result(outcome.result)
            if fmt is Format.json
            else "\n" + render_text.render_result(outcome.result, color=_color(no_color))
        )
    code = _exit_code(outcome.plan, failed=not outcome.ok)
    return loop.finish(outcome, code, lambda line: emit(line, err=True))


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
    from mlflow_gitops.importer import render_registry

    mapping = {"Production": "champion", "Staging": "challenger"} if aliases_from_stages else None
    if tree:
        if out is not None:
            raise GitopsError("--out writes one file; --tree writes several", "use --out-dir")
        _import_tree(root, registry or [], model or [], split, out_dir, tracking_uri, mapping)
        return
    if split or registry or out_dir is not None:
        raise GitopsError(
            "--split, --registry and --out-dir need --tree",
            "add --tree (and --root if the root is not ./registry.yaml)",
        )
    from mlflow_gitops.reconcile import connect, read_models

    uri, reg = connect(tracking_uri, None, out.resolve().parent if out else Path.cwd())
    state = read_models(reg, uri, model or None)
    text = render_registry(state, redact(uri), _now(), mapping)
    if out is None:
        emit(text, verbatim=True)  # the registry's data exactly, as --out writes it
    else:
        out.write_text(text, encoding="utf-8")
        emit(f"Wrote {len(state.models)} models to {out}.\n", err=True)


def _import_tree(
    root: Path,
    registries: list[str],
    models: list[str],
    split: bool,
    out_dir: Path | None,
    tracking_uri: str | None,
    mapping: dict[str, str] | None,
) -> None:
    """Write the files reconcile.import_tree makes of the selected registries, and say what the
    root still needs."""
    from mlflow_gitops.reconcile import ImportTreeRequest, import_tree

    request = ImportTreeRequest(
        root, _now(), tuple(registries), tuple(models), split, out_dir, tracking_uri, mapping
    )
    outcome = import_tree(request)
    for note in outcome.notes:
        emit(f"{note}\n", err=True)
    for file in outcome.files:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        file.path.write_text(file.text, encoding="utf-8")
    count = sum(len(f.models) for f in outcome.files)
    emit(f"Wrote {count} models in {len(outcome.files)} files under {outcome.folder}.\n", err=True)
    if outcome.missing_patterns:
        lines = "".join(f"  - {p}\n" for p in outcome.missing_patterns)
        emit(f"Add to the include: of {root}:\ninclude:\n{lines}", err=True)
    else:
        emit(f"{root} already includes them.\n", err=True)


# --- comment: the plan on a GitHub pull request ----------------------------------------------------


@app.command()
def comment(
    file: FileArg = Path("registry.yaml"),
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none."),
    ] = False,
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
    from mlflow_gitops.errors import SpecError
    from mlflow_gitops.github import body as bodies
    from mlflow_gitops.github.context import actions_context
    from mlflow_gitops.github.loop import with_policies
    from mlflow_gitops.github.publish import plan_for_comment, publish

    actions = actions_context()
    outcome = plan_for_comment(
        file,
        tracking_uri,
        actions,
        _now(),
        registries=tuple(registry or ()),
        models=tuple(model or ()),
    )
    outcome = with_policies(outcome, file, actions, _now())  # per change: rules met, lacking
    emit(bodies.inert(outcome.body) if actions.active else outcome.body)
    if isinstance(outcome.error, SpecError) and actions.active:
        emit("".join(line + "\n" for line in bodies.error_annotations(outcome.error.issues)))
    if outcome.error is not None:
        emit(outcome.error.render() + "\n", err=True)
    published = publish(outcome, file, actions, out)
    emit((published.note or f"comment {published.action}: {published.url}") + "\n", err=True)
    if outcome.error is not None or outcome.plan is None:
        return EXIT_ERROR
    return _exit_code(outcome.plan, detailed=detailed_exitcode)


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
    file: Annotated[Path, typer.Option("--file", help="The registry file to edit.")] = Path(
        "registry.yaml"
    ),
    tracking_uri: UriOpt = None,
) -> None:
    """Show the best runs of an experiment and add one to registry.yaml (comments kept)."""
    from mlflow_gitops.propose import propose as add_run
    from mlflow_gitops.propose import registered_versions, runs_table
    from mlflow_gitops.reconcile import connect, file_tracking_uri
    from mlflow_gitops.spec.load import read_text
    from mlflow_gitops.spec.model import canonical_stage

    text = read_text(file)
    _, registry = connect(tracking_uri, file_tracking_uri(text), file.resolve().parent)
    runs = registry.search_runs(experiment, filter_, [order_by] if order_by else [], max_results)
    if not runs:
        raise GitopsError(f"no run of {experiment!r} matches the filter {filter_!r}", "")
    # one read of the model tells every run's versions (never one call per run)
    live = registry.read([model]).models.get(model)
    registered = registered_versions(live, [r.run_id for r in runs])
    emit(
        f"Best runs of {experiment} ({order_by or 'unordered'}):\n"
        + runs_table(runs, order_by, registered)
    )
    chosen = run or runs[0].run_id
    edit = add_run(text, file, model, chosen, str(canonical_stage(stage)) if stage else None, live)
    file.write_text(edit.text, encoding="utf-8")
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
    from mlflow_gitops import history as hist
    from mlflow_gitops.reconcile import connect, file_tracking_uri, read_models

    text = file.read_text(encoding="utf-8") if file.exists() else ""
    uri, registry = connect(tracking_uri, file_tracking_uri(text), file.resolve().parent)
    state = read_models(registry, uri, [model]).models[model]
    found = hist.events(state, version, registry.read_records([model])[model])
    render = {
        Format.text: hist.render_text,
        Format.markdown: hist.render_markdown,
        Format.json: hist.render_json,
    }
    emit(render[fmt](model, found))


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Registered model to roll back.")],
    file: Annotated[Path, typer.Option("--file", help="The registry file to edit.")] = Path(
        "registry.yaml"
    ),
    tracking_uri: UriOpt = None,
) -> None:
    """Edit registry.yaml so Production goes back to its previous holder (open a PR with it)."""
    from mlflow_gitops.propose import rollback as roll_back
    from mlflow_gitops.reconcile import connect, file_tracking_uri, read_models
    from mlflow_gitops.spec.load import read_text

    text = read_text(file)
    uri, registry = connect(tracking_uri, file_tracking_uri(text), file.resolve().parent)
    state = read_models(registry, uri, [model]).models[model]
    edit = roll_back(text, file, model, state, registry.read_records([model])[model])
    file.write_text(edit.text, encoding="utf-8")
    emit(f"{edit.summary}:\n{edit.diff}")


# --- helpers ---------------------------------------------------------------------------------------


def _exit_code(plan_: Plan, *, failed: bool = False, detailed: bool = False) -> int:
    """1 when something failed, 3 when a gate or policy blocked, 2 for pending changes when
    asked (--detailed-exitcode), else 0."""
    if failed:
        return EXIT_ERROR
    if plan_.blocked:
        return EXIT_BLOCKED
    return EXIT_CHANGES if detailed and not plan_.is_empty else EXIT_OK


def _render_outcome(outcome: PlanOutcome, fmt: Format, file: Path, no_color: bool) -> str:
    """A file without registries: (and no selection) renders as it always did; a tree by
    registry, then by file."""
    from mlflow_gitops.render import json as render_json
    from mlflow_gitops.render import markdown as render_markdown
    from mlflow_gitops.render import text as render_text
    from mlflow_gitops.spec.model import DEFAULT_REGISTRY

    tree = outcome.tree
    if (
        len(tree.registries) == 1
        and tree.registries[0].registry == DEFAULT_REGISTRY
        and not tree.partial
    ):
        return _render_plan(outcome.plan, fmt, outcome.uri, file, no_color)
    if fmt is Format.json:
        return render_json.render_tree(tree, file=str(file))
    if fmt is Format.markdown:
        return render_markdown.render_tree(tree)
    return render_text.render_tree(tree, color=_color(no_color), header=f"Tree {file}")


def _render_results(outcome: ApplyOutcome, fmt: Format, no_color: bool) -> str:
    """Each registry's result, in apply order: applied, nothing to do, or not applied because
    an earlier registry failed."""
    import json

    from mlflow_gitops.render import json as render_json
    from mlflow_gitops.render import text as render_text

    if fmt is Format.json:
        data = {
            "schema_version": 1,
            "ok": outcome.ok,
            "registries": [
                {
                    "registry": r.name,
                    "status": status,
                    "result": json.loads(render_json.render_result(r.result)) if r.result else None,
                }
                for r, status in _statuses(outcome)
            ],
        }
        return json.dumps(data, indent=2) + "\n"
    lines = []
    for r, status in _statuses(outcome):
        lines.append(f"\nRegistry {r.name} ({redact(r.uri)}): {status}")
        if r.result is not None:
            lines.append(render_text.render_result(r.result, color=_color(no_color)).rstrip())
    return "\n".join(lines) + "\n"


def _statuses(outcome: ApplyOutcome) -> list[tuple[RegistryResult, str]]:
    out = []
    for r in outcome.registries:
        if r.skipped:
            status = "NOT APPLIED: an earlier registry failed; nothing was changed here"
        elif r.result is None:
            status = "no changes"
        elif r.result.ok:
            status = "applied"
        else:
            status = "FAILED (below: what was applied and what was not)"
        out.append((r, status))
    return out


def _render_plan(plan_: Plan, fmt: Format, uri: str, file: Path, no_color: bool) -> str:
    from mlflow_gitops.render import json as render_json
    from mlflow_gitops.render import markdown as render_markdown
    from mlflow_gitops.render import text as render_text

    if fmt is Format.json:
        return render_json.render_plan(plan_, tracking_uri=redact(uri), file=str(file))
    if fmt is Format.markdown:
        return render_markdown.render_plan(plan_)
    header = f"Registry {redact(uri)}, file {file}"
    return render_text.render_plan(plan_, color=_color(no_color), header=header)


def _now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: one error funnel turns every failure into a message and an exit code."""
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
        debug = os.environ.get("MLFLOW_GITOPS_DEBUG")
        detail = "".join(traceback.format_exception(exc)) if debug else ""
        emit(
            f"error: unexpected {type(exc).__name__}: {exc}\n{detail}"
            "  this is a bug in mlflow-gitops; please report it with the command you ran "
            "(set MLFLOW_GITOPS_DEBUG=1 for the traceback)\n",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
