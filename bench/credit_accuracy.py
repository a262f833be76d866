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

A long run can go in shards (``--first-task 8 --tasks 8``, each with its own ``--out``), run
side by side or over several days, then be joined: ``--combine shard*.json``. A shard seeds
its policy with ``seed + first_task``, so shards are independent draws, not slices of one run.
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
from agentgym.rollout import tree_rollout
from agentgym.tree import Tree
from agentgym.values import attach_mc_values, monte_carlo_values
from trainers import GRPO, RLOO, SALT, Batch, DrGRPO, Estimator, GiGPO, Vine

# each env with its turn limit: room for a few random actions besides the expert's path
# (TextWorld medium's expert takes 5 turns, hard's 10, ALFWorld's 4 to 9)
ENVS = {"textworld-medium": ("TextWorld-v0", {"preset": "medium"}, 10),
        "textworld-hard": ("TextWorld-v0", {"preset": "hard"}, 20),
        "alfworld": ("ALFWorld-v0", {}, 10),
        "webshop": ("WebShop-v0", {}, 10)}
INDEPENDENT: dict[str, Estimator] = {
    "GRPO": GRPO(), "RLOO": RLOO(), "Dr.GRPO": DrGRPO(), "SALT(GRPO)": SALT(),
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
    """One shard: tasks ``first_task ..`` of one env at one epsilon, every step's numbers."""
    env_id, kwargs, horizon = ENVS[name]
    max_turns = args.max_turns or horizon
    env = agentgym.make(env_id, max_turns=max_turns, **kwargs)
    seed = args.seed + args.first_task  # a shard plays its own tasks with its own draws
    policy = agentgym.NoisyExpertPolicy(epsilon, seed=seed)
    independent = agentgym.rollout(env, policy, tasks=args.tasks, group_size=args.group,
                                   seed=seed, progress=False)
    trees, tree_stats = tree_rollout(env, policy, Tree(leaves=args.group, width=2, every=2),
                                     tasks=args.tasks, seed=seed)
    known: dict = {}
    truth = {"independent": true_advantages(env, policy, independent, args.truth_k, known),
             "tree": true_advantages(env, policy, trees, args.truth_k, known)}
    sampled = sum(len(e.turns) for e in independent)
    batch = Batch.from_episodes(independent)
    steps = {label: _steps(estimator(batch), "independent", sampled)
             for label, estimator in INDEPENDENT.items()}
    steps["SALT(GRPO), tree groups"] = _steps(SALT()(Batch.from_episodes(trees)), "tree",
                                              tree_stats.env_steps)
    for k in (4, 8):
        cost = attach_mc_values(env, policy, independent, k=k)
        steps[f"Vine K={k}"] = _steps(Vine()(batch), "independent",
                                      sampled + cost["env_steps"])
    env.close()
    return {"env": name, "epsilon": epsilon, "seed": args.seed, "first_task": args.first_task,
            "tasks": args.tasks, "group": args.group, "truth_k": args.truth_k,
            "max_turns": max_turns, "truth_states": len(known),
            "episodes": len(independent),
            "wins": int(sum(e.outcome.success for e in independent)),
            "truth": {kind: _flat(values) for kind, values in truth.items()}, "steps": steps}


def _flat(arrays: list[np.ndarray]) -> list[float]:
    return [round(float(v), 6) for v in np.concatenate(arrays)]


def _steps(estimated: list[np.ndarray], truth: str, env_steps: int) -> dict[str, Any]:
    return {"estimates": _flat(estimated), "truth": truth, "env_steps": env_steps}


SAME_RUN = ("env", "epsilon", "group", "truth_k", "max_turns")


def combine(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shards of one (env, epsilon, group, truth_k, max_turns) joined into one result each."""
    runs: dict[tuple, list[dict[str, Any]]] = {}
    for shard in sorted(shards, key=lambda s: s["first_task"]):
        runs.setdefault(tuple(shard[field] for field in SAME_RUN), []).append(shard)
    return [_join(run) for run in runs.values()]


def _join(shards: list[dict[str, Any]]) -> dict[str, Any]:
    starts = [shard["first_task"] for shard in shards]
    if len(set(starts)) < len(starts):
        raise SystemExit(f"two shards of one run start at the same task: {starts}")
    first, scored = shards[0], [rows(shard) for shard in shards]
    return {
        **{field: first[field] for field in SAME_RUN}, "first_task": starts[0],
        "shards": starts,
        **{field: sum(shard[field] for shard in shards)
           for field in ("tasks", "truth_states", "episodes", "wins")},
        "truth": {kind: [v for shard in shards for v in shard["truth"][kind]]
                  for kind in first["truth"]},
        "steps": {label: {"estimates": [v for shard in shards
                                        for v in shard["steps"][label]["estimates"]],
                          "truth": step["truth"],
                          "env_steps": sum(shard["steps"][label]["env_steps"]
                                           for shard in shards)}
                  for label, step in first["steps"].items()},
        "shard_spearman": {label: [score[label]["spearman"] for score in scored]
                           for label in first["steps"]}}


def rows(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each estimator's score against the truth, and its cost."""
    return {label: {**score([np.array(step["estimates"])],
                            [np.array(result["truth"][step["truth"]])]),
                    "env_steps": step["env_steps"]}
            for label, step in result["steps"].items()}


def _number(value: float, form: str) -> str:
    """``value`` formatted, or why there is none (an estimator that gave every step 0)."""
    return "n/a (constant)" if value != value else form.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["textworld-medium"], choices=ENVS)
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--first-task", type=int, default=0,
                        help="play tasks first-task .. first-task + tasks - 1 (a shard)")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--truth-k", type=int, default=64)
    parser.add_argument("--max-turns", type=int,
                        help="turn limit (default: per env, see ENVS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="64 tasks on every env (TextWorld medium and hard, ALFWorld, "
                             "WebShop)")
    parser.add_argument("--combine", nargs="+", type=Path, metavar="SHARDS",
                        help="join the shards in these result files into one table (no run)")
    parser.add_argument("--markdown", action="store_true",
                        help="print each env's table as Markdown (epsilons side by side)")
    parser.add_argument("--out", type=Path, default=Path("runs/credit_accuracy.json"))
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows --out already holds and measure only the "
                             "rest (a shard stopped half-way); refused if they were "
                             "measured with other settings")
    args = parser.parse_args()
    if args.combine:
        results = combine([r for path in args.combine for r in json.loads(path.read_text())])
        args.out.write_text(json.dumps(results))
    else:
        results = run(args)
    if args.markdown:
        print(markdown(results))
    else:
        report(results)
    print(f"results: {args.out}")


