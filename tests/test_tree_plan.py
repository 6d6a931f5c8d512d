"""A tree over two registries, planned and applied through reconcile against fake registries:
selection, copies matched by provenance, source checks, per-registry apply and its failures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflow_gitops import reconcile
from mlflow_gitops.credentials import Credentials
from mlflow_gitops.errors import GitopsError, SpecError, StalePlanError
from mlflow_gitops.observed import ModelState, RegistryState, VersionState
from mlflow_gitops.plan.changes import CopyVersion, TransitionStage
from mlflow_gitops.plan.planner import plan as compute_plan
from mlflow_gitops.plan.saved import load_plan
from mlflow_gitops.reconcile import ApplyRequest, PlanRequest, apply_request, connect, plan_request
from mlflow_gitops.record import SourceRef, provenance_tags
from mlflow_gitops.render.json import tree_document
from mlflow_gitops.render.text import render_tree
from mlflow_gitops.secrets import redact
from mlflow_gitops.settings import Endpoint, registry_identity
from mlflow_gitops.spec.tree import load_tree
from tests.cli_runner import run_cli
from tests.fakes import FakeRegistry
from tests.gates.fake_evidence import FakeEvidence, FakeModel
from tests.helpers import write_spec

NOW = datetime(2031, 1, 1, tzinfo=UTC)
DEV, PROD = "http://dev.example:5000", "http://prod.example:5000"
MODEL = "nyc-taxi-regressor"
SMALL = {"models:/other/1": FakeModel(size_mb=12.0)}  # within max_size_mb: 50

ROOT = f"""
version: 1
registries:
  dev:
    tracking_uri: {DEV}
  prod:
    tracking_uri: {PROD}
    username_env: PROD_USER
    password_env: PROD_PASSWORD
