"""How often do a group's episodes meet? The room SALT has to differ from GRPO.

Replays the credit benchmark's independent groups (same envs, turn limits, noisy expert and
per-shard seeds as ``bench/credit_accuracy.py``, so the episodes are the ones it scored) and
counts, per env and epsilon, the share of steps on an edge (state, action, next state) that
another episode of the group took too, and the share on an edge that both a winning and a
losing episode took ("contested"): only on contested steps can SALT's edge mean differ from
the episode's own outcome. Rollouts only, no ground truth: a few minutes for 64 tasks.

Usage: python bench/shared_states.py --envs textworld-medium textworld-hard --tasks 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from advantages import shared_share  # bench/ is this script's folder
from credit_accuracy import ENVS
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from trainers import Batch
from trainers.graph import build_graph

SHARD = 8  # tasks per shard in bench/credit_shards.sh: each shard has its own seed


def groups(name: str, epsilon: float, tasks: int, seed: int) -> list[Any]:
    """The independent groups the credit benchmark recorded for ``tasks`` tasks of ``name``."""
    env_id, kwargs, max_turns = ENVS[name]
    episodes = []
    with agentgym.make(env_id, max_turns=max_turns, **kwargs) as env:
        for first in range(0, tasks, SHARD):
            shard_seed = seed + first
            policy = agentgym.NoisyExpertPolicy(epsilon, seed=shard_seed)
            episodes += agentgym.rollout(env, policy, tasks=min(SHARD, tasks - first),
                                         group_size=8, seed=shard_seed, progress=False)
    return episodes


def meeting(episodes: list[Any]) -> dict[str, float]:
    """Shared and contested shares of the steps, with the success rate."""
    batch = Batch.from_episodes(episodes)
    steps = sum(len(e.turns) for e in episodes)
    contested = sum(build_graph([episodes[i] for i in members]).contested_steps()
                    for members in batch.groups)
    return {"steps": steps, "shared": shared_share(batch), "contested": contested / steps,
            "success": sum(e.outcome.success for e in episodes) / len(episodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["textworld-medium", "textworld-hard"],
                        choices=ENVS)
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/shared_states.json"))
    args = parser.parse_args()
    runs = [(name, epsilon) for name in args.envs for epsilon in args.epsilons]
    results = []
    for name, epsilon in track(runs, description="replaying groups"):
        shares = meeting(groups(name, epsilon, args.tasks, args.seed))
        results.append({"env": name, "epsilon": epsilon, "tasks": args.tasks, **shares})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    table = Table(title=f"Where a group's episodes meet ({args.tasks} tasks, groups of 8)")
    for column in ("env", "epsilon", "success", "steps", "shared steps", "contested steps"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for r in results:
        table.add_row(r["env"], f"{r['epsilon']}", f"{r['success']:.0%}", f"{r['steps']:,}",
                      f"{r['shared']:.1%}", f"{r['contested']:.1%}")
    Console().print(table)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
