"""ALFWorld-v0's memory over a long stream of distinct games: flat, not growing per game.

The engine memoizes Fast Downward's translations and TatSu's parses (``engine.py``), and
TextWorld interns every logic object it builds; kept forever, they grew by ~3 MB per distinct
game (about 1.5 GB after 474 games). Both are now bounded. This script
plays a stream of distinct generated games (reset and a few expert steps each) in a fresh
process per arm and prints the resident memory after 10, 100 and 500 games: the bounded
caches (``GAMES_CACHED``) against the same engine with unbounded caches, in the same run.

Usage: python bench/alfworld_memory.py [--games 500] [--steps 3]
Bound: RSS after 500 games at most 250 MB above RSS after 10 games.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from rich.console import Console
from rich.table import Table

BOUND_MB = 250
CHECKPOINTS = (10, 100, 500)

ARM = r"""
import json, resource, sys
from rich.progress import track
import agentgym
from environments.alfworld import engine

games, steps, bounded = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "bounded"
if not bounded:  # the engine as it was: every translation and interned object kept
    engine.INTERNED_LIMIT = 10**9
    engine._PATCHES.update({t: engine._memoized(t, k, 10**9, copies=c) for t, k, c in (
        ("fast_downward.pddl2sas", engine._by_task, False),
        ("textworld.envs.pddl.logic._parse_and_convert", engine._by_text, False),
        ("textworld.envs.pddl.textgen._parse_and_convert", engine._by_text, True),
        ("textworld.logic._parse_and_convert", engine._by_text, False))})

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

env = agentgym.make("ALFWorld-v0", source="generated", max_turns=steps + 1)
ids = env.task_ids("train", games)
checkpoints = {int(c) for c in sys.argv[4].split(",")}
for n, task_id in enumerate(track(ids, description=f"{sys.argv[3]} caches"), 1):
    _, info = env.reset(options={"task_id": task_id})
    for _ in range(steps):
        if not info.get("expert_action"):
            break
        _, _, done, cut, info = env.step(info["expert_action"])
        if done or cut:
            break
    if n in checkpoints:
        print(json.dumps({"games": n, "rss_mb": rss_mb()}), flush=True)
"""


def run_arm(arm: str, games: int, steps: int, checkpoints: list[int]) -> dict[int, float]:
    done = subprocess.run([sys.executable, "-c", ARM, str(games), str(steps), arm,
                           ",".join(map(str, checkpoints))], stdout=subprocess.PIPE,
                          text=True, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {row["games"]: row["rss_mb"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=500)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    checkpoints = [c for c in CHECKPOINTS if c <= args.games] or [args.games]
    bounded = run_arm("bounded", args.games, args.steps, checkpoints)
    unbounded = run_arm("unbounded", args.games, args.steps, checkpoints)
    table = Table(title=f"ALFWorld-v0 resident memory over {args.games} distinct games")
    for column in ("games", "bounded caches (MB)", "unbounded caches (MB)", "ratio"):
        table.add_column(column, justify="right")
    for n in checkpoints:
        table.add_row(str(n), f"{bounded[n]:.0f}", f"{unbounded[n]:.0f}",
                      f"{bounded[n] / unbounded[n]:.2f}")
    console = Console()
    console.print(table)
    growth = bounded[checkpoints[-1]] - bounded[checkpoints[0]]
    console.print(f"Growth from {checkpoints[0]} to {checkpoints[-1]} games with bounded caches: "
                  f"{growth:.0f} MB (bound {BOUND_MB} MB): "
                  + ("within" if growth <= BOUND_MB else "OVER"))


if __name__ == "__main__":
    main()
