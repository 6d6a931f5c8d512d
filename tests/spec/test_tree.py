"""A tree of registry files: the root, the files it includes, several registries, copy_from; every
error located (file:line:col) in the file it comes from."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import SpecError
from mlflow_gitops.spec.load import load
from mlflow_gitops.spec.model import CopyFrom, settings_for
from mlflow_gitops.spec.tree import ModelKey, load_tree, resolve_registry
from tests.cli_runner import run_cli

ROOT = """
version: 1
registries:
  dev:
    tracking_uri_env: DEV_MLFLOW_TRACKING_URI
    username_env: DEV_MLFLOW_TRACKING_USERNAME
    password_env: DEV_MLFLOW_TRACKING_PASSWORD
  prod:
    tracking_uri: http://mlflow-prod.internal:5000
    token_env: PROD_MLFLOW_TRACKING_TOKEN
default_registry: dev
include:
  - teams/*/*.yaml
defaults:
  archive_previous: false
  max_per_stage: {Production: 1, Staging: 2}
  policy: {min_time_in_staging: 1h}
models:
  shared-embeddings:
    versions:
      - version: 1
        stage: Production
"""

RIDES_PROD = """
version: 1
registry: prod
defaults:
  max_per_stage: {Staging: 1}
  policy: {protected_aliases: [champion]}
models:
  nyc-taxi-regressor:
    aliases: {champion: 'copy_from:dev:nyc-taxi-regressor/3'}
    versions:
      - copy_from: dev:nyc-taxi-regressor/3
        stage: Production
      - copy_from: nyc-taxi-baseline/1
"""

RIDES_DEV = """
version: 1
models:
  nyc-taxi-regressor:
    versions:
      - version: 3
        stage: Staging
"""


def write_tree(folder: Path, files: dict[str, str]) -> Path:
    """Write each file (dedented) under folder; return the root registry.yaml."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder / "registry.yaml"


def tree_files() -> dict[str, str]:
    return {
        "registry.yaml": ROOT,
        "teams/rides/prod.yaml": RIDES_PROD,
        "teams/rides/dev.yaml": RIDES_DEV,
    }


def test_a_tree_of_files_and_registries(tmp_path: Path) -> None:
    tree = load_tree(write_tree(tmp_path, tree_files()))
    assert tree.registry_names == ("dev", "prod")
    assert tree.default_registry == "dev"
    assert [f.name for f in tree.files] == [
        str(tmp_path / "teams/rides/dev.yaml"),
        str(tmp_path / "teams/rides/prod.yaml"),
    ]
    assert sorted(tree.models) == [
        ModelKey("dev", "nyc-taxi-regressor"),
        ModelKey("dev", "shared-embeddings"),
        ModelKey("prod", "nyc-taxi-regressor"),
    ]
    assert [m.name for m in tree.models_in("prod")] == ["nyc-taxi-regressor"]
    assert [f.name for f in tree.files_in("dev")] == [
        str(tmp_path / "registry.yaml"),
        str(tmp_path / "teams/rides/dev.yaml"),
    ]
    prod = tree.models[ModelKey("prod", "nyc-taxi-regressor")]
    assert prod.where() == f"{tmp_path / 'teams/rides/prod.yaml'}:7:3"
    first, second = prod.spec.versions
    assert first.key == "copy_from dev:nyc-taxi-regressor/3"
    assert prod.copy_source(first) == CopyFrom(
        registry="dev", model="nyc-taxi-regressor", version=3
    )
    # without a registry, the source is in the registry of the entry's own file
    assert prod.copy_source(second) == CopyFrom(
        registry="prod", model="nyc-taxi-baseline", version=1
    )
    assert first.model_dump()["copy_from"] == "dev:nyc-taxi-regressor/3"


def test_an_included_files_defaults_go_over_the_roots(tmp_path: Path) -> None:
    tree = load_tree(write_tree(tmp_path, tree_files()))
    prod = tree.models[ModelKey("prod", "nyc-taxi-regressor")]
    settings = settings_for(prod.file.spec, prod.spec)
    assert settings.archive_previous is False  # the root's, the file does not set it
    assert settings.max_per_stage == {"Production": 1, "Staging": 1}  # merged stage by stage
    assert settings.policy.min_time_in_staging == 3600  # merged key by key
    assert settings.policy.protected_aliases == ["champion"]
    dev = tree.models[ModelKey("dev", "nyc-taxi-regressor")]  # a file without defaults:
    assert settings_for(dev.file.spec, dev.spec).max_per_stage == {"Production": 1, "Staging": 2}


def test_a_file_without_the_new_keys_is_a_tree_of_one(tmp_path: Path) -> None:
    text = "version: 1\ntracking_uri: sqlite:///db/mlflow.db\nmodels:\n  a: {}\n"
    root = write_tree(tmp_path, {"registry.yaml": text})
    tree = load_tree(root)
    assert tree.files == ()
    assert tree.registry_names == ("default",)
    assert list(tree.models) == [ModelKey("default", "a")]
    assert tree.root.spec == load(root).spec
    resolved = resolve_registry(tree, "default", {"MLFLOW_TRACKING_TOKEN": "t0k3n"})
    assert resolved.uri == f"sqlite:///{tmp_path / 'db/mlflow.db'}"
    assert resolved.credentials == Credentials(token="t0k3n")
    assert resolve_registry(tree, "default", {"MLFLOW_TRACKING_URI": "http://x:1"}).uri == (
        "http://x:1"
    )


@pytest.mark.parametrize(
    ("patterns", "errors"),
    [
        pytest.param(
            "  - teams/rides/prod.yaml\n",
            [
                "registry.yaml:13:5: include[1]: include pattern 'teams/rides/prod.yaml' includes "
                "{root}/teams/rides/prod.yaml a second time: 'teams/*/*.yaml' already matches it"
            ],
            id="a file two patterns match is an error at the second",
        ),
        pytest.param(
            "  - teams/rides/*.yaml\n  - 'teams/**'\n",
            [
                "registry.yaml:13:5: include[1]: include pattern 'teams/rides/*.yaml' includes "
                "{root}/teams/rides/dev.yaml (and 1 more) a second time: 'teams/*/*.yaml' already",
                "registry.yaml:14:5: include[2]: include pattern 'teams/**' includes",
            ],
            id="a broad overlap is one error per pair of patterns",
        ),
    ],
)
def test_a_file_included_twice_is_an_error_at_each_later_pattern(
    tmp_path: Path, patterns: str, errors: list[str]
) -> None:
    files = tree_files()
    files["registry.yaml"] = ROOT.replace("  - teams/*/*.yaml\n", "  - teams/*/*.yaml\n" + patterns)
    with pytest.raises(SpecError) as err:
        load_tree(write_tree(tmp_path, files))
    rendered = err.value.render()
    for error in errors:
        assert f"{tmp_path}/" + error.format(root=tmp_path) in rendered, rendered
    assert "narrow one of the two patterns" in rendered
    assert rendered.count("a second time") == len(errors)


