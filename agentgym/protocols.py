"""Action protocols: how a model's raw output text becomes an action an env understands.

A protocol never raises on what a model writes. :meth:`ActionProtocol.parse` returns a
:class:`ParsedAction`; when it is not ``ok``, its ``error`` is the observation the agent sees
next, saying what was wrong and what a valid action looks like.

Two protocols ship:

* :class:`TagProtocol`: optional ``<think>…</think>``, then ``<action>command</action>``.
  ``lenient=True`` also accepts a bare command line.
* :class:`ToolCallProtocol`: OpenAI-style function schemas; an action is
  ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` text, a :class:`ToolCall`, or a dict.
  :class:`CommandToolProtocol` is the one-tool (``act(command)``) form for text-command envs.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentgym.errors import InvalidOptionError, did_you_mean

_SURROGATE = re.compile("[\ud800-\udfff]")

MAX_ACTION_CHARS = 16_384
"""Longest action text a protocol will parse; longer text is an invalid action, not a crash."""


@dataclass(frozen=True)
class ToolCall:
    """One function call: a tool name, its JSON arguments, and (native tool calling) its id.

    The id is what a ``role: "tool"`` message answers to; it is not part of the call's
    value (two calls that differ only in id are equal).
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the OpenAI-style ``{"name", "arguments"}`` dict."""
        return {"name": self.name, "arguments": dict(self.arguments)}

    def to_text(self) -> str:
        """Return the call as ``<tool_call>{json}</tool_call>`` text a model would write."""
        return f"<tool_call>{json.dumps(self.to_dict(), ensure_ascii=False)}</tool_call>"


@dataclass(frozen=True)
class ParsedAction:
    """The outcome of parsing one raw action.

    Attributes:
        ok: Whether the action followed the protocol.
        value: The command (``str``) or :class:`ToolCall` when ``ok``; ``None`` otherwise.
        error: When not ``ok``, the message shown to the agent as its next observation.
        thought: The ``<think>`` text, if the model wrote one.
    """

    ok: bool
    value: str | ToolCall | None = None
    error: str | None = None
    thought: str | None = None

    @property
    def text(self) -> str:
        """The parsed action as display text (the command, or the call's JSON)."""
        if isinstance(self.value, ToolCall):
            return json.dumps(self.value.to_dict(), ensure_ascii=False)
        return self.value or ""


def clean_text(raw: object) -> str:
    r"""Turn raw model output into clean text: bytes decoded, control characters dropped.

    Invalid UTF-8 and lone surrogates become U+FFFD; newlines and tabs are kept, ``\r\n``
    becomes ``\n``, and the other whitespace controls (``\r``, ``\v``, ``\f``, ...) become
    spaces, so ``"São\rPaulo"`` stays two words.
    """
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw).decode("utf-8", errors="replace")
    else:
        text = str(raw)
    text = _SURROGATE.sub("\ufffd", text).replace("\r\n", "\n")
    return "".join(_clean_char(ch) for ch in text)


def _clean_char(ch: str) -> str:
    if ch in "\n\t" or unicodedata.category(ch) != "Cc":
        return ch
    return " " if ch.isspace() else ""


class ActionProtocol:
    """How raw action text is parsed, and how a command is written as valid action text."""

    name: str = "protocol"

    def parse(self, raw: object) -> ParsedAction:
        """Parse a raw action; never raises on model output."""
        if isinstance(raw, (str, bytes, bytearray)):
            text = clean_text(raw)
            if len(text) > MAX_ACTION_CHARS:
                return self.invalid(
                    f"Your action is {len(text):,} characters long; the limit is "
                    f"{MAX_ACTION_CHARS:,}."
                )
            if not text.strip():
                return self.invalid("Your action was empty.")
            return self._parse_text(text)
        return self._parse_object(raw)

    def invalid(self, problem: str) -> ParsedAction:
        """An invalid action whose message names the problem and shows a valid form."""
        return ParsedAction(ok=False, error=f"Invalid action: {problem} {self.example()}")

    def encode(self, command: str | ToolCall) -> str:
        """Write ``command`` as action text this protocol accepts."""
        raise NotImplementedError

    def example(self) -> str:
        """One sentence showing what a valid action looks like."""
        raise NotImplementedError

    def describe(self) -> str:
        """Protocol instructions for a system prompt."""
        raise NotImplementedError

    def _parse_text(self, text: str) -> ParsedAction:
        raise NotImplementedError

    def _parse_object(self, raw: object) -> ParsedAction:
        return self.invalid(f"expected text, got a {type(raw).__name__}.")


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def split_thought(text: str) -> tuple[str | None, str]:
    """``(the <think> text or None, the text with its think blocks removed)``."""
    match = _THINK.search(text)
    return (match.group(1).strip() if match else None), _THINK.sub("", text)

_ACTION = re.compile(r"<action>(.*?)</action>", re.DOTALL)


