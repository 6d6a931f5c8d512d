"""`import --tree`: a file per registry (or per model) for a root with registries:, each registry
read once with its own credentials, and the tree it writes plans empty (in-memory registries)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlflow_gitops import reconcile
from mlflow_gitops.credentials import Credentials
from mlflow_gitops.importer import include_patterns, tree_files
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.reconcile import connect
from mlflow_gitops.settings import Endpoint
from mlflow_gitops.spec.tree import load_tree
from tests.cli_runner import run_cli
from tests.fakes import FakeRegistry

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ROOT = """\
version: 1
registries:
  dev:
    tracking_uri_env: DEV_URI
    username_env: DEV_USER
    password_env: DEV_PASSWORD
  prod:
    tracking_uri_env: PROD_URI
    token_env: PROD_TOKEN
default_registry: dev
models: {}
"""
ENV = {
    "DEV_URI": "http://dev.example:5000",
    "DEV_USER": "dev-bot",
    "DEV_PASSWORD": "dev-secret-1",
    "PROD_URI": "http://prod.example:5000",
    "PROD_TOKEN": "prod-secret-2",
}


@dataclass
class Recording(FakeRegistry):
    """A fake registry that notes the credentials its adapter was opened with at each read."""

    seen: list[dict[str, str]] = field(default_factory=list)
    credentials: Credentials | None = None
    together: threading.Barrier | None = None  # set: read waits until the others read too

    def read(self, names: Sequence[str] | None = None) -> RegistryState:
        if self.together is not None:
            self.together.wait()
        given = self.credentials or Credentials()
        self.seen.append({k: v for k, v in given.variables().items() if v})
        return super().read(names)


def _model(name: str, *stages: str, tags: dict[str, str] | None = None) -> ModelState:
    versions = tuple(VersionState(n, s) for n, s in enumerate(stages, start=1))
    return ModelState(name=name, description=f"{name}.", tags=tags or {}, versions=versions)


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recording]:
    served = {
        ENV["DEV_URI"]: Recording(
            models={
                "rides eta": _model("rides eta", "Archived", "Staging", tags={"team": "rides"}),
                "fraud": _model("fraud", "None", "Staging"),
            }
        ),
        ENV["PROD_URI"]: Recording(models={"rides eta": _model("rides eta", "Production")}),
    }

    def open_registry(where: Endpoint) -> Recording:
        served[where.registry_uri].credentials = where.credentials
        return served[where.registry_uri]

    monkeypatch.setattr(connect, "open_registry", open_registry)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "must-not-reach-either")
    return {"dev": served[ENV["DEV_URI"]], "prod": served[ENV["PROD_URI"]]}


def _assert_plans_empty(root: Path, registries: dict[str, Recording]) -> None:
    tree = load_tree(root)
    for name, registry in registries.items():
        loaded = tree.files_in(name)
        assert loaded, name
        for file in loaded:
            planned = reconcile.make_plan(file, registry, None, NOW)
            assert planned.plan.is_empty, (file.name, planned.plan.changes)


def test_one_file_per_registry_each_read_once_with_its_own_credentials(
    registries: dict[str, Recording], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")

    result = run_cli(capsys, "import", "--tree", "--root", str(root))

    assert result.code == 0, result.err
    assert "Wrote 3 models in 2 files" in result.err
    assert "Add to the include: of" in result.err
    assert "  - registries/*.yaml\n" in result.err
    dev = yaml.safe_load((tmp_path / "registries" / "dev.yaml").read_text(encoding="utf-8"))
    assert dev["registry"] == "dev"
    assert sorted(dev["models"]) == ["fraud", "rides eta"]
    prod = yaml.safe_load((tmp_path / "registries" / "prod.yaml").read_text(encoding="utf-8"))
    assert prod["registry"] == "prod"
    assert prod["models"]["rides eta"]["versions"] == [{"version": 1, "stage": "Production"}]
    # one read per registry, each with only its own credentials
    assert registries["dev"].seen == [
        {"MLFLOW_TRACKING_USERNAME": "dev-bot", "MLFLOW_TRACKING_PASSWORD": "dev-secret-1"}
    ]
    assert registries["prod"].seen == [{"MLFLOW_TRACKING_TOKEN": "prod-secret-2"}]
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "must-not-reach-either"  # put back
    assert "secret" not in result.out + result.err

    root.write_text(ROOT.replace("models: {}", "include: [registries/*.yaml]\nmodels: {}"))
    _assert_plans_empty(root, registries)
    again = run_cli(capsys, "import", "--tree", "--root", str(root))  # a second import refreshes
    assert again.code == 0, again.err
    assert "already includes them" in again.err
    _assert_plans_empty(root, registries)


def test_split_writes_one_file_per_model_and_registry_selects(
    registries: dict[str, Recording], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")

    result = run_cli(capsys, "import", "--tree", "--split", "--root", str(root), "-r", "dev")

    assert result.code == 0, result.err
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert written == [
        "registries/dev/fraud.yaml",
        "registries/dev/rides_eta.yaml",
        "registry.yaml",
    ]
    assert registries["prod"].seen == []  # not selected: not read
    assert "  - registries/*/*.yaml\n" in result.err
    root.write_text(ROOT.replace("models: {}", "include: [registries/*/*.yaml]\nmodels: {}"))
    _assert_plans_empty(root, {"dev": registries["dev"]})


def test_a_model_the_tree_declares_elsewhere_is_left_to_its_file(
    registries: dict[str, Recording], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry.yaml"
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "fraud.yaml").write_text(
        "version: 1\nregistry: dev\nmodels:\n  fraud:\n    description: fraud.\n",
        encoding="utf-8",
    )
    root.write_text(ROOT.replace("models: {}", "include: [teams/*.yaml]\nmodels: {}"))

    result = run_cli(capsys, "import", "--tree", "--root", str(root))

    assert result.code == 0, result.err
    assert f"dev: fraud is declared at {tmp_path}/teams/fraud.yaml:4:3; left there." in result.err
    dev = yaml.safe_load((tmp_path / "registries" / "dev.yaml").read_text(encoding="utf-8"))
    assert sorted(dev["models"]) == ["rides eta"]
    root.write_text(
        ROOT.replace("models: {}", "include: [teams/*.yaml, registries/*.yaml]\nmodels: {}")
    )
    load_tree(root)  # no model declared twice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tree", "--tracking-uri", "http://x:1"], "--tracking-uri names one registry"),
        (["--split"], "--split, --registry and --out-dir need --tree"),
        (["--tree", "--out", "x.yaml"], "--tree writes several"),
        (["--tree", "--out-dir", "/"], "is outside the folder of"),
        (["--tree", "-m", "nope"], "no registered model named 'nope' in dev, prod"),
        (["--tree", "-r", "qa"], "unknown registry 'qa'"),
    ],
)
def test_wrong_combinations_say_what_to_do(
    registries: dict[str, Recording],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    result = run_cli(capsys, "import", "--root", str(root), *args)
    assert result.code == 1
    assert message in result.err


def test_a_registry_without_its_variable_is_a_located_error(
    registries: dict[str, Recording],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROD_TOKEN")
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    result = run_cli(capsys, "import", "--tree", "--root", str(root))
    assert result.code == 1
    assert "registry.yaml:9:5: registries.prod.token_env" in result.err
    assert "PROD_TOKEN is not set" in result.err
    assert not (tmp_path / "registries").exists()  # nothing written before every read worked


def test_the_problems_of_every_registry_are_reported_at_once(
    registries: dict[str, Recording],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEV_URI")
    monkeypatch.delenv("PROD_TOKEN")
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    result = run_cli(capsys, "import", "--tree", "--root", str(root))
    assert result.code == 1
    assert "registry.yaml:4:5: registries.dev.tracking_uri_env" in result.err
    assert "registry.yaml:9:5: registries.prod.token_env" in result.err
    assert not (tmp_path / "registries").exists()


def test_the_registries_are_read_at_once(
    registries: dict[str, Recording], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # each read waits for the other: read one after the other, the first would never return
    # (the barrier's timeout only turns that hang into a failure)
    together = threading.Barrier(2, timeout=30)
    for registry in registries.values():
        registry.together = together
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    result = run_cli(capsys, "import", "--tree", "--root", str(root))
    assert result.code == 0, result.err
    assert "Wrote 3 models in 2 files" in result.err


def test_import_tree_returns_the_files_and_the_notes_without_writing(
    registries: dict[str, Recording], tmp_path: Path
) -> None:
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "fraud.yaml").write_text(
        "version: 1\nregistry: dev\nmodels:\n  fraud:\n    description: fraud.\n",
        encoding="utf-8",
    )
    root = tmp_path / "registry.yaml"
    root.write_text(ROOT.replace("models: {}", "include: [teams/*.yaml]\nmodels: {}"))
    outcome = reconcile.import_tree(reconcile.ImportTreeRequest(root, NOW))
    assert outcome.notes == (
        f"dev: fraud is declared at {tmp_path}/teams/fraud.yaml:4:3; left there.",
    )
    assert [(f.path, f.models) for f in outcome.files] == [
        (tmp_path / "registries" / "dev.yaml", ("rides eta",)),
        (tmp_path / "registries" / "prod.yaml", ("rides eta",)),
    ]
    assert outcome.missing_patterns == ("registries/*.yaml",)
    assert not (tmp_path / "registries").exists()


def test_two_model_names_that_make_one_file_name_are_an_error() -> None:
    state = RegistryState({"a b": _model("a b", "None"), "a_b": _model("a_b", "None")})
    with pytest.raises(Exception, match="would both be written to"):
        tree_files({"dev": state}, {"dev": "x"}, Path("registries"), NOW, split=True)


def test_include_patterns_are_only_those_the_root_lacks(tmp_path: Path) -> None:
    root = tmp_path / "registry.yaml"
    written = [tmp_path / "registries" / "dev.yaml", tmp_path / "imported" / "prod" / "m.yaml"]
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    assert include_patterns(root, [], written) == ["registries/*.yaml", "imported/prod/*.yaml"]
    assert include_patterns(root, ["registries/*.yaml"], written) == ["imported/prod/*.yaml"]
    assert include_patterns(root, ["**/*.yaml"], written) == []


def test_a_registry_without_stages_is_imported_without_stage_entries(tmp_path: Path) -> None:
    """Unity Catalog has no stages: its file declares aliases and no `stage:` (which validate
    refuses in a UC file); a registry with stages keeps them."""
    model = ModelState(
        "prod.ml.m",
        aliases={"champion": 2},
        versions=(VersionState(1), VersionState(2, stage="Production")),
    )
    states = {"uc": RegistryState({"prod.ml.m": model}), "dev": RegistryState({"m": model})}
    identities = {"uc": "databricks-uc://prod", "dev": "http://dev:5000"}
    now = datetime(2026, 12, 7, tzinfo=UTC)
    files = tree_files(states, identities, tmp_path, now, without_stages=frozenset({"uc"}))
    uc, dev = (yaml.safe_load(f.text) for f in files)
    assert uc["models"]["prod.ml.m"] == {
        "aliases": {"champion": 2},
        "versions": [{"version": 1}, {"version": 2}],
    }
    assert [v["stage"] for v in dev["models"]["m"]["versions"]] == ["None", "Production"]
