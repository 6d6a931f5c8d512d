"""Fuzz the loader: whatever the file holds, `load` returns a spec or raises SpecError with located
issues; any other exception is a bug. Files that load are planned, rendered and applied against
the in-memory registry, where again only SpecError may escape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_gitops.audit import AuditContext
from mlflow_gitops.errors import SpecError
from mlflow_gitops.reconcile import apply_plan, make_plan
from mlflow_gitops.render import json as render_json
from mlflow_gitops.render import markdown as render_markdown
from mlflow_gitops.render import text as render_text
from mlflow_gitops.spec.load import load
from mlflow_gitops.spec.located import LoadedSpec
from tests.reliability.corpus_cases import RUN_MISSING, RUN_SHARED, RUN_V2, standard_registry

NOW = datetime(2026, 11, 27, tzinfo=UTC)  # the one clock of these plans

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def load_or_refuse(folder: Path, data: bytes) -> LoadedSpec | None:
    """Load the bytes as registry.yaml: a spec, or None for a SpecError with located issues.
    Anything else is a bug and fails the test."""
    path = folder / "registry.yaml"
    path.write_bytes(data)
    try:
        return load(path)
    except SpecError as exc:
        error = exc
    lines = len(data.decode("utf-8", "replace").splitlines()) + 2  # YAML also breaks at NEL, LS
    assert error.issues
    for issue in error.issues:
        assert issue.file == str(path)
        assert 1 <= issue.line <= lines, issue
        assert issue.column >= 1, issue
        assert issue.message.strip(), issue
    return None


# --- text and bytes ------------------------------------------------------------------------------

TOKENS = st.sampled_from(
    [
        "version: 1\n", "models:\n", "  m:\n", "    versions:\n", "      - ", "version: ",
        "stage: ", "Production", "staging", "run: ", "source: ", "tags: ", "aliases: ",
        "gates:\n", "description: ", "defaults: ", "max_per_stage: ", "{", "}", "[", "]", ", ",
        ": ", "- ", "\n", "  ", "    ", "\t", "&a ", "*a", "<<: ", "!!str ", "!!binary ", "!!int ",
        "!!python/name:os.system ", "? ", "'", '"', "#", "|\n", ">-\n", "---\n", "...\n",
        "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "\\x41", "~", "null", ".nan", "-.inf", "0x1F",
        "0o17", "1e400", "2021-03-01", "12:30:00", "yes", "=", "\ufeff", "\x85", "\u2028", "é",
        "1", "-7", "2147483648", "run:", "source:", "latest", "v3", "mlflow_gitops.actor", "\x00",
    ]
)  # fmt: skip
# mostly characters PyYAML reads, so that most examples get past the reader
NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
PRINTABLE = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\t\n\r\x85"
).filter(lambda c: not NON_PRINTABLE.match(c))
YAMLISH = st.lists(TOKENS | st.text(PRINTABLE, max_size=6), max_size=40).map("".join)


@FUZZ
@given(text=YAMLISH | st.text(PRINTABLE) | st.text())
def test_text_never_crashes_the_loader(folder: Path, text: str) -> None:
    load_or_refuse(folder, text.encode("utf-8"))


@FUZZ
@given(data=st.binary())
def test_bytes_never_crash_the_loader(folder: Path, data: bytes) -> None:
    load_or_refuse(folder, data)


# --- YAML structures ---------------------------------------------------------------------------

VOCABULARY = st.sampled_from(
    [
        "version", "models", "defaults", "tracking_uri", "versions", "stage", "tags", "aliases",
        "description", "gates", "run", "source", "archive_previous", "unmanaged_versions",
        "max_per_stage", "metric", "max", "min", "evaluate", "checks", "policy", "deleted",
        "mirror_stages_to_aliases", "Production", "Staging", "m", "champion", "<<",
    ]
)  # fmt: skip
TEXT = st.text(PRINTABLE, max_size=12) | st.text(max_size=4)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats()
    | TEXT
    | VOCABULARY
    | st.dates()
)
KEYS = VOCABULARY | TEXT | st.integers(-3, 3) | st.booleans() | st.none()
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


@FUZZ
@given(
    document=STRUCTURES
    | st.fixed_dictionaries({"version": st.just(1) | SCALARS, "models": STRUCTURES}),
    flow=st.sampled_from([None, True, False]),
)
def test_yaml_structures_never_crash_the_loader(folder: Path, document: Any, flow: Any) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    load_or_refuse(folder, text.encode("utf-8"))


# --- near-valid files, all the way through plan, render and apply -------------------------------

JUNK = (
    st.none()
    | st.integers(-2, 3)
    | st.sampled_from(["", "x", "Production", ".."])
    | st.lists(st.integers(0, 2), max_size=2)
)


def maybe_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-typed values, sometimes the wrong thing."""
    return st.one_of(strategy, strategy, strategy, JUNK)