def markdown(results: list[dict[str, Any]]) -> str:
    """Each env's results as one Markdown table, its epsilons side by side."""
    out = []
    for name in dict.fromkeys(r["env"] for r in results):
        runs = sorted((r for r in results if r["env"] == name), key=lambda r: r["epsilon"])
        scored = [rows(r) for r in runs]
        head = ["estimator"]
        for r in runs:
            head += [f"eps {r['epsilon']} ({r['wins'] / r['episodes']:.0%} success, "
                     f"{r['tasks']} tasks): Spearman", "per shard", "sign", "env steps"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label in runs[0]["steps"]:
            cells = [label]
            for r, score in zip(runs, scored):
                row = score[label]
                cells += [_number(row["spearman"], "{:.3f}"),
                          _mean_sd(r.get("shard_spearman", {}).get(label, [row["spearman"]])),
                          f"{_number(row['sign'], '{:.1%}')} of {row['big_steps']:,}",
                          f"{row['env_steps']:,}"]
            lines.append("| " + " | ".join(cells) + " |")
        out.append(f"{name}:\n\n" + "\n".join(lines))
    return "\n\n".join(out)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every env and epsilon asked for, writing ``--out`` as each finishes."""
    if args.full:
        args.envs, args.tasks = list(ENVS), 64
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = finished_rows(args) if args.resume else []
    done = {(r["env"], r["epsilon"]) for r in results}
    with Progress(transient=True) as bar:
        job = bar.add_task("credit accuracy", total=len(args.envs) * len(args.epsilons),
                           completed=len(done))
        for name in args.envs:
            for epsilon in args.epsilons:
                if (name, epsilon) in done:
                    continue
                started = time.perf_counter()
                results.append(measure(name, epsilon, args))
                results[-1]["seconds"] = round(time.perf_counter() - started, 1)
                args.out.write_text(json.dumps(results))
                bar.advance(job)
    return results


def finished_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows ``--out`` holds (none if it is absent), all measured with these settings.

    Rows of other envs or epsilons are kept as they are; rows measured with other settings
    stop the run, since writing this run's rows would lose them.
    """
    if not args.out.exists():
        return []
    settings = {"seed": args.seed, "first_task": args.first_task, "tasks": args.tasks,
                "group": args.group, "truth_k": args.truth_k}
    try:
        rows = json.loads(args.out.read_text())
        other = [r for r in rows if not _measured_with(r, settings, args.max_turns)]
    except (ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f"--resume: {args.out} is not a results file of this script "
                         f"({exc!r}); move it away or run without --resume.") from exc
    if other:
        theirs = {key: _setting(other[0], key) for key in settings}
        raise SystemExit(f"--resume: {args.out} holds {len(other)} rows measured with other "
                         f"settings ({theirs}) than this run's ({settings}); resuming would "
                         "overwrite them. Give another --out, or this file's settings.")
    return rows


def _measured_with(row: dict[str, Any], settings: dict[str, Any], max_turns: int | None) -> bool:
    return (all(_setting(row, key) == value for key, value in settings.items())
            and (max_turns is None or row["max_turns"] == max_turns))


def _setting(row: dict[str, Any], key: str) -> Any:
    """A row's setting; rows written before rows named their seed were all run at seed 0."""
    return row.get(key, 0 if key == "seed" else None)


def report(results: list[dict[str, Any]]) -> None:
    console = Console(width=130)
    for result in results:
        table = Table(title=f"{result['env']}, epsilon {result['epsilon']}: {result['tasks']} "
                            f"tasks x {result['group']}, success "
                            f"{result['wins'] / result['episodes']:.0%}, truth from "
                            f"{result['truth_k']} continuations per state, "
                            f"{result['max_turns']} turns at most")
        spread = result.get("shard_spearman", {})
        columns = ["estimator", "Spearman", "sign agreement (|A| >= 0.1)", "env steps"]
        for column in columns + ([f"Spearman per shard ({len(result['shards'])})"]
                                 if spread else []):
            table.add_column(column, justify="left" if column == "estimator" else "right")
        for label, row in rows(result).items():
            cells = [label, _number(row["spearman"], "{:.3f}"),
                     f"{_number(row['sign'], '{:.1%}')} of {row['big_steps']}",
                     f"{row['env_steps']:,}"]
            if spread:
                cells.append(_mean_sd(spread[label]))
            table.add_row(*cells)
        console.print(table)


def _mean_sd(values: list[float]) -> str:
    """``mean ± sd`` of the shards' numbers (constant shards left out, and counted)."""
    kept = [v for v in values if v == v]
    if not kept:
        return "n/a (constant)"
    left_out = f" ({len(values) - len(kept)} constant)" if len(kept) < len(values) else ""
    return f"{np.mean(kept):.3f} ± {np.std(kept):.3f}{left_out}"


if __name__ == "__main__":
    main()