class TagProtocol(ActionProtocol):
    """``<think>…</think>`` (optional) followed by ``<action>command</action>``.

    Args:
        lenient: Also accept a bare one-line command with no tags (handy for humans and for
            small models that forget the tags).
    """

    name = "tags"

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient

    def __repr__(self) -> str:
        return f"TagProtocol(lenient={self.lenient})"

    def encode(self, command: str | ToolCall) -> str:
        """Return ``<action>command</action>``."""
        return f"<action>{command}</action>"

    def example(self) -> str:
        """Show the tag format."""
        return "Write your command inside action tags, e.g. <action>look</action>."

    def describe(self) -> str:
        """Protocol instructions for a system prompt."""
        return (
            "You may think step by step inside <think>...</think>. Then give exactly one "
            "command inside <action>...</action>, for example: <think>The key may open the "
            "chest.</think><action>take key</action>"
        )

    def _parse_text(self, text: str) -> ParsedAction:
        thought, body = split_thought(text)
        actions = _ACTION.findall(text)
        if len(actions) > 1:
            return self.invalid(f"found {len(actions)} <action> blocks; write exactly one.")
        if actions:
            command = " ".join(actions[0].split())
            if not command:
                return self.invalid("the <action> block is empty.")
            return ParsedAction(ok=True, value=command, thought=thought)
        if "<action>" in text:
            return self.invalid("the <action> tag is not closed with </action>.")
        bare = body.strip()
        if self.lenient and bare and "\n" not in bare and "<" not in bare:
            return ParsedAction(ok=True, value=" ".join(bare.split()), thought=thought)
        return self.invalid("no <action>...</action> block found.")


_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


class ToolCallProtocol(ActionProtocol):
    """OpenAI-style function calling.

    Args:
        tools: OpenAI function schemas (``{"type": "function", "function": {"name", ...}}``
            or the inner ``{"name", "description", "parameters"}``).
    """

    name = "tools"

    def __init__(self, tools: list[dict[str, Any]]) -> None:
        self.tools = [t["function"] if "function" in t else t for t in tools]
        self._by_name = {t["name"]: t for t in self.tools}

    def __repr__(self) -> str:
        return f"ToolCallProtocol(tools={sorted(self._by_name)})"

    def schemas(self) -> list[dict[str, Any]]:
        """The tools as OpenAI ``{"type": "function", "function": ...}`` schemas."""
        return [{"type": "function", "function": t} for t in self.tools]

    def encode(self, command: str | ToolCall) -> str:
        """Write a tool call as ``<tool_call>{json}</tool_call>`` text."""
        if isinstance(command, ToolCall):
            return command.to_text()
        raise InvalidOptionError(f"{type(self).__name__}.encode expects a ToolCall, got "
                                 f"{command!r}; build one with ToolCall(name, arguments).")

    def example(self) -> str:
        """Show the tool-call format with the first tool."""
        first = self.tools[0]
        params = list(first.get("parameters", {}).get("properties", {}))
        args = ", ".join(f'"{p}": ...' for p in params)
        return (
            f'Call one tool as <tool_call>{{"name": "{first["name"]}", "arguments": {{{args}}}}}'
            f"</tool_call>. Tools: {', '.join(self._by_name)}."
        )

    def describe(self) -> str:
        """Protocol instructions and tool schemas for a system prompt."""
        schemas = "\n".join(json.dumps(t, ensure_ascii=False) for t in self.tools)
        return (
            "You may think inside <think>...</think>. Then call exactly one tool, writing "
            '<tool_call>{"name": <tool name>, "arguments": <JSON object>}</tool_call>.\n'
            f"Available tools:\n{schemas}"
        )

    def _parse_text(self, text: str) -> ParsedAction:
        thought, _ = split_thought(text)
        calls = _TOOL_CALL.findall(text)
        if len(calls) != 1:
            found = "no <tool_call> block" if not calls else f"{len(calls)} <tool_call> blocks"
            return self.invalid(f"found {found}; write exactly one.")
        try:
            payload = json.loads(calls[0])
        except json.JSONDecodeError as exc:
            return self.invalid(f"the tool call is not valid JSON ({exc.msg} at {exc.pos}).")
        parsed = self._parse_object(payload)
        return ParsedAction(ok=parsed.ok, value=parsed.value, error=parsed.error, thought=thought)

    def _parse_object(self, raw: object) -> ParsedAction:
        if isinstance(raw, ToolCall):
            raw = raw.to_dict()
        if not isinstance(raw, dict):
            return self.invalid(f"expected a tool call object, got a {type(raw).__name__}.")
        name, arguments = raw.get("name"), raw.get("arguments", {})
        if isinstance(arguments, str):  # OpenAI servers send arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError):
                return self.invalid("the tool call's arguments are not valid JSON.")
        if not isinstance(name, str):
            return self.invalid(f"the tool name must be a string, got a {type(name).__name__}.")
        if name not in self._by_name:
            return self.invalid(f"unknown tool {name[:100]!r}; tools: {', '.join(self._by_name)}.")
        if not isinstance(arguments, dict):
            return self.invalid("the tool call's arguments must be a JSON object.")
        problem = self._check_arguments(self._by_name[name], arguments)
        if problem:
            return self.invalid(problem)
        return ParsedAction(ok=True, value=ToolCall(name, _clean_strings(arguments)))

    @staticmethod
    def _check_arguments(tool: dict[str, Any], arguments: dict[str, Any]) -> str | None:
        params = tool.get("parameters", {})
        properties = params.get("properties", {})
        missing = [p for p in params.get("required", []) if p not in arguments]
        if missing:
            return f"tool {tool['name']!r} needs the argument(s) {', '.join(missing)}."
        extra = [str(a)[:40] for a in arguments if properties and a not in properties]
        if extra:
            return (
                f"tool {tool['name']!r} has no argument(s) {', '.join(extra)}; "
                f"it takes {', '.join(properties)}."
            )
        for key, value in arguments.items():
            wanted = properties.get(key, {}).get("type")
            if wanted in _SCHEMA_TYPES and not _is_schema_type(value, wanted):
                return (f"argument {key!r} of tool {tool['name']!r} must be a {wanted}, "
                        f"got a {type(value).__name__}.")
        return None


