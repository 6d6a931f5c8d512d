"""Run a GitHub Actions job's steps on this machine, the way the runner would.

`run:` steps run in bash with the runner's shell flags, `${{ }}` expressions evaluated, step
outputs and one job summary file; `uses:` steps (checkout, setup-python, upload-artifact) are
recorded with their evaluated `with:` and not run: the test stands in for them (the workspace is
prepared, the venv's Python is on PATH). Composite actions (action.yml) run the same way, with
their `inputs`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# --- expressions ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-*]+)*))"
)


class Expression:
    """GitHub's expression language, the part workflows here use: literals, context paths,
    == != && || ! (), and the status functions."""

    def __init__(self, contexts: Mapping[str, Any], status: str) -> None:
        self.contexts = contexts
        self.status = status  # "success" or "failure": the job so far

    def evaluate(self, text: str) -> Any:
        self.tokens = self._tokens(text)
        self.pos = 0
        value = self._or()
        assert self.pos == len(self.tokens), f"cannot parse expression {text!r}"
        return value

    def substitute(self, text: str) -> str:
        """`${{ expr }}` in a string replaced by the expression's value."""
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _string(self.evaluate(m.group(1))), text)

    def _tokens(self, text: str) -> list[tuple[str, str]]:
        out, pos = [], 0
        while pos < len(text.rstrip()):
            found = _TOKEN.match(text, pos)
            if found is None or found.end() == pos:
                raise ValueError(f"cannot parse expression {text!r} at {pos}")
            kind = found.lastgroup or ""
            out.append((kind, found.group(kind)))
            pos = found.end()
        return out

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _or(self) -> Any:
        return self._chain("||", self._and, lambda a, b: a or b)

    def _and(self) -> Any:
        return self._chain("&&", self._compare, lambda a, b: a and b)

    def _chain(self, op: str, operand: Callable[[], Any], join: Callable[[Any, Any], Any]) -> Any:
        value = operand()
        while self._peek() == op:
            self._take()
            value = join(value, operand())
        return value

    def _compare(self) -> Any:
        value = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            same = str(value).lower() == str(right).lower()  # GitHub compares strings loosely
            value = same if op == "==" else not same
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        kind, text = self._take()
        if text == "(":
            value = self._or()
            assert self._take()[1] == ")"
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":  # a status function
            self._take()
            assert self._take()[1] == ")"
            return {
                "always": True,
                "success": self.status == "success",
                "failure": self.status == "failure",
                "cancelled": False,
            }[text]
        value: Any = self.contexts
        for part in text.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- jobs -----------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    ran: bool
    code: int = 0
    stdout: str = ""
    stderr: str = ""
    uses: str = ""
    with_: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    steps: list[Step]
    summary: str

    @property
    def ok(self) -> bool:
        return all(s.code == 0 for s in self.steps)

    @property
    def failed(self) -> Step:
        return next(s for s in self.steps if s.code != 0)

    def step(self, name_part: str) -> Step:
        return next(s for s in self.steps if name_part in s.name)


