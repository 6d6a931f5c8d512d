"""The loader: every bad input gets file:line:column, the field path and a hint; all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_gitops.errors import SpecError
from mlflow_gitops.spec.load import load
from tests.helpers import write_spec

GOOD = """
version: 1
tracking_uri: sqlite:///mlflow.db
defaults:
  archive_previous: true
  unmanaged_versions: ignore
  max_per_stage: {Production: 1}
models:
  nyc-taxi-regressor:
    description: Predicts NYC green taxi trip duration in minutes.
    tags: {team: rides, task: regression, tier: 1}
    aliases:
      champion: 2
      challenger: run:3f2a9c/model
    versions:
      - version: 1
        stage: archived
      - version: 2
        stage: PRODUCTION
        tags: {model_type: gradient-boosting}
        description: GBR, 50 trees
      - run: 3f2a9c/model
        stage: Staging
    gates:
      production:
        - metric: rmse
          max: 7.0
        - evaluate:
            data: data/green_tripdata_2021-03.parquet
            target: duration
            preprocessor: preprocessor/preprocessor.b
            metrics:
              rmse: {min_absolute_change: 0.0}
              mae: {threshold: 5.0}
            baseline: Production
        - max_size_mb: 50
        - latency: {batch_rows: 1000, p95_ms: 200}
        - require_tags: [validated_by]
        - require_signature: true
"""


def test_the_design_example_loads_with_canonical_stages(tmp_path: Path) -> None:
    loaded = load(write_spec(tmp_path, GOOD))
    model = loaded.spec.models["nyc-taxi-regressor"]
    assert [v.stage for v in model.versions] == ["Archived", "Production", "Staging"]
    assert model.versions[2].run == "3f2a9c/model"
    assert model.tags == {"team": "rides", "task": "regression", "tier": "1"}
    assert len(model.gates["production"].checks) == 6


BAD = [
    # (name, file text, expected "line:col", expected path, message fragment)
    ("malformed", "version: 1\nmodels: {a: [}\n", "2:", "", "YAML syntax error"),
    ("tab", "version: 1\nmodels:\n\ta: {}\n", "3:1", "", "never tabs"),
    (
        "duplicate key",
        "version: 1\nmodels:\n  a: {}\n  a: {}\n",
        "4:3",
        "models.a",
        "duplicate key 'a' (first defined at line 3)",
    ),
    (
        "unknown key",
        "version: 1\nmodels:\n  a:\n    versions:\n      - version: 1\n        stgae: Staging\n",
        "6:9",
        "models.a.versions[0].stgae",
        "did you mean 'stage'",
    ),
    (
        "wrong type",
        "version: 1\nmodels:\n  a:\n    versions:\n      - version: two\n",
        "5:",
        "models.a.versions[0].version",
        "valid integer",
    ),
    (
        "unknown stage",
        "version: 1\nmodels:\n  a:\n    versions:\n      - version: 1\n        stage: Prod\n",
        "6:9",
        "models.a.versions[0].stage",
        "'Prod' is not a stage",
    ),
    (
        "reserved alias",
        "version: 1\nmodels:\n  a:\n    aliases: {latest: 1}\n",
        "4:15",
        "models.a.aliases.latest",
        "reserved",
    ),
    (
        "version alias",
        "version: 1\nmodels:\n  a:\n    aliases:\n      v2: 1\n",
        "5:7",
        "models.a.aliases.v2",
        "reserved",
    ),
    (
        "two in production",
        "version: 1\nmodels:\n  a:\n    versions:\n      - {version: 1, stage: Production}\n      - {version: 2, stage: production}\n",
        "6:9",
        "models.a.versions[1]",
        "2 versions in Production, more than max_per_stage allows (1)",
    ),
    (
        "alias to undeclared",
        "version: 1\nmodels:\n  a:\n    aliases: {c: 'run:abcdef'}\n",
        "4:15",
        "models.a.aliases.c",
        "not declared under versions",
    ),
    (
        "duplicate entry",
        "version: 1\nmodels:\n  a:\n    versions:\n      - version: 1\n      - version: 1\n",
        "6:9",
        "models.a.versions[1]",
        "duplicate version entry",
    ),
    (
        "two refs",
        "version: 1\nmodels:\n  a:\n    versions:\n      - {version: 1, run: abc}\n",
        "5:9",
        "models.a.versions[0]",
        "exactly one of version:, run: or source:",
    ),
    ("schema version", "version: 2\n", "1:1", "version", "unsupported schema version 2"),
    ("missing version", "models: {}\n", "1:1", "version", "missing required key 'version'"),
    (
        "reserved tag",
        "version: 1\nmodels:\n  a:\n    tags: {mlflow_gitops.actor: me}\n",
        "4:12",
        "models.a.tags.mlflow_gitops.actor",
        "reserved",
    ),
    (
        "bad gate",
        "version: 1\nmodels:\n  a:\n    gates:\n      Production:\n        - foo: 1\n",
        "6:11",
        "models.a.gates.Production[0]",
        "unknown gate (foo)",
    ),
    (
        "bad gate target",
        "version: 1\nmodels:\n  a:\n    gates:\n      Prod: []\n",
        "5:7",
        "models.a.gates.Prod",
        "not a gate target",
    ),
    (
        "credentials",
        "version: 1\ntracking_uri: https://bob:hunter2@mlflow.example\n",
        "2:1",
        "tracking_uri",
        "carries credentials",
    ),
    (
        "bad model name",
        "version: 1\nmodels:\n  'a/b': {}\n",
        "3:3",
        "models.a/b",
        "not a valid model name",
    ),
    (
        "version out of range",
        "version: 1\nmodels:\n  a:\n    versions:\n      - version: 0\n",
        "5:",
        "models.a.versions[0].version",
        "greater than or equal to 1",
    ),
    ("empty", "", "1:1", "", "the file is empty"),
    ("not a mapping", "- 1\n- 2\n", "1:1", "", "top level must be a mapping"),
]


@pytest.mark.parametrize(
    ("text", "where", "path", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_located(
    tmp_path: Path, text: str, where: str, path: str, message: str
) -> None:
    file = tmp_path / "registry.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load(file)
    rendered = err.value.render()
    assert f"{file}:{where}" in rendered, rendered
    assert message in rendered, rendered
    if path:
        assert any(issue.path == path for issue in err.value.issues), rendered


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = "version: 1\nmodels:\n  a:\n    versions:\n      - version: 1\n        stage: Prod\n      - version: x\n    colour: red\n"
    with pytest.raises(SpecError) as err:
        load(write_spec(tmp_path, text))
    assert len(err.value.issues) == 3
    assert "3 problems" in err.value.render()


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    file = tmp_path / "registry.yaml"
    file.write_bytes(b"version: 1\nmodels:\n  caf\xe9: {}\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load(file)
    with pytest.raises(SpecError, match="file not found"):
        load(tmp_path / "nope.yaml")


def test_alias_expansion_is_bounded(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 9)
    ]
    file = tmp_path / "registry.yaml"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SpecError, match="expands to more than"):
        load(file)
