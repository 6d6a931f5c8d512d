"""docs/architecture.md kept true: the layer table there is the law of imports. Every import counts
(module-level, function-local, under TYPE_CHECKING). A node is a top-level module (`cli`,
`reconcile`, ...) or folder (`plan`, `gates`, `registry`, ...) of the package; each sits on one
layer of the table, and imports only from its own layer or lower ones, with no circle between
nodes and none between the modules inside a folder."""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "mlflow_gitops"
ROOT = Path(__file__).parents[1]
SOURCE = ROOT / "src" / PACKAGE
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Nodes outside the layers: they may import the tool; nothing in the tool imports them.
ASIDE = frozenset({"demo"})

# Imports up the table still to be removed (none since issue 16: gate evidence goes through the
# registry adapter, apply steps carry the change, not its text). Known, so listed, not failed; an
# entry that no import makes any more fails, so the list only shrinks.
KNOWN_UP: frozenset[tuple[str, str]] = frozenset()
# Circles of imports inside a folder, each closed by a function-local or TYPE_CHECKING import:
# (folder, its modules, sorted). Known, so listed, not failed; the same rule empties the list.
KNOWN_CIRCLES = frozenset(
    {
        ("gates", ("evidence", "spark")),
        ("spec", ("check", "load")),
    }
)

# node -> imported node -> where: the first "file:line" that makes the edge
Graph = dict[str, dict[str, str]]


