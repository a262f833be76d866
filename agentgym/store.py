"""Episodes in JSON Lines files: one episode per line, appended and flushed per episode.

A killed run loses at most the episode in flight. Readers skip a corrupt or truncated line
with a :class:`CorruptLineWarning` naming the file and line, and load everything else.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentgym.errors import RecordError
from agentgym.records import Episode


class CorruptLineWarning(UserWarning):
    """A line of an episode file could not be read and was skipped."""


@dataclass(frozen=True)
class CorruptLine:
    """Where a corrupt line is and why it could not be read."""

    path: str
    line: int
    reason: str


class EpisodeWriter:
    """Append episodes to a JSONL file, one flushed line each.

    Usage::

        with EpisodeWriter("runs/expert.jsonl") as writer:
            writer.write(episode)

    Args:
        path: The file; parent folders are created; an existing file is appended to.
        fsync: Also ``fsync`` after each episode (survives power loss, costs a disk sync).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._end_partial_line()

    def _end_partial_line(self) -> None:
        # A run killed mid-write leaves a line with no newline; start ours on a fresh line so
        # that only the broken episode is lost, not the next one too.
        if self._file.tell() == 0:
            return
        self._file.seek(self._file.tell() - 1)
        if self._file.read(1) != "\n":
            self._file.write("\n")

    def write(self, episode: Episode) -> None:
        """Append one episode and flush it to the OS."""
        self._file.write(json.dumps(episode.to_dict(), ensure_ascii=False) + "\n")
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def write_all(self, episodes: Iterable[Episode]) -> None:
        """Append several episodes."""
        for episode in episodes:
            self.write(episode)

    def close(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_episodes(
    path: str | os.PathLike[str], corrupt: list[CorruptLine] | None = None
) -> Iterator[Episode]:
    """Yield the episodes of a JSONL file, skipping unreadable lines.

    Args:
        path: The file.
        corrupt: If given, each skipped line is appended here (as well as warned about).
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                episode = Episode.from_json(line)
            except RecordError as exc:
                bad = CorruptLine(str(path), number, str(exc))
                warnings.warn(
                    f"{bad.path}:{bad.line}: skipped an unreadable episode line ({bad.reason})",
                    CorruptLineWarning,
                    stacklevel=2,
                )
                if corrupt is not None:
                    corrupt.append(bad)
                continue
            yield episode


def read_episodes(path: str | os.PathLike[str]) -> list[Episode]:
    """Every readable episode of a JSONL file (see :func:`iter_episodes`)."""
    return list(iter_episodes(path))


def write_episodes(path: str | os.PathLike[str], episodes: Iterable[Episode]) -> None:
    """Append episodes to a JSONL file."""
    with EpisodeWriter(path) as writer:
        writer.write_all(episodes)
