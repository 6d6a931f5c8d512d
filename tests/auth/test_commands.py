"""history, propose, rollback and comment need only READ on a basic-auth server: a READ user gets
the answer (exit code, output, the file edited where the command edits it) and the registry is
unchanged. On MLflow 3 and 2.22, but propose on MLflow 3 only: its runs are logged with a real
model, which on 2.22 takes the 2.22 venv's Python (log_regressor), without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.auth.harness import AuthServer
from tests.cli_runner import run_cli
from tests.github.fake_github import TOKEN, FakeGitHub, serve
from tests.github.harness import PR, REPOSITORY, make_runner, pull_request_event
from tests.helpers import write_spec
from tests.integration.mlflow_helpers import log_regressor

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# model() leaves v1 in Production by hand; alice's apply promotes v2, bob's puts v1 back
FIRST = "version: 1\nmodels:\n  {m}:\n    versions:\n      - version: 1\n        stage: Archived\n      - version: 2\n        stage: Production\n"  # fmt: skip
SECOND = "version: 1\nmodels:\n  {m}:\n    versions:\n      - version: 1\n        stage: Production\n      - version: 2\n        stage: Archived\n"  # fmt: skip


def _promoted(
    auth: AuthServer, folder: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, Path]:
    """A model the admin applied twice (alice: v2 Production, v1 Archived; bob: v1 Production,
    v2 Archived); the file as the second apply left it."""
    model = auth.model()
    file = write_spec(folder, FIRST.format(m=model))
    with auth.as_user("admin"):
        for who, commit in (("alice", "aaaaaaa1"), ("bob", "bbbbbbb2")):
            applied = run_cli(
                capsys, "apply", str(file), "--tracking-uri", auth.uri, "--actor", who,
                "--commit", commit,
            )  # fmt: skip
            assert applied.code == 0, applied
            file.write_text(SECOND.format(m=model), encoding="utf-8")
    return model, file


def test_a_read_user_reads_the_history(
    any_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, file = _promoted(any_auth_server, tmp_path, capsys)
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user("reader"):
        hist = run_cli(
            capsys, "history", model, "--tracking-uri", any_auth_server.uri, "--file", str(file)
        )
    assert hist.code == 0, hist
    lines = [line for line in hist.out.splitlines() if "->" in line]
    assert any(
        "v1" in line and "Archived -> Production" in line and "bob" in line for line in lines
    )
    assert any("v2" in line and "None -> Production" in line and "alice" in line for line in lines)
    assert "403" not in hist.err
    assert any_auth_server.snapshot(model) == before


def test_a_read_user_rolls_back_in_the_file_only(
    any_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, file = _promoted(any_auth_server, tmp_path, capsys)
    before = any_auth_server.snapshot(model)
    with any_auth_server.as_user("reader"):
        rolled = run_cli(
            capsys, "rollback", model, "--file", str(file), "--tracking-uri", any_auth_server.uri
        )
    assert rolled.code == 0, rolled
    assert "Production back to version 2" in rolled.out
    assert file.read_text() != SECOND.format(m=model)  # the file carries the rollback
    assert any_auth_server.snapshot(model) == before  # for a pull request to apply
    with any_auth_server.as_user("admin"):
        planned = run_cli(
            capsys, "plan", str(file), "--tracking-uri", any_auth_server.uri, "--detailed-exitcode"
        )
    assert planned.code == 2, planned
    assert "Archived -> Production" in planned.out


def test_a_read_user_proposes_a_run_into_the_file(
    auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = auth_server.model()
    experiment = f"propose-{model}"
    with auth_server.as_user("admin"):
        run = log_regressor(auth_server.uri, experiment=experiment).run_id
    file = write_spec(
        tmp_path, f"version: 1\nmodels:\n  {model}:\n    versions:\n      - version: 1\n"
    )
    before = auth_server.snapshot(model)
    with auth_server.as_user("reader"):
        result = run_cli(
            capsys, "propose", model, "--experiment", experiment, "--order-by", "metrics.rmse ASC",
            "--stage", "Staging", "--file", str(file), "--tracking-uri", auth_server.uri,
        )  # fmt: skip
    assert result.code == 0, result
    assert run in result.out
    assert file.read_text().endswith(f"      - run: {run}/model\n        stage: Staging\n")
    assert auth_server.snapshot(model) == before  # nothing registered: apply does that


def test_a_read_user_posts_the_plan_comment(
    any_auth_server: AuthServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = any_auth_server.model()
    before = any_auth_server.snapshot(model)
    github = FakeGitHub()
    api = serve(github)
    try:
        runner = make_runner(tmp_path, pull_request_event(), {}, github.url)
        spec = f"version: 1\nmodels:\n  {model}:\n    versions:\n      - {{version: 2, stage: Staging}}\n"  # fmt: skip
        (runner.workspace / "registry.yaml").write_text(spec, encoding="utf-8")
        for key, value in {
            **runner.env,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "MLFLOW_TRACKING_URI": any_auth_server.uri,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(runner.workspace)
        with any_auth_server.as_user("reader"):
            result = run_cli(capsys, "comment", "registry.yaml", "--detailed-exitcode")
    finally:
        api.shutdown()
    assert result.code == 2, result  # changes to review
    (comment,) = github.ours(REPOSITORY, PR)
    assert "| v2 stage | None | Staging |" in comment["body"]
    assert any_auth_server.passwords["reader"] not in comment["body"] + result.out + result.err
    assert any_auth_server.snapshot(model) == before
