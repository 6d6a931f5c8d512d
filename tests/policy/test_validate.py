"""Bad policies are located errors at `validate` (file:line:col, the expression's own message),
which still never imports mlflow; a policies: outside the root file is an error too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

ROOT = Path(__file__).parents[2]


def _write(tmp_path: Path, text: str, name: str = "registry.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_bad_policies_are_located_with_the_expressions_own_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        policies:
          - name: needs-platform
            if: change.stage == "Production"
            require: pr.approvals.exists(a, "ml-platform" in a.teams) &&& true
            message: needs ml-platform
          - name: typo
            require: "size(pr.aprovals) > 0 && reviewer == 1"
            message: x
          - name: typo
            if: change.stage ==
            require: "true"
            message: x
        models: {}
        """,
    )

    result = run_cli(capsys, "validate", str(path))

    assert result.code == 1
    lines = [line for line in result.err.splitlines() if not line.startswith("    hint")]
    assert lines == [
        f"{path}:5:65: policies[0].require: syntax error: unexpected '&' (at 1:52 of the "
        "expression)",
        f"{path}:8:40: policies[1].require: unknown name 'reviewer': a rule sees change, pr, "
        "plan, now (at 1:26 of the expression)",
        f"{path}:10:5: policies[2].name: policy 'typo' is declared twice (first as policies[1])",
        f"{path}:11:22: policies[2].if: syntax error: the expression ends too early (at 1:14 of "
        "the expression)",
        "error: 4 problems in registry file",
    ]
    assert "CEL over change, pr, plan and now" in result.err  # the hint


def test_a_rule_without_its_message_or_with_a_bad_name_is_a_schema_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        policies:
          - name: no-message
            require: "true"
          - {name: "bad name!", require: "true", message: x, when: "true"}
        models: {}
        """,
    )

    result = run_cli(capsys, "validate", str(path))

    assert result.code == 1
    assert f"{path}:3:5: policies[0].message: missing required key 'message'" in result.err
    assert f"{path}:5:6: policies[1].name: String should match pattern" in result.err
    assert "policies[1].when: unknown key 'when'" in result.err


def test_validate_with_policies_never_imports_mlflow(tmp_path: Path) -> None:
    example = ROOT / "examples" / "policies" / "registry.yaml"
    code = (
        "import sys\n"
        "from mlflow_gitops.cli import main\n"
        "try:\n"
        f"    main(['validate', {str(example)!r}])\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        "print('MLFLOW:', sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
        "print('CEL:', 'celpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "valid (1 models" in out
    assert "EXIT 0" in out or "EXIT None" in out
    assert "MLFLOW: []" in out
    assert "CEL: True" in out  # the rules were compiled, so their errors are found offline


def test_a_file_without_policies_does_not_load_cel(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nmodels:\n  m: {}\n")
    code = (
        "import sys\n"
        "from mlflow_gitops.spec.tree import load_tree\n"
        f"load_tree({str(path)!r})\n"
        "print('CEL:', 'celpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "CEL: False" in out


def test_policies_belong_in_the_root_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "teams").mkdir()
    _write(
        tmp_path,
        """\
        version: 1
        policies:
          - {name: ok, require: "true", message: x}
        """,
        "teams/a.yaml",
    )
    root = _write(tmp_path, "version: 1\ninclude: [teams/*.yaml]\nmodels: {}\n")

    result = run_cli(capsys, "validate", str(root))

    assert result.code == 1
    assert "teams/a.yaml:2:1: policies: policies: belongs in the root file" in result.err
