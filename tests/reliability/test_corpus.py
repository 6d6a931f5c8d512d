"""Hostile and broken registry files: each is refused with file:line and a message, within a CPU
and memory budget, by `validate` and `apply` (exit 1), and the registry is not written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlflow_gitops.reconcile import connect
from tests.cli_runner import run_cli, run_process
from tests.reliability import load_worker
from tests.reliability.corpus_cases import Case, all_cases, runs_alone, standard_registry

CASES = all_cases()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Case name -> the file to load (generated cases are written to a temporary folder)."""
    folder = tmp_path_factory.mktemp("generated-corpus")
    return {case.name: case.materialize(folder) for case in CASES}


@pytest.fixture(scope="module")
def limited(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every case loaded in a child process under RLIMIT_AS and a per-file CPU budget."""
    by_file = {str(path): name for name, path in files.items()}
    stages = {case.name: case.stage for case in CASES}
    results = load_worker.run_limited(
        ((str(path), stages[name]) for name, path in files.items()),
        alone=[str(p) for n, p in files.items() if runs_alone(n)],
    )
    return {by_file[file]: record for file, record in results.items()}


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.name.removesuffix(".yaml"), marks=marks)


def _where(case: Case, file: Path) -> str:
    where = f"{file}:"
    if case.line is not None:
        where += f"{case.line}:" + (f"{case.column}:" if case.column else "")
    return where


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_the_corpus_is_big_enough() -> None:
    kinds = {case.name.split("-")[0] for case in CASES}
    assert len(CASES) >= 60
    assert {"syntax", "bytes", "duplicate", "unknown", "gate", "plan", "resource"} <= kinds


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_file_is_refused_with_a_location(
    case: Case,
    files: dict[str, Path],
    limited: dict[str, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = files[case.name]
    result = limited[case.name]
    # within budget (cpu_limit, memory_limit and killed are failures) and a SpecError, no crash
    assert result["outcome"] == "spec_error", result
    assert not result["imported_mlflow"], "the loader imported mlflow"
    assert result["writes"] == 0
    issues = result["issues"]
    assert issues
    for issue in issues:
        assert issue["line"] >= 1, issue
        assert issue["column"] >= 1, issue
        assert issue["message"].strip(), issue
    rendered = result["rendered"]
    assert rendered.startswith(f"{file}:"), rendered
    assert _where(case, file) in rendered, rendered
    assert case.message in rendered, rendered
    if case.path:
        assert case.path in [i["path"] for i in issues], rendered

    if not _encodable(rendered):
        # a lone surrogate: only a real stderr (errors="backslashreplace") can print it
        outcome = run_process("validate", str(file))
        assert outcome.code == 1, outcome
        assert _where(case, file) in outcome.err, outcome.err
        return

    # the CLI, in this process: exit 1 with the same location; the registry is not touched
    registry = standard_registry()
    before = dict(registry.models)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(connect, "open_registry", lambda uri: registry)
    commands = ["validate", "plan", "apply"]
    if case.stage == "plan":
        commands = ["plan", "apply"]  # validate is offline: it cannot see these
    elif case.name.startswith("resource-"):
        commands = []  # seconds of CPU each: the child process above is the check
    for command in commands:
        outcome = run_cli(capsys, command, str(file))
        assert outcome.code == 1, (command, outcome)
        assert _where(case, file) in outcome.err, (command, outcome.err)
        assert "Plan:" not in outcome.out
        assert "a bug in mlflow-gitops" not in outcome.err
    assert registry.writes == 0
    assert registry.models == before
    if case.stage == "load":
        assert registry.calls == [], "the registry was read although the file is invalid"


SAMPLE = [
    "syntax-tab-indented.yaml",
    "bytes-png.yaml",
    "generated-over-size-limit.yaml",
    "tag-key-reserved-prefix.yaml",
]


def test_a_sample_exits_1_from_a_real_process(files: dict[str, Path]) -> None:
    cases = {c.name: c for c in CASES}
    for name in SAMPLE:
        outcome = run_process("validate", str(files[name]))
        assert outcome.code == 1, outcome
        assert _where(cases[name], files[name]) in outcome.err, outcome.err
        assert "Traceback" not in outcome.err
        assert outcome.out == ""
