"""Time per batch of GRPO, RLOO, SALT and GiGPO on 1,024 (or 8,192) episodes x 50 turns.

Episodes come in groups of 8 that share steps the way real rollouts of one task do: each
new episode follows an earlier one through the same states with probability 0.8 per step,
and once it has diverged, sometimes rejoins a state seen at the same depth. The script
prints the share of steps on a shared edge, then a table of median milliseconds per batch
and the ratio to GRPO. Targets at 8,192 episodes (512 prompts x 16 samples, a GPU run's
batch): SALT under 300 ms and GiGPO under 1 s per batch, on one core.

Usage: python bench/advantages.py [--episodes 1024] [--turns 50] [--group 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from agentgym.records import Episode, Outcome, Turn
from trainers import GRPO, RLOO, SALT, Batch, GiGPO, build_graph


def synthetic_group(rng: np.random.Generator, group: str, size: int, turns: int
                    ) -> list[Episode]:
    paths: list[list[tuple[str, str]]] = []  # per episode: (state, action) at each depth
    for i in range(size):
        state, path = f"{group}/root", []
        for t in range(turns):
            followers = [p for p in paths if p[t][0] == state]
            if followers and rng.random() < 0.8:
                action = followers[int(rng.integers(len(followers)))][t][1]
            else:
                action = f"act{int(rng.integers(10**6))}"
            path.append((state, action))
            same = [p for p in paths if p[t] == (state, action)]
            if same and t + 1 < turns:
                state = same[0][t + 1][0]
            elif paths and t + 1 < turns and rng.random() < 0.1:
                state = paths[int(rng.integers(len(paths)))][t + 1][0]
            else:
                state = f"{group}/s{i}-{t + 1}"
        paths.append(path)
    episodes = []
    for i, path in enumerate(paths):
        keys = [s for s, _ in path] + [f"{group}/end{i}"]
        won = bool(rng.random() < 0.5)
        rewards = [0.0] * (turns - 1) + [float(won)]
        episode_turns = [Turn(index=t, observation=keys[t], action=a, parsed_action=a,
                              reward=rewards[t], state_key=keys[t], next_state_key=keys[t + 1])
                         for t, (_, a) in enumerate(path)]
        episodes.append(Episode(env_id="Bench-v0", task_id=group, group_id=group,
                                turns=episode_turns, outcome=Outcome(success=won)))
    return episodes


def shared_share(batch: Batch) -> float:
    """The share of steps on an edge that another episode of the group took too."""
    shared = total = 0
    for members in batch.groups:
        graph = build_graph([batch.episodes[i] for i in members])
        for i, steps in enumerate(graph.step_edges):
            total += len(steps)
            shared += sum(graph.shared(i, t) > 1 for t in range(len(steps)))
    return shared / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    episodes = [e for g in range(args.episodes // args.group)
                for e in synthetic_group(rng, f"task{g}", args.group, args.turns)]
    batch = Batch.from_episodes(episodes)
    estimators = {"GRPO": GRPO(), "RLOO": RLOO(), "SALT(GRPO)": SALT(), "GiGPO": GiGPO()}
    times: dict[str, list[float]] = {name: [] for name in estimators}
    for _ in track(range(args.repeats), description="timing"):
        for name, estimator in estimators.items():
            started = time.perf_counter()
            estimator(batch)
            times[name].append(time.perf_counter() - started)
    median = {k: statistics.median(v) * 1000 for k, v in times.items()}
    console = Console()
    console.print(f"{len(episodes)} episodes x {args.turns} turns in groups of {args.group}; "
                  f"{shared_share(batch):.0%} of steps are on an edge another trajectory took")
    table = Table(title=f"Advantages per batch (median of {args.repeats})")
    for column in ("estimator", "ms / batch", "x GRPO"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, ms in median.items():
        table.add_row(name, f"{ms:.1f}", f"{ms / median['GRPO']:.1f}")
    console.print(table)
    for name, target in (("SALT(GRPO)", 300), ("GiGPO", 1000)):
        verdict = ("met" if median[name] < target else "NOT met") if len(episodes) >= 8192 \
            else "run with --episodes 8192 to check it"
        print(f"{name}: {median[name]:.1f} ms per batch of {len(episodes)} episodes "
              f"(target at 8,192 episodes < {target} ms: {verdict})")


if __name__ == "__main__":
    main()