_SCHEMA_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}


def _is_schema_type(value: object, wanted: str) -> bool:
    """Whether a JSON value has a JSON-schema primitive type (``true`` is not an integer)."""
    if isinstance(value, bool) and wanted != "boolean":
        return False
    return isinstance(value, _SCHEMA_TYPES[wanted])


def _clean_strings(value: Any) -> Any:
    """Every string inside a tool call's arguments as :func:`clean_text` leaves it."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    return value


def function_tool(name: str, description: str, **params: tuple[str, str, bool]
                  ) -> dict[str, Any]:
    """An OpenAI function schema; each parameter is ``(json type, description, required)``."""
    properties = {p: {"type": kind, "description": text} for p, (kind, text, _) in params.items()}
    required = [p for p, (_, _, needed) in params.items() if needed]
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}}


def tool_calls_in(text: str) -> list[ToolCall]:
    """The well-formed ``<tool_call>{json}</tool_call>`` blocks of a text, in order.

    For turning a tool protocol's action text (an expert's, say) into structured calls;
    model output goes through :meth:`ActionProtocol.parse`, which explains what is wrong.
    """
    calls = []
    for block in _TOOL_CALL.findall(text):
        try:
            payload = json.loads(block)
        except (ValueError, RecursionError):
            continue
        if isinstance(payload, dict) and isinstance(payload.get("name"), str):
            arguments = payload.get("arguments", {})
            calls.append(ToolCall(payload["name"], arguments if isinstance(arguments, dict)
                                  else {}))
    return calls


ACT_TOOL: dict[str, Any] = function_tool(
    "act", "Send one text command to the game, e.g. 'open door' or 'go north'.",
    command=("string", "The command to run.", True))["function"]


class CommandToolProtocol(ToolCallProtocol):
    """Tool calling for text-command envs: one tool, ``act(command)``; parses to the command."""

    name = "tools"

    def __init__(self) -> None:
        super().__init__([ACT_TOOL])

    def __repr__(self) -> str:
        return "CommandToolProtocol()"

    def encode(self, command: str | ToolCall) -> str:
        """Write ``command`` as an ``act`` tool call."""
        if isinstance(command, str):
            command = ToolCall("act", {"command": command})
        return command.to_text()

    def _parse_object(self, raw: object) -> ParsedAction:
        parsed = super()._parse_object(raw)
        if not parsed.ok or not isinstance(parsed.value, ToolCall):
            return parsed
        command = parsed.value.arguments["command"]
        if not isinstance(command, str) or not command.strip():
            return self.invalid("the 'command' argument must be a non-empty string.")
        return ParsedAction(ok=True, value=" ".join(command.split()))


ProtocolName = Literal["tags", "tags-lenient", "tools"]


def command_protocol(protocol: ProtocolName | ActionProtocol) -> ActionProtocol:
    """The protocol object for a text-command env, from a name or an instance."""
    return pick_protocol(protocol, {
        "tags": lambda: TagProtocol(lenient=False),
        "tags-lenient": lambda: TagProtocol(lenient=True),
        "tools": CommandToolProtocol,
    })


def pick_protocol(protocol: str | ActionProtocol,
                  factories: dict[str, Callable[[], ActionProtocol]]) -> ActionProtocol:
    """An env's protocol from one of its names (``factories``) or an instance."""
    if isinstance(protocol, ActionProtocol):
        return protocol
    if protocol not in factories:
        raise InvalidOptionError(
            f"Unknown protocol {protocol!r}. Allowed: {', '.join(map(repr, factories))} or an "
            f"ActionProtocol instance.{did_you_mean(str(protocol), factories)}"
        )
    return factories[protocol]()
