"""Two runs filling one empty game cache: in the same order, or each in its own order?

Two warm-ups started together both reset every task they will play first
(``trainers.train.prepare_tasks``), which builds the games not yet cached. In the same order
they queue on one game's lock at a time, so two cores build like one; each in its own order
(what ``prepare_tasks`` does now) they build different games side by side. This times both
ways on a fresh cache folder each and prints the ratio.

Usage: python bench/cache_fill.py [--games 24] [--preset easy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

FILL = """
import os, random, sys
from pathlib import Path
from environments.textworld.games import ensure_game, preset
seeds = list(range(int(sys.argv[2])))
if sys.argv[3] == "own":
    random.Random(os.getpid()).shuffle(seeds)
for seed in seeds:
    ensure_game(preset(sys.argv[1]), seed, Path(sys.argv[4]))
"""


def fill_seconds(order: str, games: int, preset: str) -> float:
    """Wall time of two processes filling one fresh cache folder in ``order``."""
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        workers = [subprocess.Popen([sys.executable, "-c", FILL, preset, str(games), order,
                                     cache], env=env) for _ in range(2)]
        if any(worker.wait() for worker in workers):
            raise SystemExit(f"a worker failed filling the cache in {order!r} order")
        return time.perf_counter() - started


def main() -> None:
    """Time both orders and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=24)
    parser.add_argument("--preset", default="easy")
    args = parser.parse_args()
    same = fill_seconds("same", args.games, args.preset)
    own = fill_seconds("own", args.games, args.preset)
    print(f"{args.games} {args.preset} games, two processes: same order {same:.1f} s, "
          f"each its own order {own:.1f} s, ratio {same / own:.2f}x")


if __name__ == "__main__":
    main()
