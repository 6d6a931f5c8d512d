"""The error types every layer raises; the CLI turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class GitopsError(Exception):
    """A known failure: says what is wrong and what to do. Exit code 1."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The message, followed by the hint on its own line."""
        return f"error: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a registry.yaml, located precisely."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def render(self) -> str:
        """`file:line:col: path: message (hint)`, the shape editors and CI annotations parse.
        Text from the file is shown escaped: a key can never forge a line or a terminal code."""
        where = f"{_printable(self.file)}:{self.line}:{self.column}"
        field = f" {_printable(self.path)}:" if self.path else ""
        hint = f"\n    hint: {_printable(self.hint)}" if self.hint else ""
        return f"{where}:{field} {_printable(self.message)}{hint}"


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class SpecError(GitopsError):
    """A registry.yaml that cannot be used; carries every issue found, not only the first."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        count = len(issues)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in registry file")

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """All issues, one block each, then a count."""
        lines = [issue.render() for issue in self.issues]
        return "\n".join([*lines, f"error: {self.message}"])


class RegistryError(GitopsError):
    """The registry could not be read or written."""


DENIED = "403 Permission denied"  # opens every PermissionDenied message (renderers look for it)


class PermissionDenied(RegistryError):
    """The registry refused an operation for lack of a permission (HTTP 403): applying again as
    the same user will not help."""


class LockError(RegistryError):
    """The apply lock could not be taken: nothing was applied."""


class StalePlanError(GitopsError):
    """A saved plan no longer matches the live registry."""
