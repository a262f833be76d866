"""The SWE tools: OpenAI function schemas and how each runs inside the sandbox.

``view``, ``str_replace`` and ``create`` run as a small Python program inside the sandbox
(arguments on stdin as JSON), so they see exactly what ``bash`` sees and are confined the same
way. Edits write a new file and rename it over the old one, which breaks a workspace's hard
link instead of writing through it.
"""

from __future__ import annotations

import json
from typing import Any

from agentgym.protocols import ToolCall, ToolCallProtocol, function_tool

TOOLS: list[dict[str, Any]] = [
    function_tool("bash", "Run a bash command in the repository (no network). Returns its output "
          "and exit code.", command=("string", "The command.", True)),
    function_tool("view", "Show a file with line numbers, or a folder's entries.",
          path=("string", "Path relative to the repository root.", True),
          start=("integer", "First line to show (1-based).", False),
          end=("integer", "Last line to show.", False)),
    function_tool("str_replace", "Replace the one occurrence of `old` in a file with `new`.",
          path=("string", "Path relative to the repository root.", True),
          old=("string", "Exact text to replace; must occur exactly once.", True),
          new=("string", "Replacement text.", True)),
    function_tool("create", "Create (or overwrite) a file with the given content.",
          path=("string", "Path relative to the repository root.", True),
          content=("string", "The file's content.", True)),
    function_tool("submit", "Submit your changes; the tests are run and the episode ends."),
]

# runs inside the sandbox: python3 -c FILE_TOOL < {"tool": ..., "arguments": ...}
FILE_TOOL = r'''
import json, os, sys, tempfile
call = json.load(sys.stdin)
args = call["arguments"]
root = os.path.realpath(os.getcwd())
path = os.path.realpath(os.path.join(root, args["path"]))
def fail(message):
    print(message)
    sys.exit(2)
if path != root and not path.startswith(root + os.sep):
    fail(f"Error: {args['path']} is outside the repository.")
def write(text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as error:  # a full disk or a file too large: leave nothing behind
        os.unlink(tmp)
        fail(f"Error: could not write {args['path']}: {error.strerror}.")
tool = call["tool"]
if tool == "view":
    if os.path.isdir(path):
        print("\n".join(sorted(e + ("/" if os.path.isdir(os.path.join(path, e)) else "")
                               for e in os.listdir(path))))
        sys.exit(0)
    if not os.path.isfile(path):
        fail(f"Error: no file {args['path']}.")
    lines = open(path, errors="replace").read().splitlines()
    start = max(int(args.get("start") or 1), 1)
    end = min(int(args.get("end") or len(lines)), len(lines))
    print("\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(start, end + 1)))
elif tool == "str_replace":
    if not os.path.isfile(path):
        fail(f"Error: no file {args['path']}.")
    text = open(path).read()
    count = text.count(args["old"])
    if count != 1:
        fail(f"Error: `old` occurs {count} times in {args['path']}; it must occur exactly once.")
    write(text.replace(args["old"], args["new"]))
    print(f"Edited {args['path']}.")
elif tool == "create":
    write(args["content"])
    print(f"Wrote {args['path']} ({len(args['content'])} characters).")
'''


def file_tool_stdin(call: ToolCall) -> bytes:
    """The JSON a file tool reads on stdin."""
    return json.dumps({"tool": call.name, "arguments": call.arguments}).encode()


def expert_calls(gold_edit: dict[str, str]) -> list[ToolCall]:
    """The expert's fix: the gold patch as one ``str_replace``, then ``submit``."""
    return [ToolCall("str_replace", dict(gold_edit)), ToolCall("submit", {})]


class SWEProtocol(ToolCallProtocol):
    """SWE-v0's tool calling; a plain command (a person at ``agentgym play``) is a bash call."""

    def __init__(self) -> None:
        super().__init__(TOOLS)

    def __repr__(self) -> str:
        return "SWEProtocol()"

    def encode(self, command: str | ToolCall) -> str:
        """A tool call as action text; a plain string runs as ``bash(command)``."""
        if isinstance(command, str):
            command = ToolCall("bash", {"command": command})
        return super().encode(command)
