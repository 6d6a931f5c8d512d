"""The bad-input corpus: static files under corpus/ with an `# expect:` header, plus the cases
that are generated at test time (too big to commit, or not expressible with an ASCII header)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_gitops.observed import ModelState, VersionState
from mlflow_gitops.spec.load import MAX_FILE_BYTES
from tests.fakes import FakeRegistry

CORPUS = Path(__file__).parent / "corpus"
HEADER_KEYS = ("case", "expect", "path", "stage", "xfail")


def run_id(seed: str) -> str:
    """A deterministic 32-character run id."""
    return hashlib.md5(seed.encode()).hexdigest()


# The registry every `stage: plan` case is planned against (see corpus/README.md).
RUN_V1, RUN_V2, RUN_SHARED, RUN_MISSING = (run_id(s) for s in ("v1", "v2", "shared", "missing"))


def standard_registry() -> FakeRegistry:
    """Model `m`: v1 Archived, v2 Production, v3 Staging and v4 None (both from one run)."""

    def version(number: int, stage: str, run: str) -> VersionState:
        return VersionState(number, stage, source=f"runs:/{run}/model", run_id=run)

    return FakeRegistry(
        models={
            "m": ModelState(
                name="m",
                description="The taxi model.",
                tags={"team": "rides"},
                aliases={"champion": 2},
                versions=(
                    version(1, "Archived", RUN_V1),
                    version(2, "Production", RUN_V2),
                    version(3, "Staging", RUN_SHARED),
                    version(4, "None", RUN_SHARED),
                ),
            )
        },
        runs={RUN_V1, RUN_V2, RUN_SHARED},
    )


@dataclass(frozen=True)
class Case:
    """One bad registry.yaml and what must happen to it."""

    name: str
    line: int | None  # where the problem is (None: any line, for a limit whose size may change)
    column: int | None  # None: any column
    message: str  # a fragment of the rendered error ('' when only the location is asserted)
    path: str = ""  # the field path of one reported issue ('' when not asserted)
    stage: str = "load"  # load: load() raises; plan: make_plan() against standard_registry()
    xfail: str = ""  # a known bug in src/: the reason, and the test is strict-xfail
    make: Callable[[Path], None] | None = None  # writes a generated case; None: a corpus file

    def materialize(self, folder: Path) -> Path:
        """The file to load: the corpus file itself, or the generated one written into folder."""
        if self.make is None:
            return CORPUS / self.name
        path = folder / self.name
        if not path.exists():
            self.make(path)
        return path


def parse_header(path: Path) -> Case:
    """A corpus file's `# key: value` header lines -> Case."""
    meta: dict[str, str] = {}
    for raw in path.read_bytes().split(b"\n"):
        text = raw.decode("latin-1").rstrip("\r")
        if not text.startswith("# "):
            break
        key, sep, value = text[2:].partition(":")
        if sep and key in HEADER_KEYS:
            meta[key] = value.strip()
    where, _, message = meta["expect"].partition(" ")
    line, _, column = where.partition(":")
    return Case(
        name=path.name,
        line=int(line),
        column=int(column) if column else None,
        message=message,
        path=meta.get("path", ""),
        stage=meta.get("stage", "load"),
        xfail=meta.get("xfail", ""),
    )


# --- generated cases ------------------------------------------------------------------------------


def _write(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def _over_size_limit(path: Path) -> None:
    # a valid-looking file just over the cap: rejected on its size before any parsing
    with path.open("w", encoding="utf-8") as out:
        out.write("version: 1\nmodels:\n")
        written, i = 20, 0
        while written <= MAX_FILE_BYTES:
            entry = f"  model-{i:07d}:\n    tags: {{team: rides}}\n"
            out.write(entry)
            written += len(entry)
            i += 1


def _many_tiny_nodes(path: Path) -> None:
    # under the size cap, but millions of nodes: must be refused within the CPU and memory limits
    body = ",".join(["1"] * ((MAX_FILE_BYTES - 4096) // 2))
    path.write_text(f"version: 1\nmodels: [{body}]\n", encoding="utf-8")


def _utf16(path: Path) -> None:
    path.write_bytes("version: 1\nmodels: {}\n".encode("utf-16"))


DEPTH = 20_000

GENERATED = [
    Case(
        "generated-over-size-limit.yaml",
        1,
        1,
        f"over the {MAX_FILE_BYTES:,}-byte limit",
        make=_over_size_limit,
    ),
    Case(
        "generated-tiny-nodes-under-the-size-cap.yaml",
        2,
        None,
        "",
        make=_many_tiny_nodes,
    ),
    Case("generated-utf16.yaml", 1, 1, "not UTF-8 text", make=_utf16),
    Case(
        "generated-bom-then-error.yaml",
        3,
        None,
        "unknown key 'colour'",
        "models.m.colour",
        make=_write("\ufeffversion: 1\nmodels:\n  m: {colour: red}\n"),
    ),
    Case(
        "generated-deep-flow-sequences.yaml",
        2,
        None,
        "",
        make=_write("version: 1\nmodels: " + "[" * DEPTH + "]" * DEPTH + "\n"),
    ),
    Case(
        "generated-deep-flow-mappings.yaml",
        2,
        None,
        "",
        make=_write("version: 1\nmodels: " + "{a: " * DEPTH + "1" + "}" * DEPTH + "\n"),
    ),
    Case(
        "generated-deep-block-mappings.yaml",
        None,
        None,
        "nests deeper than",
        make=_write("version: 1\nmodels:\n" + "".join(" " * i + "a:\n" for i in range(2, 1500))),
    ),
]


def runs_alone(name: str) -> bool:
    """The case that uses up its whole CPU budget today gets a child process of its own, so that
    it runs next to the others (two cores) rather than after them."""
    return name == "generated-tiny-nodes-under-the-size-cap.yaml"


def all_cases() -> list[Case]:
    """Every corpus file and every generated case, sorted by name."""
    static = [parse_header(p) for p in sorted(CORPUS.glob("*.yaml"))]
    return sorted(static + GENERATED, key=lambda c: c.name)
