"""docs/architecture.md kept true: imports between the top-level modules and folders of the package
go one way. Every import counts (module-level, function-local, under TYPE_CHECKING): a node is a
top-level module (`cli`, `reconcile`, ...) or folder (`plan`, `gates`, `registry`, ...)."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "mlflow_gitops"
SOURCE = Path(__file__).parents[1] / "src" / PACKAGE

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


def test_no_import_cycle_between_modules_and_folders() -> None:
    graph = import_graph()
    assert {"cli", "plan", "registry", "spec"} <= set(graph)  # it read the package
    found = [describe(graph, cycle) for cycle in cycles(graph)]
    assert found == [], (
        "import cycles between top-level modules or folders of src/mlflow_gitops (imports go one "
        "way, see docs/architecture.md; move what both sides need to the lower one):\n"
        + "\n".join(found)
    )


def test_the_tool_never_imports_the_demo() -> None:
    """demo/ ships in the wheel for `python -m mlflow_gitops.demo` and the example's evaluation
    hook (docs/architecture.md): it may use the tool, the tool never uses it."""
    graph = import_graph()
    assert [graph[node]["demo"] for node in sorted(graph) if "demo" in graph[node]] == []


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
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    graph = import_graph(source)
    assert graph["cli"] == {"reconcile": f"{PACKAGE}/cli.py:1 imports {PACKAGE}.reconcile"}
    found = cycles(graph)
    assert found == [["gates", "plan", "gates"], ["render", "spec", "render"]]
    assert describe(graph, found[0]) == (
        "gates -> plan -> gates\n"
        f"    gates -> plan: {PACKAGE}/gates/run.py:1 imports {PACKAGE}.plan.changes\n"
        f"    plan -> gates: {PACKAGE}/plan/changes.py:2 imports {PACKAGE}.gates.result.GateResult"
    )
