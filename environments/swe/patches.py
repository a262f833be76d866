"""Apply unified diffs (SWE-bench's ``patch`` and ``test_patch``) to files, in Python.

Each hunk is found by its exact old lines (context and removals), searching from where the
previous hunk ended, so line-number drift does not matter; a hunk that is not found raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agentgym.errors import AgentGymError

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")


class PatchError(AgentGymError, ValueError):
    """A patch that does not apply; the message names the file and the hunk."""


@dataclass
class FilePatch:
    """The hunks of one file: ``(old lines, new lines)`` each; None paths are /dev/null."""

    old_path: str | None
    new_path: str | None
    hunks: list[tuple[list[str], list[str]]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The file's path (the new one unless the file is deleted)."""
        return self.new_path or self.old_path or ""


def parse(diff: str) -> list[FilePatch]:
    """The file patches of a unified diff (``a/`` and ``b/`` prefixes stripped)."""
    patches: list[FilePatch] = []
    lines = diff.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            patches.append(FilePatch(_path(lines[i][4:]), _path(lines[i + 1][4:])))
            i += 2
        elif _HUNK.match(lines[i]) and patches:
            old, new, i = _hunk(lines, i + 1)
            patches[-1].hunks.append((old, new))
        else:
            i += 1
    return patches


def _path(text: str) -> str | None:
    name = text.strip().split("\t")[0]
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def _hunk(lines: list[str], i: int) -> tuple[list[str], list[str], int]:
    old: list[str] = []
    new: list[str] = []
    while i < len(lines) and lines[i][:1] in (" ", "-", "+", "\\"):
        line = lines[i]
        if line.startswith("\\"):  # "\ No newline at end of file"
            for side in (old, new):
                if side and side[-1].endswith("\n"):
                    side[-1] = side[-1][:-1]
        else:
            if line[0] in " -":
                old.append(line[1:])
            if line[0] in " +":
                new.append(line[1:])
        i += 1
    return old, new, i


def apply(text: str, patch: FilePatch) -> str:
    """``text`` with the file patch's hunks applied."""
    lines = text.splitlines(keepends=True)
    cursor = 0
    for number, (old, new) in enumerate(patch.hunks, 1):
        at = _find(lines, old, cursor)
        if at is None:
            raise PatchError(f"hunk {number} of {patch.path} does not apply.")
        lines[at:at + len(old)] = new
        cursor = at + len(new)
    return "".join(lines)


def _find(lines: list[str], block: list[str], start: int) -> int | None:
    if not block:
        return len(lines) if start >= len(lines) else start
    for at in range(start, len(lines) - len(block) + 1):
        if lines[at:at + len(block)] == block:
            return at
    return None
