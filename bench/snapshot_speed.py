"""How fast is a snapshot and a restore, next to the reset it saves? Per family, medians.

Each round resets a task, plays five steps (the expert's, or for SWE-v0 five edits by
``bash``), then times ``snapshot()``, ``restore()`` into the same env, and ``restore()`` into
a twin (another env of the same id and kwargs, playing the same task). SWE-v0 runs in
bubblewrap on a generated 1,000-file repository (as in ``bench/swe_sandbox.py``).
Targets: snapshot + restore at most 5 ms for the text families, 50 ms for SWE-v0.

Usage: python bench/snapshot_speed.py [--rounds 20] [--families TextWorld-v0 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track
from rich.table import Table
from swe_sandbox import make_repository

import agentgym
from agentgym.protocols import ToolCall

TEXT_TARGET_MS, SWE_TARGET_MS = 5.0, 50.0
GARBAGE = "<<not an action>>"  # moves the twin off the snapshot's state, as any step would
EDITS = ["echo '# edited' >> mod_0001.py", "mkdir -p notes && echo a > notes/a.txt",
         "sed -i 's/times/by/' mod_0002.py", "rm mod_0003.py", "cp mod_0004.py extra.py"]


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = call()
    return value, (time.perf_counter() - started) * 1e3


def play_five(env: Any, info: dict) -> None:
    for turn in range(5):
        if env.env_id == "SWE-v0":
            action = ToolCall("bash", {"command": f"cd bigpkg 2>/dev/null; {EDITS[turn]}"})
            env.step(action.to_text())
            continue
        _, _, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            return


def measure(env_id: str, kwargs: dict[str, Any], rounds: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"reset": [], "snapshot": [], "restore": [], "twin": []}
    with agentgym.make(env_id, **kwargs) as env, agentgym.make(env_id, **kwargs) as twin:
        for seed in range(rounds):  # games are generated (and cached) on first use
            env.reset(seed=seed)
        for seed in track(range(rounds), description=env_id, transient=True):
            (_, info), reset_ms = timed(lambda seed=seed: env.reset(seed=seed))
            twin.reset(seed=seed)
            play_five(env, info)
            snapshot, snapshot_ms = timed(env.snapshot)
            twin.step(GARBAGE)
            _, restore_ms = timed(lambda snapshot=snapshot: env.restore(snapshot))
            _, twin_ms = timed(lambda snapshot=snapshot: twin.restore(snapshot))
            for name, value in zip(times, (reset_ms, snapshot_ms, restore_ms, twin_ms)):
                times[name].append(value)
        kind = env.snapshot_kind
    return {"kind": kind, **{name: statistics.median(v) for name, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--families", nargs="+",
                        default=["TextWorld-v0", "ALFWorld-v0", "WebShop-v0", "Search-v0",
                                 "SWE-v0"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        families = {"TextWorld-v0": {"preset": "medium"}, "ALFWorld-v0": {},
                    "WebShop-v0": {}, "Search-v0": {},
                    "SWE-v0": {"sources": [str(make_repository(Path(scratch)))],
                               "tasks_per_source": 2, "sandbox": "bwrap"}}
        rows = {name: measure(name, families[name], args.rounds) for name in args.families}
    table = Table(title=f"snapshot and restore after 5 steps (medians of {args.rounds})")
    for column in ("env", "kind", "reset ms", "snapshot ms", "restore ms", "restore in a "
                   "twin ms", "snapshot + restore / reset", "target"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        target = SWE_TARGET_MS if name == "SWE-v0" else TEXT_TARGET_MS
        both = row["snapshot"] + row["restore"]
        table.add_row(name, row["kind"], f"{row['reset']:.2f}", f"{row['snapshot']:.2f}",
                      f"{row['restore']:.2f}", f"{row['twin']:.2f}",
                      f"{both / row['reset']:.2f}x",
                      f"<= {target:g} ms: {'met' if both <= target else 'MISSED'}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
