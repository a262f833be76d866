"""How long ``agentgym replay`` takes to open files of 1k, 10k and 100k episodes.

Writes each file from one real TextWorld episode repeated with new ids and tasks, then
times (a) indexing the file and parsing the first page of rows, and (b) the whole viewer
starting headless until its list is filled. Target: 100k episodes open in under 2 s.
Run: python bench/viewer_open.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import agentgym
from agentgym.episode_index import EpisodeIndex
from agentgym.viewer import PAGE, ReplayApp


def write_file(path: Path, count: int, template: dict) -> int:
    with open(path, "w") as handle:
        for n in range(count):
            row = dict(template, episode_id=f"ep{n}", task_id=f"easy/train/{n}",
                       group_id=f"g{n // 8}")
            handle.write(json.dumps(row) + "\n")
    return path.stat().st_size


def index_and_first_page(path: Path) -> float:
    started = time.perf_counter()
    index = EpisodeIndex(path)
    for i in range(min(PAGE, len(index))):
        index.summary(i)
    return time.perf_counter() - started


def app_open(path: Path) -> float:
    async def run() -> float:
        started = time.perf_counter()
        app = ReplayApp(str(path))
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            assert app.query_one("DataTable").row_count == min(PAGE, len(app.index))
            return time.perf_counter() - started
    return asyncio.run(run())


def main() -> None:
    with agentgym.make("TextWorld-v0", preset="easy", max_turns=10) as env:
        template = agentgym.run_episode(env, agentgym.RandomPolicy(0), seed=0).to_dict()
    table = Table(title="agentgym replay: time to open")
    for column in ("episodes", "file MB", "index + first page s", "viewer ready s", "target"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for count in (1_000, 10_000, 100_000):
            path = Path(tmp) / f"{count}.jsonl"
            size = write_file(path, count, template)
            table.add_row(f"{count:,}", f"{size / 1e6:.0f}", f"{index_and_first_page(path):.2f}",
                          f"{app_open(path):.2f}", "< 2 s" if count == 100_000 else "")
    Console().print(table)


if __name__ == "__main__":
    main()
