"""Every error agentgym raises on purpose is an AgentGymError, and says what went wrong.

The source scan catches a new ``raise ValueError(...)`` before a user's ``except
AgentGymError`` misses it; the behavioural cases check that the errors the issue named
(graph, patch, format, sandbox, task data) reach the user as the right subclass.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

from agentgym.errors import (
    AgentGymError,
    EstimatorError,
    InvalidOptionError,
    SandboxError,
    TaskDataError,
)
from agentgym.records import Episode, Turn

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agentgym", "environments", "rewards", "trainers")
BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)}
# Allowed builtin raises: abstract methods, a private timeout caught where it is raised, and
# pydantic validators, which must raise ValueError (pydantic turns it into a ConfigError).
ALLOWED = {"NotImplementedError", ("agentgym/core.py", "TimeoutError"),
           ("trainers/config.py", "ValueError")}


def _source_files() -> list[Path]:
    files = [f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")]
    # the SWE task libraries are the agent's code under test, not agentgym's
    return [f for f in files if "libraries" not in f.relative_to(ROOT).parts]


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc
    if isinstance(exc, ast.Call):
        exc = exc.func
    return exc.id if isinstance(exc, ast.Name) else None


def test_no_module_raises_a_bare_builtin_error() -> None:
    offenders = []
    for path in _source_files():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            name = _raised_name(node) if isinstance(node, ast.Raise) else None
            if name in BUILTIN_ERRORS and name not in ALLOWED and (rel, name) not in ALLOWED:
                offenders.append(f"{rel}:{node.lineno} raises {name}")
    assert not offenders, "raise an AgentGymError subclass instead:\n" + "\n".join(offenders)


def test_every_public_exception_class_is_an_agentgym_error() -> None:
    errors = []
    for path in _source_files():
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        errors += [value for name, value in vars(module).items()
                   if isinstance(value, type) and issubclass(value, Exception)
                   and not issubclass(value, Warning) and not name.startswith("_")
                   and value.__module__ == module.__name__]
    assert len(errors) > 20, f"the scan found only {errors}"
    wrong = [f"{e.__module__}.{e.__name__}" for e in errors if not issubclass(e, AgentGymError)]
    assert not wrong, "derive from AgentGymError too: " + ", ".join(wrong)


def test_graph_without_state_keys_is_an_estimator_error() -> None:
    from trainers.graph import StateKeyMatch

    turn = Turn(index=0, observation="o", action="a", reward=1.0, state_key=None)
    episode = Episode(env_id="X-v0", task_id="t", turns=[turn])
    with pytest.raises(EstimatorError, match="ObservationMatch"):
        StateKeyMatch().states(episode)


def test_patch_and_format_errors_are_agentgym_errors() -> None:
    from environments.swe import patches
    from rewards.patch import FormatViolation, parse_edits

    with pytest.raises(FormatViolation, match="SEARCH/REPLACE") as caught:
        parse_edits("<think>x</think>\n<solution>no edits</solution>", {"a.py": "x = 1\n"})
    assert isinstance(caught.value, AgentGymError)
    diff = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-y = 2\n+y = 3\n"
    with pytest.raises(patches.PatchError, match="hunk 1 of a.py") as failed:
        patches.apply("x = 1\n", patches.parse(diff)[0])
    assert isinstance(failed.value, AgentGymError)


def test_grading_refuses_a_path_outside_the_tree(tmp_path: Path) -> None:
    from environments.swe import grading
    from environments.swe.patches import PatchError

    with pytest.raises(PatchError, match="relative path"):
        grading.write_file(tmp_path, "../escape.py", b"x")
    assert not (tmp_path.parent / "escape.py").exists()


def test_sandbox_run_before_start_is_a_sandbox_error() -> None:
    from environments.swe.sandbox_host import LocalSandbox

    with pytest.raises(SandboxError, match=r"run\(\) before start\(\)"):
        LocalSandbox().run("true")


def test_too_small_knowledge_base_is_a_task_data_error() -> None:
    from environments.search.kb import KnowledgeBase

    with pytest.raises(TaskDataError, match="at least 20 passages, got 5"):
        KnowledgeBase(size=5)


def test_webshop_click_off_the_page_names_the_buttons() -> None:
    from environments.webshop.catalog import Catalog
    from environments.webshop.pages import ShopState, click

    with pytest.raises(InvalidOptionError, match="No button 'buy now' on the search page"):
        click(ShopState(), "buy now", Catalog(size=20).products)


def test_tool_protocol_encode_refuses_text() -> None:
    from agentgym.protocols import ToolCallProtocol

    with pytest.raises(InvalidOptionError, match="ToolCall"):
        ToolCallProtocol([]).encode("ls")