STAGE_IN = st.sampled_from(["None", "Staging", "Production", "Archived", "production", "PROD"])
TAG_MAP = st.dictionaries(
    st.sampled_from(["team", "task", "owner", "mlflow_gitops.x", ""]),
    st.none() | st.sampled_from(["rides", "1", "true"]) | st.integers(0, 3) | st.booleans(),
    max_size=3,
)
REFERENCE = st.one_of(
    st.fixed_dictionaries({"version": maybe_junk(st.integers(1, 6))}),
    st.fixed_dictionaries(
        {"run": maybe_junk(st.sampled_from([RUN_V2, RUN_SHARED, RUN_MISSING, RUN_V2[:8]]))}
    ),
    st.fixed_dictionaries(
        {"source": maybe_junk(st.sampled_from([f"runs:/{RUN_V2}/model", "s3://b/m", ""]))}
    ),
)
VERSION_ENTRY = st.builds(
    lambda ref, extra: {**ref, **extra},
    REFERENCE,
    st.fixed_dictionaries(
        {},
        optional={
            "stage": maybe_junk(STAGE_IN),
            "tags": maybe_junk(TAG_MAP),
            "description": maybe_junk(st.sampled_from(["", "GBR", "two\nlines"])),
        },
    ),
)
ALIAS_TARGET = st.none() | st.integers(-1, 6) | st.sampled_from(
    [f"run:{RUN_V2}", f"run:{RUN_MISSING}", "source:s3://b/m", "two"]
)  # fmt: skip
LIMITS = st.dictionaries(STAGE_IN, maybe_junk(st.integers(0, 3)), max_size=2)
METRIC_GATE = st.fixed_dictionaries(
    {"metric": st.sampled_from(["rmse", "mae"])},
    optional={
        "max": maybe_junk(st.floats(0, 10, allow_nan=False)),
        "min": st.floats(0, 10, allow_nan=False),
    },
)
GATES = st.dictionaries(
    st.sampled_from(["Production", "staging", "alias:champion", "Prod"]),
    st.lists(METRIC_GATE | st.fixed_dictionaries({"max_size_mb": maybe_junk(st.floats(0, 100))})),
    max_size=2,
)
MODEL = st.fixed_dictionaries(
    {},
    optional={
        "description": maybe_junk(st.sampled_from(["Trip duration.", ""])),
        "tags": maybe_junk(TAG_MAP),
        "aliases": maybe_junk(
            st.dictionaries(st.sampled_from(["champion", "shadow", "latest", "a b"]), ALIAS_TARGET)
        ),
        "versions": maybe_junk(st.lists(VERSION_ENTRY, max_size=4)),
        "gates": GATES,
        "archive_previous": maybe_junk(st.booleans()),
        "unmanaged_versions": maybe_junk(st.sampled_from(["ignore", "archive"])),
        "max_per_stage": LIMITS,
    },
)
SPEC = st.fixed_dictionaries(
    {
        "version": maybe_junk(st.just(1)),
        "models": st.dictionaries(st.sampled_from(["m", "brand-new", "a:b"]), MODEL, max_size=2),
    },
    optional={
        "defaults": st.fixed_dictionaries(
            {},
            optional={
                "archive_previous": st.booleans(),
                "unmanaged_versions": st.sampled_from(["ignore", "archive"]),
                "max_per_stage": LIMITS,
            },
        )
    },
)


@settings(FUZZ, max_examples=400)
@given(document=SPEC)
def test_near_valid_files_never_crash_plan_render_or_apply(folder: Path, document: Any) -> None:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    loaded = load_or_refuse(folder, text.encode("utf-8"))
    if loaded is None:
        return
    registry = standard_registry()
    try:
        planned = make_plan(loaded, registry, None, NOW)
    except SpecError:
        assert registry.writes == 0
        return
    render_text.render_plan(planned.plan)
    render_markdown.render_plan(planned.plan)
    render_json.render_plan(planned.plan, tracking_uri="sqlite:///x.db", file="registry.yaml")
    result = apply_plan(planned, registry, AuditContext(actor="fuzz"), NOW, parallelism=1)
    assert result.ok, [s for s in result.steps if s.status == "failed"]
    for name in set(planned.plan.blocked):
        assert not any(c[1] == name for c in registry.calls if c[0] != "read")
