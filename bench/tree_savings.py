"""What tree groups save: env steps, generated tokens and time against independent groups.

A tiny model (trained here on the env's own text, untrained as a policy, so its replies vary)
samples the same tasks twice with the same number of episodes per task: as independent
groups, and as tree groups (``Tree(leaves=G, width=2, every=k)`` and ``uncertain=True``).
Printed per arm: env steps, generated tokens, the rollout's wall time (one env: episodes and
trees one after another) and the share of steps on an edge that another episode of the
group also took (what SALT can work with).

Usage: python bench/tree_savings.py [--env TextWorld-v0] [--tasks 8] [--group 8]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from advantages import shared_share  # bench/ is this script's folder
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from agentgym.hf_policy import TransformersPolicy
from trainers import Batch
from trainers.models import tiny_from_texts


def tiny_policy(env: Any, seed: int) -> TransformersPolicy:
    texts = [env.system_prompt()]
    for episode in agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=16, seed=10_000,
                                    progress=False):
        texts += [t.observation + " " + t.action for t in episode.turns]
    model, tokenizer = tiny_from_texts(texts * 3, vocab_size=600, seed=seed)
    return TransformersPolicy(model, tokenizer, max_new_tokens=16, seed=seed)


def measure(env: Any, policy: TransformersPolicy, tree: agentgym.Tree | None,
            args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    episodes = agentgym.rollout(env, policy, tasks=args.tasks, group_size=args.group,
                                seed=args.seed, tree=tree, progress=False)
    seconds = time.perf_counter() - started
    stats = agentgym.TreeStats.of(episodes)
    return {"episodes": len(episodes), "env_steps": stats.env_steps,
            "tokens": stats.generated_tokens, "seconds": seconds,
            "shared": shared_share(Batch.from_episodes(episodes))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="TextWorld-v0")
    parser.add_argument("--preset", default="medium", help="TextWorld preset")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    kwargs = {"preset": args.preset} if args.env == "TextWorld-v0" else {}
    env = agentgym.make(args.env, max_turns=args.max_turns, **kwargs)
    policy = tiny_policy(env, args.seed)
    arms = {"independent groups": None,
            f"tree, every {args.every} turns": agentgym.Tree(args.group, 2, every=args.every),
            "tree, where unsure": agentgym.Tree(args.group, 2, uncertain=True)}
    rows = {name: measure(env, policy, tree, args)
            for name, tree in track(arms.items(), description="arms")}
    env.close()
    base = rows["independent groups"]
    table = Table(title=f"{args.env} ({args.preset}): {args.tasks} tasks x {args.group} "
                        f"episodes, at most {args.max_turns} turns, tiny model")
    for column in ("arm", "env steps", "generated tokens", "seconds", "x independent "
                   "(steps / tokens / seconds)", "steps on shared edges"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{row['env_steps']:,}", f"{row['tokens']:,}",
                      f"{row['seconds']:.1f}",
                      f"{row['env_steps'] / base['env_steps']:.2f} / "
                      f"{row['tokens'] / base['tokens']:.2f} / "
                      f"{row['seconds'] / base['seconds']:.2f}",
                      f"{row['shared']:.0%}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