def node_of(module: str) -> str | None:
    """The top-level module or folder a dotted name lies in; None outside the package or for the
    package itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def imports_of(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in the file; `from a import b` yields `a.b`, since
    b may be a module (for a function or a class the node is that of `a` all the same)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, up level-1 packages
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def import_graph(source: Path = SOURCE) -> Graph:
    """The edges between nodes, each with the first place that makes it."""
    graph: Graph = {}
    nodes = {p.stem for p in source.glob("*.py")} | {p.name for p in source.iterdir() if p.is_dir()}
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source.parent).with_suffix("")
        package = ".".join(relative.parts[:-1])
        here = node_of(".".join(relative.parts))
        if here is None or here == "__init__":
            continue
        graph.setdefault(here, {})
        for line, module in imports_of(path, package):
            there = node_of(module)
            if there in nodes and there not in (here, "__init__"):  # not `__version__`
                where = f"{path.relative_to(source.parent)}:{line} imports {module}"
                graph[here].setdefault(there, where)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a closed path of nodes) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, {})):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_closed_path(graph, component) for component in sorted(components)]


def _closed_path(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first node, staying inside the component."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph.get(node, {})):
                if other == start:
                    return [*paths[node], start]
                if other in members and other not in paths:
                    paths[other] = [*paths[node], other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # Tarjan said there is one


def describe(graph: Graph, cycle: list[str]) -> str:
    """`plan -> gates -> plan`, then the import that makes each step."""
    steps = [f"    {a} -> {b}: {graph[a][b]}" for a, b in itertools.pairwise(cycle)]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def layers(doc: Path = ARCHITECTURE) -> dict[str, int]:
    """The layer of every node, from the table whose header starts `| layer | module or folder |`:
    each row is a layer number and the nodes on it, in backticks (a folder ends in `/`)."""
    table: dict[str, int] = {}
    rows = iter(doc.read_text(encoding="utf-8").splitlines())
    for line in rows:
        if re.match(r"\|\s*layer\s*\|\s*module or folder\s*\|", line):
            break
    else:
        raise AssertionError(f"{doc}: no table with the header `| layer | module or folder | ...`")
    next(rows)  # |---|---|...
    for line in rows:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2:
            break
        for name in re.findall(r"`([^`]+)`", cells[1]):
            assert name.rstrip("/") not in table, f"{doc}: {name} is on two layers"
            table[name.rstrip("/")] = int(cells[0])
    return table


@dataclass(frozen=True)
class Import:
    """One import between two nodes: where it is, from which module, of which name."""

    where: str  # mlflow_gitops/gates/evidence.py:12
    module: str  # mlflow_gitops.gates.evidence
    imported: str  # mlflow_gitops.registry.client.MlflowRegistry
    here: str  # gates
    there: str  # registry


def imports(source: Path = SOURCE) -> Iterator[Import]:
    """Every import of one node by another (or, inside a folder, of one module by another)."""
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source.parent).with_suffix("")
        package = ".".join(relative.parts[:-1])
        for line, imported in imports_of(path, package):
            if imported.split(".")[0] == PACKAGE:
                yield Import(
                    where=f"{path.relative_to(source.parent)}:{line}",
                    module=".".join(relative.parts),
                    imported=imported,
                    here=relative.parts[1],
                    there=imported.split(".")[1] if "." in imported else "__init__",
                )


def imports_up(table: dict[str, int], source: Path = SOURCE) -> list[tuple[tuple[str, str], str]]:
    """((from node, to node), a line that names the import and both layers) for every import of a
    higher layer."""
    found, seen = [], set()
    for i in imports(source):  # one line per import statement (`from a import b, c` is one)
        if (i.where, i.there) in seen:
            continue
        seen.add((i.where, i.there))
        if i.here in table and i.there in table and table[i.there] > table[i.here]:
            line = (
                f"{i.where}: {i.module} imports {i.imported}: "
                f"{i.here} (layer {table[i.here]}) -> {i.there} (layer {table[i.there]})"
            )
            found.append(((i.here, i.there), line))
    return found


def folder_graphs(source: Path = SOURCE) -> dict[str, Graph]:
    """Per folder of the package, the imports between its modules (`__init__` stands for a name
    the folder's package itself holds)."""
    folders = {  # a folder's modules, and its subfolders, each one node (registry/mlflow/)
        p.parent.name: {m.stem for m in p.parent.glob("*.py")}
        | {d.name for d in p.parent.iterdir() if (d / "__init__.py").exists()}
        for p in source.glob("*/__init__.py")
    }
    graphs: dict[str, Graph] = {name: {m: {} for m in modules} for name, modules in folders.items()}
    for i in imports(source):
        parts, inside = i.module.split("."), i.imported.split(".")
        if i.here != i.there or i.here not in folders:
            continue
        modules = folders[i.here]
        target = inside[2] if len(inside) > 2 and inside[2] in modules else "__init__"
        if target != parts[2]:
            graphs[i.here][parts[2]].setdefault(target, f"{i.where} imports {i.imported}")
    return graphs


def test_no_import_cycle_between_modules_and_folders() -> None:
    graph = import_graph()
    assert {"cli", "plan", "registry", "spec"} <= set(graph)  # it read the package
    found = [describe(graph, cycle) for cycle in cycles(graph)]
    assert found == [], (
        "import cycles between top-level modules or folders of src/mlflow_gitops (imports go one "
        "way, see docs/architecture.md; move what both sides need to the lower one):\n"
        + "\n".join(found)
    )


def test_the_layer_table_names_every_module_and_folder() -> None:
    table = layers()
    nodes = {p.stem for p in SOURCE.glob("*.py")} | {
        p.name for p in SOURCE.iterdir() if (p / "__init__.py").exists()
    }
    nodes -= {"__init__", *ASIDE}
    assert sorted(nodes - set(table)) == [], (
        "modules or folders of src/mlflow_gitops that the layer table in docs/architecture.md "
        "lacks: add each to the row of its layer"
    )
    assert sorted(set(table) - nodes) == [], (
        "rows of the layer table in docs/architecture.md name what the package does not have"
    )


def test_the_layout_lists_every_module_and_folder() -> None:
    """docs/architecture.md's layout block names each top-level `module.py` and `folder/`."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^  (\w+(?:\.py|/))", block, re.MULTILINE))
    present = {p.name for p in SOURCE.glob("*.py") if p.name != "__init__.py"} | {
        f"{p.name}/" for p in SOURCE.iterdir() if (p / "__init__.py").exists()
    }
    assert sorted(present - listed) == [], "add these to the layout in docs/architecture.md"
    assert sorted(listed - present) == [], "the layout in docs/architecture.md names these"


def test_no_import_goes_up_the_layer_table() -> None:
    found = imports_up(layers())
    unknown = [line for pair, line in found if pair not in KNOWN_UP]
    assert unknown == [], (
        "imports up the layer table of docs/architecture.md (a module imports only from its own "
        "layer or lower ones: move what both sides need down, or pass it in as a value):\n"
        + "\n".join(unknown)
    )
    stale = sorted(KNOWN_UP - {pair for pair, _ in found})
    assert stale == [], f"KNOWN_UP in this file lists imports that no longer go up: remove {stale}"


def test_no_circle_of_imports_inside_a_folder() -> None:
    graphs = folder_graphs()
    assert {"plan", "registry", "spec"} <= set(graphs)  # it read the folders
    found, seen = [], set()
    for folder, graph in graphs.items():
        for cycle in cycles(graph):
            seen.add((folder, tuple(sorted(set(cycle)))))
            if (folder, tuple(sorted(set(cycle)))) not in KNOWN_CIRCLES:
                found.append(f"{folder}/: {describe(graph, cycle)}")
    assert found == [], (
        "circles of imports between the modules of a folder (move what both need into a third "
        "module they both import):\n" + "\n".join(found)
    )
    stale = sorted(KNOWN_CIRCLES - seen)
    assert stale == [], f"KNOWN_CIRCLES in this file lists circles that are gone: remove {stale}"


def test_the_tool_never_imports_the_demo() -> None:
    """demo/ ships in the wheel for `python -m mlflow_gitops.demo` and the example's evaluation
    hook (docs/architecture.md): it may use the tool, the tool never uses it."""
    graph = import_graph()
    assert [graph[node]["demo"] for node in sorted(graph) if "demo" in graph[node]] == []


def write_package(source: Path, files: dict[str, str]) -> None:
    """A package for the checks' own tests: path under the package -> text."""
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")


def test_a_cycle_is_found_through_every_kind_of_import(tmp_path: Path) -> None:
    """The check itself: relative, function-local and `from package import module` imports make
    edges; a cycle is reported with its path and the import of each step."""
    source = tmp_path / PACKAGE
    files = {
        "__init__.py": "from mlflow_gitops import cli\n__version__ = '1'\n",
        "cli.py": "import mlflow_gitops.reconcile\nfrom mlflow_gitops import __version__\n",
        "reconcile.py": "from mlflow_gitops.plan import planner\n",
        "plan/__init__.py": "",
        "plan/planner.py": "from .changes import Change\nfrom ..gates import run\n",
        "plan/changes.py": "def later():\n    from mlflow_gitops.gates.result import GateResult\n",
        "gates/__init__.py": "",
        "gates/run.py": "from mlflow_gitops.plan import changes\n",
        "gates/result.py": "",
        "render.py": "from mlflow_gitops.spec import model\n",
        "spec/model.py": "from mlflow_gitops import render\n",
    }
    write_package(source, files)
    graph = import_graph(source)
    assert graph["cli"] == {"reconcile": f"{PACKAGE}/cli.py:1 imports {PACKAGE}.reconcile"}
    found = cycles(graph)
    assert found == [["gates", "plan", "gates"], ["render", "spec", "render"]]
    assert describe(graph, found[0]) == (
        "gates -> plan -> gates\n"
        f"    gates -> plan: {PACKAGE}/gates/run.py:1 imports {PACKAGE}.plan.changes\n"
        f"    plan -> gates: {PACKAGE}/plan/changes.py:2 imports {PACKAGE}.gates.result.GateResult"
    )


def test_an_import_up_and_a_circle_inside_a_folder_are_named(tmp_path: Path) -> None:
    """The check itself: the table is read from its rows (several nodes on one, folders with
    `/`); an import of a higher layer is named with file:line, both modules and both layers,
    however it is written; an import on the same layer or down is not; a circle inside a folder
    is found through relative and function-local imports."""
    doc = tmp_path / "architecture.md"
    doc.write_text(
        "# A\n\n| layer | module or folder | role |\n|---|---|---|\n"
        "| 0 | `errors`, `record` | the bottom; `not_a_node` in the role is not read |\n"
        "| 1 | `spec/` | the file |\n| 2 | `cli` | commands |\n\nafter the table: `ignored`\n",
        encoding="utf-8",
    )
    table = layers(doc)
    assert table == {"errors": 0, "record": 0, "spec": 1, "cli": 2}
    source = tmp_path / PACKAGE
    files = {
        "__init__.py": "",
        "errors.py": "def later():\n    from mlflow_gitops.spec import model\n",
        "record.py": "from . import errors\nfrom mlflow_gitops import cli\n",
        "cli.py": "import mlflow_gitops.spec.load\n",
        "spec/__init__.py": "",
        "spec/model.py": "from .load import parse\n",
        "spec/load.py": "def later():\n    from mlflow_gitops.spec import model\n",
        "spec/check.py": "from mlflow_gitops.spec import model, load\n",
    }
    write_package(source, files)
    assert imports_up(table, source) == [
        (
            ("errors", "spec"),
            f"{PACKAGE}/errors.py:2: {PACKAGE}.errors imports {PACKAGE}.spec.model: "
            "errors (layer 0) -> spec (layer 1)",
        ),
        (
            ("record", "cli"),
            f"{PACKAGE}/record.py:2: {PACKAGE}.record imports {PACKAGE}.cli: "
            "record (layer 0) -> cli (layer 2)",
        ),
    ]
    graph = folder_graphs(source)["spec"]
    assert cycles(graph) == [["load", "model", "load"]]
    assert describe(graph, ["load", "model", "load"]) == (
        "load -> model -> load\n"
        f"    load -> model: {PACKAGE}/spec/load.py:2 imports {PACKAGE}.spec.model\n"
        f"    model -> load: {PACKAGE}/spec/model.py:1 imports {PACKAGE}.spec.load.parse"
    )
