"""How often do a group's episodes meet? The room SALT has to differ from GRPO.

Replays the independent groups behind ``bench/credit_accuracy.py`` result files (each row's
env, turn limit, epsilon, seed, first task and task count, so the episodes are the very ones
it scored) and counts, per env and epsilon, the share of steps on an edge (state, action, next
state) that another episode of the group took too, and the share on an edge that both a
winning and a losing episode took ("contested"): only on contested steps can SALT's edge mean
differ from the episode's own outcome. Beside them, SALT's Spearman lead over GRPO from the
files. Rollouts only, no ground truth: about 20 minutes for the four envs' 64 tasks.

Usage: python bench/shared_states.py bench/results/credit/*.json \
           bench/results/credit_accuracy_webshop_64.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from advantages import shared_share  # bench/ is this script's folder
from credit_accuracy import ENVS, combine, rows
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from trainers import Batch
from trainers.graph import build_graph


def replay(row: dict[str, Any]) -> list[Any]:
    """The independent groups one credit-benchmark row (a shard or a whole run) recorded."""
    env_id, kwargs, horizon = ENVS[row["env"]]
    seed = row.get("seed", 0) + row.get("first_task", 0)  # as credit_accuracy.measure seeds
    policy = agentgym.NoisyExpertPolicy(row["epsilon"], seed=seed)
    with agentgym.make(env_id, max_turns=row.get("max_turns", horizon), **kwargs) as env:
        return agentgym.rollout(env, policy, tasks=row["tasks"], group_size=row["group"],
                                seed=seed, progress=False)


def meeting(episodes: list[Any]) -> dict[str, float]:
    """Shared and contested shares of the steps, with the success rate."""
    batch = Batch.from_episodes(episodes)
    steps = sum(len(e.turns) for e in episodes)
    contested = sum(build_graph([episodes[i] for i in members]).contested_steps()
                    for members in batch.groups)
    return {"steps": steps, "shared": shared_share(batch), "contested": contested / steps,
            "success": sum(e.outcome.success for e in episodes) / len(episodes)}


def salt_lead(shards: list[dict[str, Any]]) -> float:
    """SALT(GRPO)'s Spearman minus GRPO's over these rows (older whole runs kept only scores)."""
    if "rows" in shards[0]:
        scores = shards[0]["rows"]
    else:
        scores = rows(combine(shards)[0])
    return scores["SALT(GRPO)"]["spearman"] - scores["GRPO"]["spearman"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path,
                        help="bench/credit_accuracy.py result files (shards or whole runs)")
    parser.add_argument("--out", type=Path, default=Path("runs/shared_states.json"))
    args = parser.parse_args()
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for path in args.results:
        for row in json.loads(path.read_text()):
            runs.setdefault((row["env"], row["epsilon"]), []).append(row)
    episodes: dict[tuple[str, float], list[Any]] = {key: [] for key in runs}
    for key, row in track([(k, r) for k, rs in runs.items() for r in rs],
                          description="replaying groups"):
        episodes[key] += replay(row)
    results = [{"env": env, "epsilon": epsilon, "tasks": sum(r["tasks"] for r in shards),
                **meeting(episodes[env, epsilon]), "salt_lead": salt_lead(shards)}
               for (env, epsilon), shards in runs.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    Console().print(table(results))
    print(f"results: {args.out}")


def table(results: list[dict[str, Any]]) -> Table:
    out = Table(title="Where a group's episodes meet (groups of 8)")
    for column in ("env", "epsilon", "tasks", "success", "steps", "shared steps",
                   "contested steps", "SALT - GRPO Spearman"):
        out.add_column(column, justify="left" if column == "env" else "right")
    for r in results:
        out.add_row(r["env"], f"{r['epsilon']}", f"{r['tasks']}", f"{r['success']:.0%}",
                    f"{r['steps']:,}", f"{r['shared']:.1%}", f"{r['contested']:.1%}",
                    f"{r['salt_lead']:+.3f}")
    return out


if __name__ == "__main__":
    main()
