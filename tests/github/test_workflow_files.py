"""The workflows and the action as files: triggers, permissions, pins, concurrency, and the
plan check's exit-code policy, run through the real steps with a stand-in for the tool."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_gitops.spec.tree import load_tree
from tests.cli_runner import run_cli
from tests.github.harness import ROOT, make_runner, pull_request_event

WORKFLOWS = ROOT / ".github" / "workflows"
PLAN_YML, APPLY_YML, ACTION = WORKFLOWS / "plan.yml", WORKFLOWS / "apply.yml", ROOT / "action.yml"


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True
    return {("on" if k is True else k): v for k, v in data.items()}


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _strings(value, f"{path}[{n}]")
    elif isinstance(node, str):
        yield path, node


def test_plan_runs_on_pull_request_only_with_the_least_permissions() -> None:
    plan = _load(PLAN_YML)
    assert set(plan["on"]) == {"pull_request"}
    assert "registry.yaml" in plan["on"]["pull_request"]["paths"]
    assert plan["permissions"] == {}
    (job,) = plan["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_apply_runs_after_merge_one_at_a_time_in_an_environment() -> None:
    apply = _load(APPLY_YML)
    assert apply["on"]["push"]["branches"] == ["main"]
    assert "registry.yaml" in apply["on"]["push"]["paths"]
    assert "pull_request" not in apply["on"]
    assert apply["concurrency"]["cancel-in-progress"] is False
    assert "${{" not in apply["concurrency"]["group"]  # one group for the whole repository
    assert apply["permissions"] == {}
    (job,) = apply["jobs"].values()
    # the merged pull request's comment, the commit status and a deployment per registry
    assert job["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "statuses": "write",
        "deployments": "write",
    }
    (step,) = [s for s in job["steps"] if "mlflow-gitops apply" in s.get("run", "")]
    assert step["env"]["GITHUB_TOKEN"] == "${{ github.token }}"  # GitHub passes none by itself
    assert job["environment"]


@pytest.mark.parametrize("path", [*sorted(WORKFLOWS.glob("*.yml")), ACTION], ids=lambda p: p.name)
def test_actions_are_pinned_and_secrets_only_reach_env(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "pull_request_target" not in text.replace("never pull_request_target", "")
    for where, value in _strings(_load(path)):
        if where.endswith(".uses"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", value), f"{where}: {value}"
        if re.search(r"\$\{\{\s*secrets\.", value):
            assert re.search(r"\.(env\.\w+|with\.tracking-uri)$", where), where
        if where.endswith(".run"):
            assert "${{" not in value, f"{where}: expressions in scripts invite injection"


@pytest.mark.parametrize(("code", "passes"), [(0, True), (1, False), (2, True), (3, False)])
@pytest.mark.parametrize("source", ["plan.yml", "action.yml"])
def test_the_plan_check_passes_on_0_and_2_and_fails_on_1_and_3(
    tmp_path: Path, code: int, passes: bool, source: str
) -> None:
    stub = tmp_path / "bin"
    stub.mkdir()
    tool = stub / "mlflow-gitops"
    tool.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\nexit {code}\n', encoding="utf-8")
    tool.chmod(0o755)
    runner = make_runner(tmp_path, pull_request_event(), {"MLFLOW_TRACKING_URI": "x"})
    runner.env["PATH"] = f"{stub}:{runner.env['PATH']}"

    if source == "plan.yml":
        job = runner.run_job(PLAN_YML, "plan")
    else:
        job = runner.run_action(ACTION, {"command": "plan"}, {})

    assert job.ok is passes
    argv = (tmp_path / "argv").read_text(encoding="utf-8").split()
    assert argv[:3] == ["comment", "registry.yaml", "--detailed-exitcode"]


# --- the tree: the workflows trigger on every file of it, each registry has its own secrets ----

ORG = ROOT / "examples" / "org"  # laid out as a repository of its own: its root is the repo's


def _github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern as a regex: `*` stays within a folder, `**` crosses folders."""
    out = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern):
        if part in ("**", "**/"):
            out += ".*"
        elif part == "*":
            out += "[^/]*"
        elif part == "?":
            out += "[^/]"
        else:
            out += re.escape(part)
    return re.compile(out)


def uncovered(paths: list[str], filters: list[str]) -> list[str]:
    """The paths that none of the workflow's path filters match."""
    return [p for p in paths if not any(_github_glob(f).fullmatch(p) for f in filters)]


def _tree_paths(root: Path) -> list[str]:
    """Every file of the tree, relative to the root's folder, and for every include: pattern a
    file a new team would add (each `*` a new name), so the filters cover more than today."""
    tree = load_tree(root)
    paths = [str(f.path.relative_to(root.parent.resolve())) for f in tree.all_files]
    for pattern in tree.root.spec.include or []:
        paths.append(pattern.replace("**", "new/deeper").replace("*", "new-team"))
    return paths