default_registry: dev
include:
  - teams/*/*.yaml
"""
DEV_FILE = f"""
version: 1
registry: dev
models:
  {MODEL}:
    versions:
      - {{version: 3, stage: Staging}}
"""
PROD_FILE = f"""
version: 1
registry: prod
models:
  {MODEL}:
    versions:
      - copy_from: dev:{MODEL}/3
        stage: Production
  other:
    versions:
      - {{version: 1, stage: Staging}}
"""


@dataclass
class Served(FakeRegistry):
    """A fake registry at one URI, with the credentials reconcile opened it with."""

    uri: str = ""
    credentials: Credentials | None = None
    opened: int = 0

    @property
    def identity(self) -> str:  # type: ignore[override]
        return registry_identity(self.uri)


@dataclass
class Registries:
    by_uri: dict[str, Served] = field(default_factory=dict)

    @property
    def dev(self) -> Served:
        return self.by_uri[DEV]

    @property
    def prod(self) -> Served:
        return self.by_uri[PROD]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Registries:
    served = Registries(
        {
            DEV: Served(
                models={
                    MODEL: ModelState(
                        name=MODEL,
                        versions=(VersionState(3, "Staging", "runs:/r3/model", "r3"),),
                    )
                },
                runs={"r3"},
                uri=DEV,
            ),
            PROD: Served(
                models={"other": ModelState(name="other", versions=(VersionState(1, "Staging"),))},
                uri=PROD,
            ),
        }
    )

    def open_registry(where: Endpoint) -> Served:
        uri, credentials = where.registry_uri, where.credentials
        if uri not in served.by_uri:
            raise AssertionError(f"opened a registry nobody selected: {uri}")
        fake = served.by_uri[uri]
        fake.credentials, fake.opened = credentials, fake.opened + 1
        return fake

    monkeypatch.setattr(connect, "open_registry", open_registry)
    monkeypatch.setattr(connect, "open_evidence", lambda *_: None)
    monkeypatch.setenv("PROD_USER", "prod-user")
    monkeypatch.setenv("PROD_PASSWORD", "s3cr3t-prod-password")
    monkeypatch.chdir(tmp_path)  # files are named as from the root's folder: teams/a/prod.yaml
    return served


def tree(tmp_path: Path) -> Path:
    (tmp_path / "teams" / "a").mkdir(parents=True)
    write_spec(tmp_path / "teams" / "a", DEV_FILE, "dev.yaml")
    write_spec(tmp_path / "teams" / "a", PROD_FILE, "prod.yaml")
    write_spec(tmp_path, ROOT)
    return Path("registry.yaml")


def _clock() -> datetime:
    return NOW


def test_the_plan_shows_the_copy_as_one_change_by_registry_then_file(
    fakes: Registries, tmp_path: Path
) -> None:
    outcome = plan_request(PlanRequest(tree(tmp_path), None, NOW))
    assert [r.registry for r in outcome.tree.registries] == ["dev", "prod"]
    prod = outcome.tree.registries[1]
    copies = [c for c in prod.plan.changes if isinstance(c, CopyVersion)]
    assert [c.text() for c in copies] == [f"copy dev:{MODEL}/3 -> prod"]
    assert prod.files == {MODEL: "teams/a/prod.yaml", "other": "teams/a/prod.yaml"}
    text = render_tree(outcome.tree)
    assert "Registry dev (http://dev.example:5000)\n  No changes." in text
    assert (
        "Registry prod (http://prod.example:5000)\n  teams/a/prod.yaml\n"
        f"    {MODEL}\n      + registered model: {MODEL}\n"
        f"      + new version: copy dev:{MODEL}/3 -> prod\n"
    ) in text
    assert "in registry prod." in text
    doc = tree_document(outcome.tree)
    assert [r["registry"] for r in doc["registries"]] == ["dev", "prod"]
    assert doc["partial"] is False
    # the source was asked, of its own registry, whether it can be copied
    assert ("describe_source", MODEL, "3") in fakes.dev.calls
    # each registry got its own credentials: dev names none, prod its own variables
    assert fakes.dev.credentials == Credentials()
    assert fakes.prod.credentials == Credentials("prod-user", "s3cr3t-prod-password")
    assert redact("refused s3cr3t-prod-password") == "refused ***"


def test_apply_copies_once_and_manages_the_copy_like_any_version(
    fakes: Registries, tmp_path: Path
) -> None:
    root = tree(tmp_path)
    outcome = apply_request(ApplyRequest(root, None, _clock))
    assert outcome.ok
    copy = fakes.prod.models[MODEL].version(1)
    assert copy is not None
    assert copy.stage == "Production"
    ref = SourceRef(registry_identity(DEV), MODEL, 3)
    assert provenance_tags(ref, "r3").items() <= dict(copy.tags).items()
    assert "copy dev:nyc-taxi-regressor/3 -> prod" in copy.description  # the history line
    assert [r.name for r in outcome.registries] == ["dev", "prod"]
    assert outcome.registries[0].result is None  # dev had nothing to do
    again = plan_request(PlanRequest(root, None, NOW))
    assert again.tree.is_empty
    assert len(fakes.prod.models[MODEL].versions) == 1


def test_a_source_that_does_not_exist_is_located_and_nothing_is_applied(
    fakes: Registries, tmp_path: Path
) -> None:
    root = tree(tmp_path)
    (tmp_path / "teams/a/prod.yaml").write_text(
        PROD_FILE.replace(f"dev:{MODEL}/3", f"dev:{MODEL}/9"), encoding="utf-8"
    )
    with pytest.raises(SpecError) as caught:
        apply_request(ApplyRequest(root, None, _clock))
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.path) == (
        "teams/a/prod.yaml",
        7,
        f"models.{MODEL}.versions[0].copy_from",
    )
    assert f"version 9 of model '{MODEL}' does not exist" in issue.message
    assert fakes.dev.writes == 0
    assert fakes.prod.writes == 0


def test_unreadable_source_files_are_located_too(fakes: Registries, tmp_path: Path) -> None:
    fakes.dev.unreadable = frozenset({(MODEL, 3)})  # type: ignore[attr-defined]
    with pytest.raises(SpecError) as caught:
        plan_request(PlanRequest(tree(tmp_path), None, NOW))
    assert "cannot be read" in caught.value.issues[0].message


def test_a_partial_plan_reads_only_what_is_selected(fakes: Registries, tmp_path: Path) -> None:
    root = tree(tmp_path)
    only_dev = plan_request(PlanRequest(root, None, NOW, registries=("dev",)))
    assert [r.registry for r in only_dev.tree.registries] == ["dev"]
    assert only_dev.tree.partial
    assert fakes.prod.opened == 0
    assert fakes.prod.calls == []
    assert "Partial plan (--registry dev)" in render_text(only_dev)

    other = plan_request(PlanRequest(root, None, NOW, models=("other",)))
    assert [r.registry for r in other.tree.registries] == ["prod"]
    assert fakes.dev.calls == [("read",)]  # from the first plan only
    assert other.plan.models == []


def render_text(outcome: reconcile.PlanOutcome) -> str:
    return render_tree(outcome.tree)


@pytest.mark.parametrize(
    ("registries", "models", "uri", "expected"),
    [
        (
            ("qa",),
            (),
            None,
            "unknown registry 'qa' (--registry); registry.yaml declares: dev, prod",
        ),
        ((), ("nope",), None, "no model 'nope' (--model) in registry.yaml; declared: "),
        (("dev",), ("other",), None, "no model 'other' (--model) in registry dev"),
        ((), (), "http://x:5000", "--tracking-uri names one registry, but 2 are selected"),
    ],
)
def test_selection_errors_name_what_is_known(
    fakes: Registries,
    tmp_path: Path,
    registries: tuple[str, ...],
    models: tuple[str, ...],
    uri: str | None,
    expected: str,
) -> None:
    with pytest.raises(GitopsError) as caught:
        plan_request(PlanRequest(tree(tmp_path), uri, NOW, registries=registries, models=models))
    assert expected in caught.value.message
    assert fakes.dev.calls == []
    assert fakes.prod.calls == []


def test_tracking_uri_overrides_the_one_selected_registry(
    fakes: Registries, tmp_path: Path
) -> None:
    fakes.by_uri["http://other:5000"] = Served(
        models=dict(fakes.dev.models), uri="http://other:5000"
    )
    outcome = plan_request(
        PlanRequest(tree(tmp_path), "http://other:5000", NOW, registries=("dev",))
    )
    assert outcome.uri == "http://other:5000"


def test_a_saved_plan_of_two_registries_is_refused_before_reading(
    fakes: Registries, tmp_path: Path
) -> None:
    with pytest.raises(GitopsError) as caught:
        plan_request(PlanRequest(tree(tmp_path), None, NOW, tmp_path / "p.json"))
    assert "a saved plan covers one registry, but 2 are selected" in caught.value.message
    assert fakes.dev.calls == []
    assert not (tmp_path / "p.json").exists()


def test_a_failed_registry_stops_the_ones_after_it(fakes: Registries, tmp_path: Path) -> None:
    root = tree(tmp_path)
    (tmp_path / "teams/a/dev.yaml").write_text(
        DEV_FILE.replace("Staging", "Production"), encoding="utf-8"
    )
    fakes.dev.fail_on = 1
    outcome = apply_request(ApplyRequest(root, None, _clock))
    assert not outcome.ok
    dev, prod = outcome.registries
    assert dev.result is not None
    assert dev.result.count("failed") == 1
    assert prod.skipped
    assert prod.result is None
    assert fakes.prod.writes == 0


def test_the_planner_matches_a_copy_by_provenance_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tree(tmp_path)
    loaded = load_tree(root)
    prod = loaded.files_in("prod")[0]
    identities = {"dev": registry_identity(DEV), "prod": registry_identity(PROD)}
    ref = SourceRef(registry_identity(DEV), MODEL, 3)
    elsewhere = SourceRef("http://elsewhere:80", MODEL, 3)
    cases = {
        "copied": (VersionState(4, "Staging", tags=provenance_tags(ref, "r3")), []),
        "copied from another registry": (
            VersionState(4, "Staging", tags=provenance_tags(elsewhere, "r3")),
            ["CopyVersion"],
        ),
    }
    for name, (version, expected) in cases.items():
        observed = RegistryState(
            models={
                MODEL: ModelState(name=MODEL, versions=(version,)),
                "other": ModelState(name="other", versions=(VersionState(1, "Staging"),)),
            }
        )
        files = [reconcile.PlanFile(prod, prod.name)]
        copies = reconcile.match_copies(files, observed, "prod", identities)
        result = compute_plan(prod, observed, NOW, registry="prod", copies=copies)
        kinds = [type(c).__name__ for c in result.changes if not isinstance(c, TransitionStage)]
        assert kinds == expected, name
        stages = [c for c in result.changes if isinstance(c, TransitionStage)]
        assert [c.after for c in stages if c.reason == "declared"] == ["Production"], name


def test_comment_and_markdown_plan_of_part_of_the_tree(
    fakes: Registries, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree(tmp_path)
    shown = run_cli(capsys, "comment", str(root), "--registry", "dev")
    assert "no pull request to comment on" in shown.err  # outside Actions: printed, not posted
    assert "Partial plan" in shown.out
    assert "Registry dev" in shown.out
    assert fakes.prod.opened == 0  # prod neither read nor changed

    markdown = run_cli(capsys, "plan", str(root), "--format", "markdown", "--model", MODEL)
    assert markdown.code == 0, markdown.err
    # by registry, then by file: the copy under prod, in prod's file
    assert "Partial plan" in markdown.out
    assert markdown.out.index("Registry prod") < markdown.out.index(r"teams/a/prod\.yaml")
    assert r"copy dev:nyc\-taxi\-regressor/3" in markdown.out


GATED_PROD_FILE = """
version: 1
registry: prod
models:
  other:
    versions:
      - {version: 1, stage: Production}
    gates:
      Production:
        - {max_size_mb: 50}
"""


def saved_prod_plan(tmp_path: Path, prod_file: str = GATED_PROD_FILE) -> Path:
    """`plan registry.yaml --registry prod --out prod.json` of a tree whose prod file is
    `prod_file` (no copies: a saved plan holds one registry)."""
    root = tree(tmp_path)
    (tmp_path / "teams/a/prod.yaml").write_text(prod_file, encoding="utf-8")
    out = tmp_path / "prod.json"
    plan_request(PlanRequest(root, None, NOW, out, registries=("prod",)))
    return out


@pytest.fixture
def gated_prod_plan(fakes: Registries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """saved_prod_plan with the gate of `other` on prod passing (its evidence: SMALL)."""
    monkeypatch.setattr(connect, "open_evidence", lambda *_: FakeEvidence(models=SMALL))
    return saved_prod_plan(tmp_path)


def test_a_saved_plan_of_a_named_registry_applies_with_its_own_credentials(
    fakes: Registries, gated_prod_plan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = gated_prod_plan
    assert json.loads(saved.read_text(encoding="utf-8"))["registry_name"] == "prod"
    fakes.prod.credentials = None
    # MLflow's own variables name another user: a saved plan of prod must not send them
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone-else")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-prods-password")
    outcome = apply_request(ApplyRequest(saved, None, _clock))
    assert outcome.ok
    assert fakes.prod.credentials == Credentials("prod-user", "s3cr3t-prod-password")
    assert fakes.prod.models["other"].version(1).stage == "Production"  # type: ignore[union-attr]
    assert fakes.dev.opened == 0


def test_a_saved_plan_gated_in_an_included_file_is_not_stale(
    fakes: Registries, gated_prod_plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = gated_prod_plan
    (gate,) = load_plan(saved).plan.gates
    assert (gate.model, gate.verdict) == ("other", "pass")
    prod_file = tmp_path / "teams/a/prod.yaml"
    # the gate spec in the included file changed since: the verdict would differ, so stale
    prod_file.write_text(GATED_PROD_FILE.replace("50", "10"), encoding="utf-8")
    with pytest.raises(StalePlanError) as caught:
        apply_request(ApplyRequest(saved, None, _clock))
    assert "gate inputs changed since this plan was made" in caught.value.message
    assert fakes.prod.models["other"].version(1).stage == "Staging"  # type: ignore[union-attr]
    # as it was planned: the gates run again per file and agree
    prod_file.write_text(GATED_PROD_FILE, encoding="utf-8")
    outcome = apply_request(ApplyRequest(saved, None, _clock))
    assert outcome.ok
    assert fakes.prod.models["other"].version(1).stage == "Production"  # type: ignore[union-attr]


def test_a_saved_plan_without_its_registry_name_is_refused_for_a_tree(
    fakes: Registries, tmp_path: Path
) -> None:
    saved = saved_prod_plan(tmp_path)
    doc = json.loads(saved.read_text(encoding="utf-8"))
    del doc["registry_name"]  # as an older mlflow-gitops wrote it
    saved.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(GitopsError) as caught:
        apply_request(ApplyRequest(saved, None, _clock))
    assert "does not record which registry of registry.yaml" in caught.value.message
    assert "plan --registry NAME --out" in caught.value.hint
    assert fakes.prod.writes == 0


def test_a_copy_recorded_under_another_host_name_is_found_by_its_source_run(
    fakes: Registries, tmp_path: Path
) -> None:
    """prod holds a copy of dev's version 3 made when dev was reached under another name: the
    source run's id (asked of dev) finds it, and nothing is copied again."""
    before = SourceRef("http://10.0.0.5:5000", MODEL, 3)
    fakes.prod.models = {
        **fakes.prod.models,
        MODEL: ModelState(
            name=MODEL,
            versions=(VersionState(1, "Production", tags=provenance_tags(before, "r3")),),
        ),
    }
    outcome = plan_request(PlanRequest(tree(tmp_path), None, NOW))
    assert outcome.tree.is_empty
    assert ("describe_source", MODEL, "3") in fakes.dev.calls  # asked for the run id

    # another run id behind that identity is another source: copied
    fakes.prod.models = {
        **fakes.prod.models,
        MODEL: ModelState(
            name=MODEL,
            versions=(VersionState(1, "Production", tags=provenance_tags(before, "r9")),),
        ),
    }
    again = plan_request(PlanRequest(Path("registry.yaml"), None, NOW))
    copies = [c for c in again.plan.changes if isinstance(c, CopyVersion)]
    assert [c.text() for c in copies] == [f"copy dev:{MODEL}/3 -> prod"]


def test_an_unsigned_copy_into_a_registry_that_needs_signatures_is_refused_at_plan(
    fakes: Registries, tmp_path: Path
) -> None:
    """Unity Catalog registers only models with a signature: the plan says so at the entry's
    copy_from, naming the source run and model, before anything is applied."""
    fakes.dev.unsigned = frozenset({(MODEL, 3)})
    fakes.prod.requires_signature = True
    with pytest.raises(SpecError) as caught:
        apply_request(ApplyRequest(tree(tmp_path), None, _clock))
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.path) == (
        "teams/a/prod.yaml",
        6,
        f"models.{MODEL}.versions[0].copy_from",
    )
    assert issue.message == (
        f"cannot copy dev:{MODEL}/3 -> prod: registry 'prod' is in Unity Catalog, which "
        "registers only models with a signature (inputs and outputs), and the model "
        f"runs:/r3/model (run r3) at {registry_identity(DEV)} cannot be registered there: the "
        "model was logged without a signature"
    )
    assert "infer_signature" in issue.hint
    assert fakes.prod.writes == 0
    # a registry that takes unsigned models copies it
    fakes.prod.requires_signature = False
    assert apply_request(ApplyRequest(Path("registry.yaml"), None, _clock)).ok
