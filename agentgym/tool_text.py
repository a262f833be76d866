"""Tool calls in a model's text, read as a serving engine's tool-call parser reads them.

``vllm serve --tool-call-parser hermes`` returns a model's tool calls as ``tool_calls``; a
policy that samples in this process (``TransformersPolicy``, ``VLLMPolicy``) gets text, and
these parsers do the same job for it:

* ``"hermes"``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks
  (Hermes, Qwen2.5), any number, the text around them kept as the reply's content;
* ``"llama3"``: the whole reply is one ``{"name": ..., "parameters": {...}}`` JSON object,
  optionally after ``<|python_tag|>`` (Llama 3.1's JSON tool calling).

Text that holds no well-formed call stays text: the env's protocol then says what is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from agentgym.errors import InvalidOptionError
from agentgym.protocols import ToolCall

ToolParser = Literal["hermes", "llama3"]
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def read_tool_calls(text: str, parser: ToolParser) -> tuple[str, list[ToolCall]]:
    """``(the reply's remaining text, its tool calls)``; no calls if any is malformed."""
    if parser == "hermes":
        return _hermes(text)
    if parser == "llama3":
        return _llama3(text)
    raise InvalidOptionError(f"tool_parser must be 'hermes' or 'llama3', got {parser!r}.")


def _hermes(text: str) -> tuple[str, list[ToolCall]]:
    blocks = _HERMES.findall(text)
    calls = [_call(block, "arguments") for block in blocks]
    if not blocks or any(call is None for call in calls):
        return text, []
    return _HERMES.sub("", text).strip(), calls  # type: ignore[return-value]


def _llama3(text: str) -> tuple[str, list[ToolCall]]:
    call = _call(text.removeprefix("<|python_tag|>").strip(), "parameters")
    return ("", [call]) if call is not None else (text, [])


def _call(payload: str, arguments_key: str) -> ToolCall | None:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(value, dict) and isinstance(value.get("name"), str)):
        return None
    arguments = value.get(arguments_key, value.get("arguments", {}))
    return ToolCall(value["name"], arguments) if isinstance(arguments, dict) else None