def test_the_same_name_in_two_registries_is_two_models(tmp_path: Path) -> None:
    tree = load_tree(write_tree(tmp_path, tree_files()))
    assert ModelKey("dev", "nyc-taxi-regressor") in tree.models
    assert ModelKey("prod", "nyc-taxi-regressor") in tree.models


# (id, files over the good tree, file with the error, "line:col", message fragment)
BAD = [
    (
        "declared twice",
        {"teams/ml/more.yaml": "version: 1\nregistry: prod\nmodels:\n  nyc-taxi-regressor: {}\n"},
        "teams/rides/prod.yaml",
        "7:3",
        "model 'nyc-taxi-regressor' (registry 'prod') is declared twice: at {tmp}/teams/ml/"
        "more.yaml:4:3 and at {tmp}/teams/rides/prod.yaml:7:3",
    ),
    (
        "declared twice, root and included",
        {"teams/ml/more.yaml": "version: 1\nmodels:\n  shared-embeddings: {}\n"},
        "teams/ml/more.yaml",
        "3:3",
        "is declared twice: at {tmp}/registry.yaml:18:3 and at",
    ),
    (
        "pattern matches nothing",
        {"registry.yaml": ROOT.replace("teams/*/*.yaml", "team/*.yaml")},
        "registry.yaml",
        "12:5",
        "include pattern 'team/*.yaml' matches no file",
    ),
    (
        "pattern matches the root",
        {"registry.yaml": ROOT.replace("teams/*/*.yaml", "'*.yaml'")},
        "registry.yaml",
        "12:5",
        "include pattern '*.yaml' matches the root file itself",
    ),
    (
        "include in an included file",
        {"teams/rides/dev.yaml": "version: 1\ninclude: ['../x/*.yaml']\n"},
        "teams/rides/dev.yaml",
        "2:1",
        "an included file cannot include others",
    ),
    (
        "registries in an included file",
        {"teams/rides/dev.yaml": "version: 1\nregistries: {x: {tracking_uri: 'http://x'}}\n"},
        "teams/rides/dev.yaml",
        "2:1",
        "registries: belongs in the root file",
    ),
    (
        "tracking_uri in an included file",
        {"teams/rides/dev.yaml": "version: 1\ntracking_uri: http://x\n"},
        "teams/rides/dev.yaml",
        "2:1",
        "tracking_uri: belongs in the root file",
    ),
    (
        "registry in the root",
        {
            "registry.yaml": ROOT.replace(
                "default_registry: dev\n", "default_registry: dev\nregistry: dev\n"
            )
        },
        "registry.yaml",
        "11:1",
        "registry: belongs in an included file",
    ),
    (
        "unknown registry in a file",
        {"teams/rides/prod.yaml": RIDES_PROD.replace("registry: prod", "registry: prd")},
        "teams/rides/prod.yaml",
        "2:1",
        "unknown registry 'prd' (declared: dev, prod; did you mean 'prod'?)",
    ),
    (
        "unknown default_registry",
        {"registry.yaml": ROOT.replace("default_registry: dev", "default_registry: staging")},
        "registry.yaml",
        "10:1",
        "unknown registry 'staging' (declared: dev, prod)",
    ),
    (
        "default_registry missing",
        {"registry.yaml": ROOT.replace("default_registry: dev\n", "")},
        "registry.yaml",
        "2:1",
        "default_registry: is required when registries: lists more than one (dev, prod)",
    ),
    (
        "copy_from an unknown registry",
        {"teams/rides/prod.yaml": RIDES_PROD.replace("- copy_from: dev:", "- copy_from: qa:")},
        "teams/rides/prod.yaml",
        "10:9",
        "unknown registry 'qa' (declared: dev, prod)",
    ),
    (
        "copy_from syntax",
        {"teams/rides/prod.yaml": RIDES_PROD.replace("nyc-taxi-baseline/1", "nyc-taxi-baseline")},
        "teams/rides/prod.yaml",
        "12:9",
        "'nyc-taxi-baseline' is not a copy reference: use [registry:]model/version",
    ),
    (
        "copy_from and version",
        {"teams/rides/prod.yaml": RIDES_PROD.replace("stage: Production", "version: 4")},
        "teams/rides/prod.yaml",
        "10:9",
        "exactly one of version:, run: or source: (or copy_from:) (found version, copy_from)",
    ),
    (
        "copy_from itself",
        {
            "teams/rides/prod.yaml": RIDES_PROD.replace(
                "nyc-taxi-baseline/1", "nyc-taxi-regressor/2"
            )
        },
        "teams/rides/prod.yaml",
        "12:9",
        "copy_from names this model in its own registry (prod:nyc-taxi-regressor/2)",
    ),
    (
        "copied twice",
        {
            "teams/rides/prod.yaml": RIDES_PROD.replace(
                "nyc-taxi-baseline/1",
                "prod:nyc-taxi-baseline/1\n      - copy_from: nyc-taxi-baseline/1",
            )
        },
        "teams/rides/prod.yaml",
        "13:9",
        "prod:nyc-taxi-baseline/1 is copied twice (also versions[1])",
    ),
    (
        "alias to an undeclared copy",
        {"teams/rides/prod.yaml": RIDES_PROD.replace("'copy_from:dev:", "'copy_from:qa:")},
        "teams/rides/prod.yaml",
        "8:15",
        "alias 'champion' points to copy_from qa:nyc-taxi-regressor/3, which is not declared",
    ),
    (
        "tracking_uri and registries",
        {"registry.yaml": ROOT.replace("version: 1\n", "version: 1\ntracking_uri: http://x\n", 1)},
        "registry.yaml",
        "2:1",
        "tracking_uri: and registries: are both given",
    ),
    (
        "credentials in a registry's URI",
        {"registry.yaml": ROOT.replace("http://mlflow-prod", "http://bob:hunter2@mlflow-prod")},
        "registry.yaml",
        "8:5",
        "the tracking URI of registry 'prod' carries credentials",
    ),
    (
        "neither URI nor variable",
        {"registry.yaml": ROOT.replace("    tracking_uri: http://mlflow-prod.internal:5000\n", "")},
        "registry.yaml",
        "7:3",
        "a registry names exactly one of tracking_uri: (a URI) or tracking_uri_env:",
    ),
    (
        "bad registry name",
        {"registry.yaml": ROOT.replace("  prod:", "  'prod east':").replace("registry: prod", "")},
        "registry.yaml",
        "7:3",
        "'prod east' is not a registry name",
    ),
    (
        "bad variable name",
        {
            "registry.yaml": ROOT.replace(
                "token_env: PROD_MLFLOW_TRACKING_TOKEN", "token_env: $TOKEN"
            )
        },
        "registry.yaml",
        "9:5",
        "'$TOKEN' is not an environment variable name",
    ),
    (
        "a problem inside an included file",
        {"teams/rides/dev.yaml": RIDES_DEV.replace("Staging", "Stagin")},
        "teams/rides/dev.yaml",
        "6:9",
        "'Stagin' is not a stage",
    ),
]


