"""Untrusted code paths (issue 6, item 6): `prepare:` hooks resolve only inside the folder of
registry.yaml and are never executed otherwise; the pull-request workflow gives a fork's code no
write credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlflow_gitops.gates.evidence import GateError, load_hook

pytestmark = [pytest.mark.integration]

WORKFLOWS = Path(__file__).parents[2] / ".github" / "workflows"
HOOK = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\ndef f(df):\n    return df, df\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "registry.yaml").write_text("version: 1\nmodels: {}\n")
    return folder


@pytest.mark.parametrize(
    "ref",
    ["../x:f", "..x:f", "/etc/passwd:f", "os:system", "subprocess:run", "x/../../y:f", "evil:f"],
)
def test_a_hook_outside_the_folder_is_refused_and_never_run(
    repo: Path, tmp_path: Path, ref: str
) -> None:
    marker = tmp_path / "ran"
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("x", "y", "evil"):
        (outside / f"{name}.py").write_text(HOOK.format(marker=str(marker)))
    (repo / "evil.py").symlink_to(outside / "evil.py")  # a symlink inside that points outside
    with pytest.raises(GateError) as raised:
        load_hook(ref, repo)
    assert not marker.exists()
    text = raised.value.message + " " + raised.value.hint
    assert "not module:function" in text or "inside the folder of registry.yaml" in text


def test_a_hook_inside_the_folder_runs(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (repo / "features").mkdir()
    (repo / "features" / "prep.py").write_text(HOOK.format(marker=str(marker)))
    assert callable(load_hook("features.prep:f", repo))
    assert marker.exists()


def test_the_plan_workflow_gives_a_fork_no_write_credentials() -> None:
    flow = yaml.safe_load((WORKFLOWS / "plan.yml").read_text())
    triggers = flow.get("on", flow.get(True))  # PyYAML reads a bare `on` as True
    assert "pull_request" in triggers
    assert "pull_request_target" not in triggers  # that one runs fork code with secrets
    assert flow["permissions"] == {}
    for job in flow["jobs"].values():
        assert job["permissions"].get("contents") == "read"
        assert set(job["permissions"].values()) <= {"read", "write"}
        assert [k for k, v in job["permissions"].items() if v == "write"] == ["pull-requests"]
        for step in job["steps"]:
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False
