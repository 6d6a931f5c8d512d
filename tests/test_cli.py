"""The command layer: help for everything, exit codes, and no mlflow on the offline paths."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mlflow_gitops.cli import app
from tests.cli_runner import run_cli, run_process
from tests.helpers import write_spec

GOOD = "version: 1\nmodels:\n  m:\n    versions:\n      - {version: 1, stage: Production}\n"


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_and_option_has_help(name: str) -> None:
    command = _commands()[name]
    assert command.help, f"{name} has no help"
    for param in command.params:
        if param.param_type_name == "option":
            assert param.help, f"{name} {param.opts} has no help"


def test_offline_paths_never_import_mlflow(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, GOOD)
    probe = (
        "import sys\n"
        "from mlflow_gitops.cli import main\n"
        "try:\n"
        f"    main({['validate', str(spec)]!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "for argv in (['schema'], ['--help'], ['plan', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.'))\n"
        "print('MLFLOW:', loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert "MLFLOW: []" in proc.stderr, proc.stderr[-2000:]


def _crash(*_: object) -> None:
    raise ZeroDivisionError("division by zero in the loader")


@pytest.mark.parametrize("asked", ["", "--debug", "MLFLOW_GITOPS_DEBUG=1"])
def test_a_bug_exits_70_with_one_line_and_the_traceback_only_when_asked(
    asked: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlflow_gitops.spec.tree.load_tree", _crash)  # a bug, planted
    monkeypatch.delenv("MLFLOW_GITOPS_DEBUG", raising=False)
    if asked.startswith("MLFLOW_GITOPS_DEBUG"):
        monkeypatch.setenv("MLFLOW_GITOPS_DEBUG", "1")
    flags = ["--debug"] if asked == "--debug" else []
    result = run_cli(capsys, *flags, "validate", str(write_spec(tmp_path, GOOD)))
    assert result.code == 70, result
    assert result.out == ""
    assert "this is a bug in mlflow-gitops; please report it" in result.err
    if asked:
        assert "Traceback (most recent call last)" in result.err
        assert "ZeroDivisionError: division by zero in the loader" in result.err
    else:
        assert result.err.count("\n") == 1, result.err
        assert "unexpected ZeroDivisionError: division by zero in the loader" in result.err
        assert "--debug" in result.err
        assert "Traceback" not in result.err


def test_a_known_error_is_not_a_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--debug", "validate", str(tmp_path / "missing.yaml"))
    assert result.code == 1
    assert "file not found" in result.err
    assert "Traceback" not in result.err
    assert "this is a bug" not in result.err


def test_validate_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = run_cli(capsys, "validate", str(write_spec(tmp_path, GOOD)))
    assert good.code == 0
    assert "valid (1 models, 1 version entries)" in good.out
    bad = run_cli(
        capsys, "validate", str(write_spec(tmp_path, "version: 1\nmodel: {}\n", "bad.yaml"))
    )
    assert bad.code == 1
    assert "bad.yaml:2:1: model: unknown key 'model'" in bad.err
    assert "did you mean 'models'?" in bad.err


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "schema")
    assert result.code == 0
    assert json.loads(result.out)["title"].startswith("mlflow-gitops registry.yaml")


@pytest.mark.parametrize(
    "args",
    [["plan", "--format", "yaml"], ["no-such-command"], ["apply", "--parallelism", "0"]],
)
def test_usage_errors_exit_1_not_2_or_3(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, *args)
    assert result.code == 1
    assert "error:" in result.err


def test_default_file_is_registry_yaml_in_the_current_folder(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD)
    result = run_process("validate", cwd=tmp_path)
    assert result.code == 0, result.err
    missing = run_process("validate", cwd=tmp_path / "..")
    assert missing.code == 1
    assert "file not found" in missing.err


REGISTRY_COMMANDS = {
    "plan": ["plan"],
    "apply": ["apply"],
    "apply a saved plan": ["apply", "plan.json"],
    "import": ["import"],
    "import a model": ["import", "--model", "m"],
    "history": ["history", "m"],
    "rollback": ["rollback", "m"],
    "propose": ["propose", "m", "--experiment", "trips"],
    "comment": ["comment"],
}


@pytest.mark.parametrize("command", sorted(REGISTRY_COMMANDS))
def test_an_unreachable_registry_is_one_message_for_every_command(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow_gitops.plan.changes import Plan
    from mlflow_gitops.reconcile import save_plan
    from tests.servers import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, GOOD)
    down = f"http://127.0.0.1:{free_port()}"
    # a saved plan made against that registry: applying it re-reads the model it saw
    save_plan(Plan(observed={"m": "digest"}), tmp_path / "plan.json", down, spec, datetime.now(UTC))
    result = run_cli(capsys, *REGISTRY_COMMANDS[command], "--tracking-uri", down)
    assert result.code == 1, result
    assert "the registry is unreachable" in result.err
    assert "this is a bug" not in result.err