@pytest.mark.parametrize("workflow", [PLAN_YML, APPLY_YML], ids=lambda p: p.name)
def test_every_file_of_the_example_tree_triggers_the_workflow(workflow: Path) -> None:
    (event,) = {"pull_request"} if workflow == PLAN_YML else {"push"}
    filters = _load(workflow)["on"][event]["paths"]
    paths = _tree_paths(ORG / "registry.yaml")
    assert "teams/rides/prod.yaml" in paths
    assert "teams/new-team/new-team.yaml" in paths
    assert uncovered(paths, filters) == []
    # what import --tree writes, in both layouts
    assert uncovered(["registries/dev.yaml", "registries/prod/fraud.yaml"], filters) == []


def test_a_file_outside_the_filters_is_reported() -> None:
    filters = ["registry.yaml", "teams/**/*.yaml"]
    assert uncovered(["registry.yaml", "teams/a/b/c.yaml", "models/x.yaml"], filters) == [
        "models/x.yaml"
    ]
    assert uncovered(["teams/a.yml"], ["teams/*.yaml"]) == ["teams/a.yml"]
    assert uncovered(["teams/a/b.yaml"], ["teams/*.yaml"]) == ["teams/a/b.yaml"]


DRIFT_YML = WORKFLOWS / "drift.yml"
# every field of a registries: entry that names a variable
VARIABLE_FIELDS = (
    "tracking_uri_env",
    "registry_uri_env",
    "username_env",
    "password_env",
    "token_env",
    "host_env",
)


def example_variables() -> list[str]:
    """Every variable the example tree's registries name."""
    tree = load_tree(ORG / "registry.yaml")
    return [
        getattr(connection, key)
        for connection in tree.registries.values()
        for key in VARIABLE_FIELDS
        if getattr(connection, key) is not None
    ]


def test_the_example_names_a_databricks_registry_by_host_and_token() -> None:
    tree = load_tree(ORG / "registry.yaml")
    uc = tree.registries["uc"]
    assert (uc.tracking_uri, uc.registry_uri) == ("databricks://prod", "databricks-uc://prod")
    assert (uc.host_env, uc.token_env) == ("UC_DATABRICKS_HOST", "UC_DATABRICKS_TOKEN")
    assert len(example_variables()) == 7


@pytest.mark.parametrize("workflow", [PLAN_YML, APPLY_YML, DRIFT_YML], ids=lambda p: p.name)
def test_each_registry_of_the_example_reads_its_own_secrets(workflow: Path) -> None:
    env = {
        name: value
        for job in _load(workflow)["jobs"].values()
        for step in job["steps"]
        if "mlflow-gitops " in step.get("run", "")
        for name, value in step.get("env", {}).items()
    }
    for name in [*example_variables(), "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"]:
        assert env.get(name) == f"${{{{ secrets.{name} }}}}", f"{workflow.name}: {name}"


@pytest.mark.parametrize(
    ("source", "command"),
    [("plan.yml", "plan"), ("apply.yml", "apply"), ("action.yml", "plan"), ("action.yml", "apply")],
)
def test_every_variable_of_the_example_reaches_the_tool(
    tmp_path: Path, source: str, command: str
) -> None:
    # the real steps, with a stand-in for the tool that writes down the environment it got
    stub = tmp_path / "bin"
    stub.mkdir()
    tool = stub / "mlflow-gitops"
    tool.write_text(f"#!/bin/sh\nenv > {tmp_path}/env-$1\nexit 0\n", encoding="utf-8")
    tool.chmod(0o755)
    secrets = {name: f"secret-of-{name}" for name in example_variables()}
    runner = make_runner(tmp_path, pull_request_event(), secrets)
    runner.env["PATH"] = f"{stub}:{runner.env['PATH']}"
    (runner.workspace / "registry.yaml").write_text(
        (ORG / "registry.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    if source == "action.yml":
        # the step that uses the action passes them in its env:, as plan.yml's step does
        job = runner.run_action(ACTION, {"command": command}, secrets)
    else:
        job = runner.run_job(WORKFLOWS / source, command)
    tool_command = "comment" if command == "plan" else "apply"
    seen = dict(
        line.split("=", 1)
        for line in (tmp_path / f"env-{tool_command}").read_text(encoding="utf-8").splitlines()
        if "=" in line
    )
    for name, value in secrets.items():
        assert seen.get(name) == value, f"{source} {command}: {name}"
    assert job.ok or source == "apply.yml"  # apply.yml's later steps talk to GitHub


def test_the_example_tree_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "validate", str(ORG / "registry.yaml"))
    assert result.code == 0, result.err
    assert "valid (5 models, 6 version entries in 6 files)" in result.out
