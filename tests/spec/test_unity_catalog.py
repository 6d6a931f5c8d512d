"""Unity Catalog's rules are validate errors, located (file:line:col, field, hint): three-level
model names, and no stages nor stage settings in a UC registry's files; aliases and gates on
alias:<name> targets are fine. validate never imports mlflow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlflow_gitops.errors import SpecError
from mlflow_gitops.spec.tree import load_tree
from mlflow_gitops.spec.unity_catalog import uc_name_problem
from tests.cli_runner import run_cli

ROOT = """\
version: 1
registries:
  dev:
    tracking_uri: http://mlflow-dev.internal:5000
  prod:
    tracking_uri: databricks://prod
    registry_uri: databricks-uc://prod
    host_env: PROD_DATABRICKS_HOST
    token_env: PROD_DATABRICKS_TOKEN
default_registry: dev
include:
  - teams/*.yaml
defaults:
  archive_previous: true
  mirror_stages_to_aliases: {Production: champion}
models:
  nyc-taxi-regressor:
    versions:
      - version: 1
        stage: Production
"""

GOOD_UC = """\
version: 1
registry: prod
models:
  prod.ml.nyc_taxi_regressor:
    aliases: {champion: 3, challenger: 'copy_from:dev:nyc-taxi-regressor/4'}
    versions:
      - copy_from: dev:nyc-taxi-regressor/4
        tags: {validated_by: alice}
      - version: 3
        description: GBR, 50 trees
    gates:
      alias:champion:
        - metric: rmse
          max: 7.0
        - require_signature: true
"""

BAD_UC = """\
version: 1
registry: prod
defaults:
  mirror_stages_to_aliases: {Production: champion}
models:
  nyc-taxi-regressor:
    aliases: {champion: 2}
  prod.ml.nyc_taxi_regressor:
    max_per_stage: {Production: 1}
    archive_previous: false
    versions:
      - version: 2
        stage: Production
    gates:
      Production:
        - metric: rmse
          max: 7.0
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return folder / "registry.yaml"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("prod.ml.nyc_taxi_regressor", None),
        ("main.default.m-1", None),
        ("nyc-taxi-regressor", "is not a Unity Catalog model name"),
        ("ml.nyc_taxi_regressor", "is not a Unity Catalog model name"),
        ("a.b.c.d", "is not a Unity Catalog model name"),
        ("prod..m", "is not a Unity Catalog model name"),
        ("prod.ml.taxi model", "no spaces, slashes"),
    ],
)
def test_a_model_name_is_three_levels(name: str, problem: str | None) -> None:
    found = uc_name_problem(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_uc_registry_with_aliases_and_alias_gates_is_valid(tmp_path: Path) -> None:
    # the root's mirror_stages_to_aliases is inherited by teams/prod.yaml, where it would delete
    # the alias: it counts there (the root's archive_previous, inert without stages, does not)
    root = write(tmp_path, {"registry.yaml": ROOT, "teams/prod.yaml": GOOD_UC})
    with pytest.raises(SpecError) as err:
        load_tree(root)
    (only,) = err.value.issues
    assert (only.file, only.line, only.column, only.path) == (
        str(root),
        15,
        3,
        "defaults.mirror_stages_to_aliases",
    )
    assert "inherited by" in only.message
    assert "teams/prod.yaml" in only.message
    assert "Unity Catalog" in only.message
    assert "aliases" in only.hint
    valid = ROOT.replace("  mirror_stages_to_aliases: {Production: champion}\n", "")
    root = write(tmp_path, {"registry.yaml": valid, "teams/prod.yaml": GOOD_UC})
    tree = load_tree(root)
    assert {m.name for m in tree.models_in("prod")} == {"prod.ml.nyc_taxi_regressor"}


def test_stages_names_and_stage_settings_in_a_uc_file_are_located_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid = ROOT.replace("  mirror_stages_to_aliases: {Production: champion}\n", "")
    root = write(tmp_path, {"registry.yaml": valid, "teams/prod.yaml": BAD_UC})
    outcome = run_cli(capsys, "validate", str(root))
    assert outcome.code == 1
    prod = tmp_path / "teams/prod.yaml"
    err = outcome.err
    expected = [
        f"{prod}:4:3: defaults.mirror_stages_to_aliases: defaults.mirror_stages_to_aliases: "
        "registry 'prod' keeps its models in Unity Catalog",
        f"{prod}:6:3: models.nyc-taxi-regressor: 'nyc-taxi-regressor' is not a Unity Catalog "
        "model name (catalog.schema.model)",
        f"{prod}:9:5: models.prod.ml.nyc_taxi_regressor.max_per_stage: max_per_stage: ",
        f"{prod}:10:5: models.prod.ml.nyc_taxi_regressor.archive_previous: archive_previous: ",
        f"{prod}:13:9: models.prod.ml.nyc_taxi_regressor.versions[0].stage: stage: Production: ",
        f"{prod}:15:7: models.prod.ml.nyc_taxi_regressor.gates.Production: gates on the stage "
        "Production: ",
    ]
    for line in expected:
        assert line in err, err
    assert "hint: name the model catalog.schema.model" in err
    assert "hint: Unity Catalog has no stages: manage versions with aliases" in err
    assert "`mlflow-gitops import` of a Unity Catalog registry writes aliases" in err
    # the root's models live in dev, a registry with stages: its stage is fine
    assert f"{root}:" not in err


def test_a_databricks_tracking_uri_alone_means_unity_catalog(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "registry.yaml": """\
            version: 1
            tracking_uri: databricks
            models:
              ml.m:
                versions:
                  - {version: 1, stage: Staging}
            """
        },
    )
    with pytest.raises(SpecError) as err:
        load_tree(root)
    assert [(i.line, i.path) for i in err.value.issues] == [
        (4, "models.ml.m"),
        (6, "models.ml.m.versions[0].stage"),
    ]
    # a workspace registry kept on purpose (registry_uri: databricks) has stages
    kept = root.read_text().replace(
        "tracking_uri: databricks\n", "tracking_uri: databricks\nregistry_uri: databricks\n"
    )
    root.write_text(kept)
    assert load_tree(root).models


def test_validate_of_a_uc_tree_never_imports_mlflow(tmp_path: Path) -> None:
    valid = ROOT.replace("  mirror_stages_to_aliases: {Production: champion}\n", "")
    root = write(tmp_path, {"registry.yaml": valid, "teams/prod.yaml": BAD_UC})
    probe = (
        "import sys\n"
        "from mlflow_gitops.cli import main\n"
        "try:\n"
        f"    main({['validate', str(root)]!r})\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        "print('MLFLOW:', sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert "EXIT 1" in proc.stdout, proc.stderr
    assert "Unity Catalog" in proc.stderr
    assert "MLFLOW: []" in proc.stdout
