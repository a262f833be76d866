"""``step()`` never raises, whatever the agent sends, in every built-in env.

Each env gets the same hostile inputs: NUL bytes, lone surrogates, invalid UTF-8, tool names
and arguments of the wrong JSON type, malformed and empty calls, a megabyte of text, objects
that are not text at all, files whose names are not UTF-8. Every answer must be a well-formed
step (text observation, finite reward); an episode that ends is reset and the fuzzing goes on.
"""

from __future__ import annotations

import json
import math

import pytest

import agentgym
from agentgym.protocols import TagProtocol, ToolCallProtocol
from agentgym.registry import BUILTIN

KWARGS = {
    "TextWorld-v0": {"preset": "easy"},
    "ALFWorld-v0": {"source": "generated"},
    "SWE-v0": {"sandbox": "bwrap", "tasks_per_source": 2},
}
HOSTILE_TEXT = ["look\x00around", "\ud800", "a\udc80b", "take " + "é" * 100, "\\help",
                "\x1b[2J\x07", "", "   \n\t", "x" * 1_000_000, "<action>", "</action>",
                "<tool_call>", "<tool_call>{not json</tool_call>", "<tool_call>[]</tool_call>",
                "<tool_call>null</tool_call>", '<tool_call>{"name": 5}</tool_call>',
                '<tool_call>{"name": ["bash"], "arguments": {}}</tool_call>',
                '<tool_call>{"name": {"a": 1}, "arguments": {}}</tool_call>',
                '<tool_call>{"name": "bash", "arguments": [1, 2]}</tool_call>',
                '<tool_call>{"name": "bash", "arguments": "ls"}</tool_call>',
                "<tool_call>" + "[" * 100_000 + "</tool_call>",
                '<tool_call>{"name": "bash", "arguments": {"command": 1e999}}</tool_call>']
HOSTILE_OBJECTS = [None, 12, 3.5, b"\xff\xfe\x00", ["look"], {"name": "bash"}, object()]
WRONG_TYPES = [5, -1.5, True, None, [1, "a"], {"x": {"y": []}}, "\x00", "\ud800",
               "y" * 200_000]
NOT_UTF8_FILES = "printf x > $'\\xff\\xfe.py'; mkdir -p $'\\xc3(' && touch $'\\xc3(/\\x80'"


def tagged(command: str) -> str:
    return f"<action>{command}</action>"


def tool_call(name: str, arguments: object) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def hostile_actions(protocol) -> list[object]:
    """Every input above, plus each tool's parameters given every wrong JSON type."""
    actions: list[object] = [*HOSTILE_TEXT, *HOSTILE_OBJECTS]
    if isinstance(protocol, TagProtocol):
        actions += [tagged(text) for text in HOSTILE_TEXT[:6]]
    if isinstance(protocol, ToolCallProtocol):
        for tool in protocol.tools:
            params = list(tool.get("parameters", {}).get("properties", {}))
            for value in WRONG_TYPES:
                actions.append(tool_call(tool["name"], {p: value for p in params}))
        if "bash" in {t["name"] for t in protocol.tools}:
            actions += [tool_call("bash", {"command": NOT_UTF8_FILES}),
                        tool_call("bash", {"command": "ls; cat *"})]
    return actions


def check_step(env, action) -> bool:
    """One step; assert it is well formed; whether the episode ended."""
    observation, reward, terminated, truncated, info = env.step(action)
    assert isinstance(observation, str) and observation, repr(action)[:80]
    assert isinstance(reward, float) and math.isfinite(reward), repr(action)[:80]
    assert isinstance(info, dict)
    return terminated or truncated


@pytest.mark.parametrize("env_id", [s.id for s in BUILTIN])
def test_step_never_raises(env_id):
    with agentgym.make(env_id, **KWARGS.get(env_id, {})) as env:
        env.reset(seed=0)
        actions = hostile_actions(env.unwrapped.protocol)
        for action in actions:
            if check_step(env, action):
                env.reset(seed=1)
        if env_id == "SWE-v0":  # the files with non-UTF-8 names must not block the grade
            env.reset(seed=0)
            check_step(env, tool_call("bash", {"command": NOT_UTF8_FILES}))
            check_step(env, tool_call("view", {"path": "."}))
            _, _, terminated, _, info = env.step(tool_call("submit", {}))
            assert terminated and info["outcome_channels"]["resolved"] == 0.0
