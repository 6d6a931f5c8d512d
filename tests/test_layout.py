"""The test tree's own rule: no file under tests/ imports a test module (a `test_*.py` or a
`conftest.py`). Shared code lives in helper modules (tests/servers.py, tests/helpers.py,
tests/<folder>/harness.py, ...), shared fixtures in a conftest.py that pytest finds by itself."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def is_test_module(name: str, root: Path = ROOT) -> bool:
    """Whether a dotted module name is a test module under root/tests."""
    parts = name.split(".")
    if parts[0] != "tests":
        return False
    leaf = parts[-1]
    if not (leaf.startswith("test_") or leaf == "conftest"):
        return False
    return root.joinpath(*parts).with_suffix(".py").is_file()


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, function-local ones included; `from a import
    b` yields both `a` and `a.b` (b may be a module)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def offenders(root: Path = ROOT) -> list[str]:
    """`file:line imports module` for every import of a test module under root/tests."""
    return [
        f"{path.relative_to(root)}:{line} imports {module}"
        for path in sorted((root / "tests").rglob("*.py"))
        for line, module in imported_modules(path, root)
        if is_test_module(module, root)
    ]


def test_no_test_module_imports_another() -> None:
    found = offenders()
    assert found == [], (
        "test modules import other test modules (move what they share into a helper module such "
        "as tests/<folder>/harness.py, or a fixture into a conftest.py):\n  " + "\n  ".join(found)
    )


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    """Each way of importing a test module is caught (function-local and relative ones too);
    helper modules, and names that merely look like test modules, are not."""
    files = {
        "tests/reliability/test_convergence.py": "",
        "tests/reliability/test_limits.py": "",
        "tests/reliability/harness.py": "",
        "tests/auth/conftest.py": "",
        "tests/github/test_body.py": "",
        "tests/integration/conftest.py": "",
        "tests/reliability/probe.py": (
            "from tests.reliability.test_convergence import NOW\n"
            "from tests.auth import conftest\n"
            "import tests.github.test_body\n"
            "from . import test_limits\n"
            "from tests.reliability.harness import AUDIT, test_like_name\n"
            "import test_elsewhere\n"
            "def later():\n"
            "    from tests.integration.conftest import BACKENDS\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert offenders(tmp_path) == [
        "tests/reliability/probe.py:1 imports tests.reliability.test_convergence",
        "tests/reliability/probe.py:2 imports tests.auth.conftest",
        "tests/reliability/probe.py:3 imports tests.github.test_body",
        "tests/reliability/probe.py:4 imports tests.reliability.test_limits",
        "tests/reliability/probe.py:8 imports tests.integration.conftest",
    ]
