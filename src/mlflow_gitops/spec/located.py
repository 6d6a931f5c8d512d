"""A loaded registry file as a value: its spec, its path and where each field is (for located
errors). Below both the loader (`load`) and the semantic checks (`check`), which take it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from mlflow_gitops.spec.model import RegistrySpec

Loc = tuple[str | int, ...]


class Position(NamedTuple):
    """1-based line and column."""

    line: int
    column: int


class Mark(Protocol):
    """Where a node starts, as the YAML parser marks it (0-based). Positions keep the parser's
    own marks: converting 100,000s of them up front would cost more than parsing."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


@dataclass(frozen=True)
class LoadedSpec:
    """A validated registry file and where it came from; `shown` is the path as messages
    write it (as given, or relative to the root file's folder for an included file)."""

    spec: RegistrySpec
    path: Path
    positions: dict[Loc, Mark]
    shown: str = ""

    @property
    def folder(self) -> Path:
        """Relative paths in the file (data, prepare hooks, sqlite) resolve from here."""
        return self.path.parent

    @property
    def name(self) -> str:
        """The file as messages, plan lines and comments name it."""
        return self.shown or str(self.path)

    def where(self, loc: Loc) -> str:
        """`file:line:col` of a field (or of its nearest located parent)."""
        _, pos = locate(loc, self.positions)
        return f"{self.name}:{pos.line}:{pos.column}"


def format_loc(loc: Loc) -> str:
    """('models', 'x', 'versions', 2, 'stage') -> models.x.versions[2].stage"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def locate(loc: Loc, positions: dict[Loc, Mark]) -> tuple[Loc, Position]:
    """The data path of a pydantic loc (union tags dropped) and the nearest known position."""
    path: Loc = ()
    for part in loc:
        candidate = (*path, part)
        if candidate in positions:
            path = candidate
        elif isinstance(part, str) and part.isdigit() and (*path, int(part)) in positions:
            path = (*path, int(part))
        # else: a union tag or a function name pydantic inserts; not part of the data path
    mark = positions.get(path)
    return path, Position(mark.line + 1, mark.column + 1) if mark is not None else Position(1, 1)
