"""Which estimator assigns credit closest to the truth? Advantages against ground truth.

Behaviour policy: the expert with probability 1 - epsilon, else a uniformly random
admissible action (``NoisyExpertPolicy``). Ground truth for each recorded step is its true
advantage under that policy, ``A(s_t, a_t) = r_t + V(s_{t+1}) - V(s_t)`` (the envs are
deterministic given the action), with every ``V`` the mean return of ``--truth-k``
continuations from the state's snapshot (states met again at the same turn are estimated
once). Each estimator sees only what it would see in training:

* on independent groups of ``--group`` episodes per task: GRPO, RLOO, Dr.GRPO, SALT over
  GRPO and over RLOO, GiGPO, and Vine with K = 4 and 8 (its own continuations);
* on tree groups (``tree_rollout``, splitting every 2 turns): SALT over GRPO.

Reported per env and epsilon: Spearman correlation with the truth over all steps, sign
agreement on steps whose true advantage is at least 0.1 in size, and the env steps the
estimator's data cost. Results go to ``--out`` (JSON) as each row finishes.

Usage: python bench/credit_accuracy.py            # TextWorld medium, 8 tasks, 12-20 min
       python bench/credit_accuracy.py --full     # the issue's size: 64 tasks, 4 envs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import agentgym
from agentgym.tree import Tree, tree_rollout
from agentgym.values import attach_mc_values, monte_carlo_values
from trainers import GRPO, RLOO, SALT, Batch, DrGRPO, GiGPO, Vine

ENVS = {"textworld-medium": ("TextWorld-v0", {"preset": "medium"}),
        "textworld-hard": ("TextWorld-v0", {"preset": "hard"}),
        "alfworld": ("ALFWorld-v0", {}),
        "webshop": ("WebShop-v0", {})}
INDEPENDENT = {"GRPO": GRPO(), "RLOO": RLOO(), "Dr.GRPO": DrGRPO(), "SALT(GRPO)": SALT(),
               "SALT(RLOO)": SALT(base=RLOO()), "GiGPO": GiGPO()}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); nan when either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def score(estimated: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    est, true = np.concatenate(estimated), np.concatenate(truth)
    big = np.abs(true) >= 0.1
    agree = float((np.sign(est[big]) == np.sign(true[big])).mean()) if big.any() else np.nan
    return {"spearman": spearman(est, true), "sign": agree, "steps": int(len(true)),
            "big_steps": int(big.sum())}


def true_advantages(env: Any, policy: Any, episodes: list, k: int,
                    known: dict) -> list[np.ndarray]:
    """``r_t + V(s_{t+1}) - V(s_t)`` per step, the values from ``k`` continuations."""
    out = []
    for episode in episodes:
        values = monte_carlo_values(env, policy, episode, k=k, known=known).values
        rewards = np.array([t.reward for t in episode.turns])
        out.append(rewards + np.array(values[1:]) - np.array(values[:-1]))
    return out


def measure(name: str, epsilon: float, args: argparse.Namespace) -> dict[str, Any]:
    env_id, kwargs = ENVS[name]
    env = agentgym.make(env_id, max_turns=args.max_turns, **kwargs)
    policy = agentgym.NoisyExpertPolicy(epsilon, seed=args.seed)
    independent = agentgym.rollout(env, policy, tasks=args.tasks, group_size=args.group,
                                   seed=args.seed, progress=False)
    trees, tree_stats = tree_rollout(env, policy, Tree(leaves=args.group, width=2, every=2),
                                     tasks=args.tasks, seed=args.seed)
    known: dict = {}
    truth = true_advantages(env, policy, independent, args.truth_k, known)
    tree_truth = true_advantages(env, policy, trees, args.truth_k, known)
    sampled = sum(len(e.turns) for e in independent)
    rows: dict[str, dict[str, float]] = {}
    batch = Batch.from_episodes(independent)
    for label, estimator in INDEPENDENT.items():
        rows[label] = {**score(estimator(batch), truth), "env_steps": sampled}
    rows["SALT(GRPO), tree groups"] = {
        **score(SALT()(Batch.from_episodes(trees)), tree_truth),
        "env_steps": tree_stats.env_steps}
    for k in (4, 8):
        cost = attach_mc_values(env, policy, independent, k=k)
        rows[f"Vine K={k}"] = {**score(Vine()(batch), truth),
                               "env_steps": sampled + cost["env_steps"]}
    env.close()
    return {"env": name, "epsilon": epsilon, "tasks": args.tasks, "group": args.group,
            "truth_k": args.truth_k, "truth_states": len(known),
            "success": float(np.mean([e.outcome.success for e in independent])), "rows": rows}


def _number(value: float, form: str) -> str:
    """``value`` formatted, or why there is none (an estimator that gave every step 0)."""
    return "n/a (constant)" if value != value else form.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["textworld-medium"], choices=ENVS)
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--truth-k", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="64 tasks on every env (TextWorld medium and hard, ALFWorld, "
                             "WebShop)")
    parser.add_argument("--out", type=Path, default=Path("runs/credit_accuracy.json"))
    args = parser.parse_args()
    if args.full:
        args.envs, args.tasks = list(ENVS), 64
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with Progress(transient=True) as bar:
        job = bar.add_task("credit accuracy", total=len(args.envs) * len(args.epsilons))
        for name in args.envs:
            for epsilon in args.epsilons:
                started = time.perf_counter()
                results.append(measure(name, epsilon, args))
                results[-1]["seconds"] = round(time.perf_counter() - started, 1)
                args.out.write_text(json.dumps(results, indent=1))
                bar.advance(job)
    console = Console(width=130)
    for result in results:
        table = Table(title=f"{result['env']}, epsilon {result['epsilon']}: {result['tasks']} "
                            f"tasks x {result['group']}, success {result['success']:.0%}, "
                            f"truth from {result['truth_k']} continuations per state")
        for column in ("estimator", "Spearman", "sign agreement (|A| >= 0.1)", "env steps"):
            table.add_column(column, justify="left" if column == "estimator" else "right")
        for label, row in result["rows"].items():
            table.add_row(label, _number(row["spearman"], "{:.3f}"),
                          f"{_number(row['sign'], '{:.1%}')} of {row['big_steps']}",
                          f"{row['env_steps']:,}")
        console.print(table)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
