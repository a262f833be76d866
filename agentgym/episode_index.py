"""A lazy index over an episode file: line offsets first, each episode parsed when looked at.

Opening a file of 100k episodes only scans it for line ends; a summary (env, task, success,
return, turns, group) is parsed the first time a row is shown, a full :class:`Episode` when
it is opened. ``refresh()`` picks up lines a running rollout appended (``--follow``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agentgym.errors import RecordError
from agentgym.records import Episode

CHUNK = 1 << 22


@dataclass(frozen=True)
class Summary:
    """One row of the episode list (or a corrupt line, with ``error`` set)."""

    line: int
    env_id: str = ""
    task_id: str = ""
    group_id: str = ""
    policy: str = ""
    run_id: str = ""
    success: bool = False
    total_reward: float = 0.0
    turns: int = 0
    invalid_turns: int = 0
    failed: str = ""
    text: str = ""
    error: str = ""

    @property
    def corrupt(self) -> bool:
        """Whether the line could not be read."""
        return bool(self.error)


class EpisodeIndex:
    """Line offsets of an episode JSONL file, with parsed summaries cached on demand."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offsets: list[int] = []
        self.line_numbers: list[int] = []
        self._scanned = 0
        self._lines_seen = 0
        self._summaries: dict[int, Summary] = {}
        self.refresh()

    def refresh(self) -> int:
        """Index lines appended since the last scan; return how many complete lines are new."""
        before = len(self.offsets)
        with open(self.path, "rb") as handle:
            handle.seek(self._scanned)
            start = self._scanned
            buffer = b""
            while chunk := handle.read(CHUNK):
                buffer += chunk
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    continue
                self._add_lines(start, buffer[:cut + 1])
                start += cut + 1
                buffer = buffer[cut + 1:]
            self._scanned = start  # a line still being written is left for the next refresh
        return len(self.offsets) - before

    def _add_lines(self, start: int, block: bytes) -> None:
        position = 0
        while position < len(block):
            end = block.index(b"\n", position)
            self._lines_seen += 1
            if end > position and block[position:end].strip():
                self.offsets.append(start + position)
                self.line_numbers.append(self._lines_seen)
            position = end + 1

    def __len__(self) -> int:
        return len(self.offsets)

    def raw(self, i: int) -> bytes:
        """The bytes of episode ``i``'s line."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offsets[i])
            return handle.readline()

    def summary(self, i: int) -> Summary:
        """The list row of episode ``i`` (parsed once)."""
        if i not in self._summaries:
            self._summaries[i] = self._summarize(i)
        return self._summaries[i]

    def _summarize(self, i: int) -> Summary:
        try:
            episode = self.episode(i)
        except (RecordError, UnicodeDecodeError) as exc:
            return Summary(line=self.line_numbers[i], error=str(exc)[:200])
        failed = next((t.index for t in episode.turns if not t.action_valid), None)
        return Summary(
            line=self.line_numbers[i], env_id=episode.env_id, task_id=episode.task_id,
            group_id=episode.group_id or "", policy=str(episode.metadata.get("policy", "")),
            run_id=str(episode.metadata.get("run_id", "")), success=episode.outcome.success,
            total_reward=episode.outcome.total_reward, turns=episode.num_turns,
            invalid_turns=sum(not t.action_valid for t in episode.turns),
            failed=episode.error["type"] if episode.error else "",
            text=f"{episode.instruction} {episode.task_id}".lower() + (
                f" invalid@{failed}" if failed is not None else ""),
        )

    def episode(self, i: int) -> Episode:
        """Episode ``i``, parsed in full."""
        return Episode.from_json(self.raw(i))

    def summaries(self) -> list[Summary]:
        """Every row (parses what is not parsed yet: for sorting and filtering)."""
        return [self.summary(i) for i in range(len(self))]

    def group(self, group_id: str) -> list[int]:
        """Indices of the episodes of a group."""
        return [i for i, s in enumerate(self.summaries()) if s.group_id == group_id]