class Runner:
    """One job's environment: variables, secrets, the workspace and RUNNER_TEMP."""

    def __init__(
        self,
        workspace: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        event: Mapping[str, Any],
        token: str = "",
        skip: tuple[str, ...] = ("install",),
    ) -> None:
        self.workspace = workspace
        self.temp = Path(tempfile.mkdtemp(prefix="runner-temp-", dir=workspace.parent))
        self.env = dict(env)
        self.secrets = dict(secrets)
        self.event = dict(event)
        self.token = token  # github.token: the job's GITHUB_TOKEN
        self.skip = skip  # step ids not run here: installing the tool (the venv has it)
        self.summary = self.temp / "summary.md"

    def run_job(self, workflow: Path, job: str) -> Job:
        """The steps of `job` in `workflow`, in order, stopping like the runner does."""
        spec = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        definition = spec["jobs"][job]
        job_env = {**spec.get("env", {}), **definition.get("env", {})}
        return self._run_steps(definition["steps"], {}, job_env, None)

    def run_action(self, action: Path, inputs: Mapping[str, str], env: Mapping[str, str]) -> Job:
        """A composite action's steps with these inputs (defaults filled in like the runner)."""
        spec = yaml.safe_load(action.read_text(encoding="utf-8"))
        values = {}
        for name, meta in spec.get("inputs", {}).items():
            default = self._expression({}, "success").substitute(str(meta.get("default", "")))
            values[name] = inputs.get(name, default)
        return self._run_steps(spec["runs"]["steps"], values, dict(env), action.parent)

    def _expression(self, steps: dict[str, Any], status: str, inputs: Any = None) -> Expression:
        contexts = {
            "github": {
                "token": self.token,
                "event": self.event,
                "workspace": str(self.workspace),
                "repository": self.env.get("GITHUB_REPOSITORY", ""),
                "sha": self.env.get("GITHUB_SHA", ""),
            },
            "secrets": self.secrets,
            "runner": {"temp": str(self.temp), "os": "Linux"},
            "env": self.env,
            "steps": steps,
            "inputs": inputs or {},
        }
        return Expression(contexts, status)

    def _run_steps(
        self,
        steps: list[dict[str, Any]],
        inputs: dict[str, str],
        scope_env: dict[str, str],
        action_path: Path | None,
    ) -> Job:
        done: list[Step] = []
        outputs: dict[str, Any] = {}
        for number, step in enumerate(steps):
            status = "success" if all(s.code == 0 for s in done) else "failure"
            expr = self._expression(outputs, status, inputs)
            name = step.get("name") or step.get("uses") or step.get("id") or f"step {number}"
            condition = str(step.get("if", "success()"))
            condition = condition.removeprefix("${{").removesuffix("}}")
            if not expr.evaluate(condition):
                done.append(Step(name, ran=False))
                continue
            if "uses" in step:
                with_ = {k: expr.substitute(str(v)) for k, v in step.get("with", {}).items()}
                done.append(Step(name, ran=False, uses=step["uses"], with_=with_))
                continue
            if step.get("id") in self.skip:
                done.append(Step(name, ran=False))
                continue
            env = {
                k: expr.substitute(str(v)) for k, v in {**scope_env, **step.get("env", {})}.items()
            }
            result = self._run(
                name, expr.substitute(step["run"]), step.get("shell"), env, action_path
            )
            done.append(result)
            if step.get("id"):
                outputs[step["id"]] = {"outputs": result.outputs}
        summary = self.summary.read_text(encoding="utf-8") if self.summary.exists() else ""
        return Job(done, summary)

    def _run(
        self,
        name: str,
        script: str,
        shell: str | None,
        step_env: dict[str, str],
        action_path: Path | None,
    ) -> Step:
        output = self.temp / "output"
        output.write_text("", encoding="utf-8")
        script_file = self.temp / "step.sh"
        script_file.write_text(script, encoding="utf-8")
        env = {
            **self.env,
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            **step_env,
        }
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(action_path)
        # the runner's commands: `shell: bash` is -eo pipefail, no shell is plain bash -e
        flags = ["--noprofile", "--norc", "-eo", "pipefail"] if shell == "bash" else ["-e"]
        proc = subprocess.run(
            ["bash", *flags, str(script_file)],
            cwd=self.workspace, env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        return Step(name, True, proc.returncode, proc.stdout, proc.stderr, outputs=_outputs(output))


def _outputs(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, delimiter = line.split("<<", 1)
            values[key] = "\n".join(iter(lambda: next(lines), delimiter))
        elif "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean job environment: this venv's tools first on PATH, nothing from the caller's
    MLflow or GitHub settings."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        # a worktree's sources first, as in the test process (an editable install may point
        # at another checkout)
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        **extra,
    }
