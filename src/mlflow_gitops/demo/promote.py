"""The promotion demo: two registries (dev and prod, two SQLite files), three regressors trained
into dev, and a tree whose prod file copies dev's version into prod; then prod's history.

    python -m mlflow_gitops.demo --promote [--data DIR] [--rows N] [--reset]

The tree is written to promote-demo/ next to --file: registry.yaml (the root, registries dev and
prod), teams/rides/dev.yaml and teams/rides/prod.yaml (`copy_from: dev:nyc-taxi-regressor/2`).
Two tracking URIs, so the copy is the cross-server one: the model's and the run's artifacts are
copied into prod, as a run there that carries the source run's id, params and metrics.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

MODEL = "nyc-taxi-regressor"
FOLDER = "promote-demo"
SOURCE_VERSION = 2  # gradient boosting: the version dev promotes to prod

ROOT = """\
# yaml-language-server: $schema=../registry.schema.json
# The promotion demo's tree: models are trained into dev; prod holds only copies of dev's versions.
version: 1
registries:
  dev: {tracking_uri: sqlite:///dev.db}     # relative to this folder; in CI: tracking_uri_env
  prod: {tracking_uri: sqlite:///prod.db}
default_registry: dev
include:
  - teams/*/*.yaml
defaults:
  archive_previous: true
  max_per_stage: {Production: 1}
models: {}
"""
DEV = f"""\
# dev: what the training pipeline registered, and which version is being tried
version: 1
registry: dev
models:
  {MODEL}:
    description: Predicts NYC green taxi trip duration in minutes.
    tags: {{team: rides, task: regression}}
    versions:
      - {{version: 1, stage: Archived, tags: {{model_type: linear}}}}
      - {{version: 2, stage: Staging, tags: {{model_type: gradient-boosting}}}}
      - {{version: 3, stage: None, tags: {{model_type: random-forest}}}}
"""
PROD = f"""\
# prod: never trained into; a version arrives by a pull request that names the dev version
version: 1
registry: prod
models:
  {MODEL}:
    description: Predicts NYC green taxi trip duration in minutes.
    tags: {{team: rides, task: regression}}
    versions:
      - copy_from: dev:{MODEL}/{SOURCE_VERSION}          # dev's gradient boosting, copied
    gates:
      Production:
        - metric: rmse      # the source run's metric, copied with it
          max: 10.0
"""
# the second pull request: the copy, now in prod, is promoted; the gate evaluates the copy
PROMOTE = (
    (
        f"      - copy_from: dev:{MODEL}/{SOURCE_VERSION}          # dev's gradient boosting, "
        "copied\n",
        f"      - copy_from: dev:{MODEL}/{SOURCE_VERSION}\n        stage: Production\n",
    ),
    (
        "    versions:\n",
        f"    aliases:\n      champion: copy_from:dev:{MODEL}/{SOURCE_VERSION}   # serving loads "
        "@champion\n    versions:\n",
    ),
)


def write_tree(folder: Path) -> Path:
    """The demo's root and its two included files; returns the root."""
    (folder / "teams" / "rides").mkdir(parents=True, exist_ok=True)
    (folder / "teams" / "rides" / "dev.yaml").write_text(DEV, encoding="utf-8")
    (folder / "teams" / "rides" / "prod.yaml").write_text(PROD, encoding="utf-8")
    root = folder / "registry.yaml"
    root.write_text(ROOT, encoding="utf-8")
    return root


def promote_in_prod(folder: Path) -> Path:
    """The second pull request: prod.yaml with the copy in Production and @champion on it."""
    prod = folder / "teams" / "rides" / "prod.yaml"
    text = prod.read_text(encoding="utf-8")
    for old, new in PROMOTE:
        text = text.replace(old, new, 1)
    prod.write_text(text, encoding="utf-8")
    return prod


def _run(*args: str) -> int:
    print(f"$ mlflow-gitops {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "mlflow_gitops", *args], check=False).returncode


def _experiments(uri: str, artifacts: Path) -> None:
    """The experiments the tool writes to (the audit record; in prod the copied runs), with
    their artifacts next to the registry's database: a server has its own artifact root, a bare
    SQLite file would put them in ./mlruns of whatever folder the demo runs in."""
    from mlflow import MlflowClient

    from mlflow_gitops.record import AUDIT_EXPERIMENT, COPIES_EXPERIMENT

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in (AUDIT_EXPERIMENT, COPIES_EXPERIMENT):
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=(artifacts / name).as_uri())


def run(
    base: Path, data: Path, months: tuple[str, ...], reset: bool, say: Callable[[str], None]
) -> int:
    """Train into dev, apply the tree (the copy into prod), plan again, show prod's history."""
    folder = base / FOLDER
    if reset:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    dev_uri, prod_uri = f"sqlite:///{folder / 'dev.db'}", f"sqlite:///{folder / 'prod.db'}"

    from mlflow_gitops.demo.train import train_or_reuse

    months_in_dev = (data / months[0], data / months[1])
    train_or_reuse(MODEL, dev_uri, months_in_dev, folder / "dev-artifacts", say, "P1", "dev")
    _experiments(dev_uri, folder / "dev-artifacts")
    _experiments(prod_uri, folder / "prod-artifacts")

    root = write_tree(folder)
    shown = str(root.relative_to(Path.cwd()) if root.is_relative_to(Path.cwd()) else root)
    prod_file = folder / "teams" / "rides" / "prod.yaml"
    say(f"P2. The tree: {shown} includes teams/rides/dev.yaml and teams/rides/prod.yaml")
    print(prod_file.read_text(encoding="utf-8"))
    if _run("validate", shown) != 0:
        return 1
    say("P3. First pull request: dev's stages, and a copy of dev's v2 in prod (no stage yet)")
    _run("plan", shown)
    say("P4. apply: dev's changes, then the copy: artifacts and run into prod, then the version")
    code = _run("apply", shown)
    say("P5. Second pull request: promote the copy to Production (@champion); its gate reads it")
    promote_in_prod(folder)
    print(prod_file.read_text(encoding="utf-8"))
    _run("plan", shown)
    code = code or _run("apply", shown)
    say("P6. plan again: nothing left to do in either registry (the copy is found, not redone)")
    again = _run("plan", shown, "--detailed-exitcode")
    say("P7. prod's history: where its Production version came from")
    _run("history", MODEL, "--tracking-uri", prod_uri)
    if code == 0:
        _compare(dev_uri, prod_uri, data / months[2])
    print(f"\nBrowse prod: mlflow ui --backend-store-uri {prod_uri}")
    return code or again


def _compare(dev_uri: str, prod_uri: str, march: Path) -> None:
    """Load dev's version and prod's champion, each with its own run's DictVectorizer, and
    predict the same March trips with both: the copy predicts exactly as the source."""
    import pickle

    import mlflow.artifacts
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient

    from mlflow_gitops.demo.taxi import prepare, read_trips

    features, _ = prepare(read_trips(march).head(1000))
    dev = MlflowClient(tracking_uri=dev_uri, registry_uri=dev_uri)
    prod = MlflowClient(tracking_uri=prod_uri, registry_uri=prod_uri)
    sides = [
        (dev_uri, dev.get_model_version(MODEL, str(SOURCE_VERSION))),
        (prod_uri, prod.get_model_version_by_alias(MODEL, "champion")),
    ]
    predictions = []
    for uri, version in sides:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="preprocessor/preprocessor.b", tracking_uri=uri
        )
        with open(path, "rb") as stream:
            vectorizer = pickle.load(stream)  # the demo's own run artifact
        model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version.version}")
        predictions.append(np.asarray(model.predict(vectorizer.transform(features))))
    diff = float(np.max(np.abs(predictions[0] - predictions[1])))
    print(
        f"\nprod v{sides[1][1].version} (@champion, run {sides[1][1].run_id}) and dev "
        f"v{SOURCE_VERSION} (run {sides[0][1].run_id}) on 1,000 March trips: largest "
        f"difference between their predictions {diff:g} minutes"
    )