@pytest.mark.parametrize(
    ("changes", "file", "where", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_trees_are_located(
    tmp_path: Path, changes: dict[str, str], file: str, where: str, message: str
) -> None:
    root = write_tree(tmp_path, {**tree_files(), **changes})
    with pytest.raises(SpecError) as err:
        load_tree(root)
    rendered = err.value.render()
    assert f"{tmp_path / file}:{where}:" in rendered, rendered
    assert message.format(tmp=tmp_path) in rendered, rendered


def test_problems_in_every_file_are_reported_at_once(tmp_path: Path) -> None:
    files = {
        **tree_files(),
        "teams/rides/dev.yaml": RIDES_DEV.replace("Staging", "Stagin"),
        "teams/rides/prod.yaml": RIDES_PROD.replace("registry: prod", "registry: prd"),
        "teams/ml/broken.yaml": "version: 1\nmodels: {a: [}\n",
    }
    with pytest.raises(SpecError) as err:
        load_tree(write_tree(tmp_path, files))
    files_named = list(dict.fromkeys(issue.file for issue in err.value.issues))
    assert files_named == [  # file by file, in include order
        str(tmp_path / "teams/ml/broken.yaml"),
        str(tmp_path / "teams/rides/dev.yaml"),
        str(tmp_path / "teams/rides/prod.yaml"),
    ]


def test_a_registry_is_resolved_from_its_own_variables(tmp_path: Path) -> None:
    tree = load_tree(write_tree(tmp_path, tree_files()))
    environ = {
        "DEV_MLFLOW_TRACKING_URI": "http://dev:5000",
        "DEV_MLFLOW_TRACKING_USERNAME": "alice",
        "DEV_MLFLOW_TRACKING_PASSWORD": "dev-secret",
        "PROD_MLFLOW_TRACKING_TOKEN": "prod-token",
        "MLFLOW_TRACKING_URI": "http://elsewhere:1",
        "MLFLOW_TRACKING_PASSWORD": "global-secret",
    }
    dev = resolve_registry(tree, "dev", environ)
    assert dev.uri == "http://dev:5000"
    assert dev.credentials == Credentials(username="alice", password="dev-secret")
    assert dev.secrets == ("dev-secret",)
    prod = resolve_registry(tree, "prod", environ)
    assert prod.uri == "http://mlflow-prod.internal:5000"
    assert prod.credentials == Credentials(token="prod-token")
    assert "dev-secret" not in repr(dev)  # a URI may carry credentials too: neither is shown
    assert "http://dev" not in repr(dev)
    assert "prod-token" not in repr(prod)
    assert resolve_registry(tree, "prod", environ, flag="http://override:1").uri == (
        "http://override:1"
    )


def test_a_registry_without_its_uri_is_a_plan_time_error(tmp_path: Path) -> None:
    tree = load_tree(write_tree(tmp_path, tree_files()))  # valid: validate is offline
    with pytest.raises(SpecError) as err:
        resolve_registry(tree, "dev", {"DEV_MLFLOW_TRACKING_USERNAME": "alice"})
    rendered = err.value.render()
    root = tmp_path / "registry.yaml"
    assert (
        f"{root}:4:5: registries.dev.tracking_uri_env: registry 'dev' has no URI: "
        "the variable DEV_MLFLOW_TRACKING_URI is not set"
    ) in rendered
    assert f"{root}:6:5: registries.dev.password_env: registry 'dev' has no password" in rendered
    with pytest.raises(SpecError, match="unknown registry 'qa'"):
        resolve_registry(tree, "qa", {})


def test_validate_reads_the_whole_tree_without_mlflow(tmp_path: Path) -> None:
    root = write_tree(tmp_path, tree_files())
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
    assert f"{root}: valid (3 models, 4 version entries in 3 files)" in proc.stdout, proc.stderr
    assert "MLFLOW: []" in proc.stdout


def test_validate_names_the_included_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {**tree_files(), "teams/rides/dev.yaml": RIDES_DEV.replace("Staging", "Stagin")}
    outcome = run_cli(capsys, "validate", str(write_tree(tmp_path, files)))
    assert outcome.code == 1
    assert f"{tmp_path / 'teams/rides/dev.yaml'}:6:9: models.nyc-taxi-regressor" in outcome.err
