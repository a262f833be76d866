"""Many SWE-v0 expert episodes at once: does every sandbox hold up under parallel load?

For each sandbox, a pool of N envs (default 32) plays expert episodes at the same time
(``--rounds`` each), every call submitted as soon as the previous one of its env returns;
the clock starts once every worker has built its env. ``--via`` picks how: an ``EnvPool``
or a ``RayEnvPool`` driven call by call, or ``agentgym.rollout`` (the async rollout
engine) over an ``EnvPool``. Reported:
failed episodes (with their reasons), p50/p99 latency of ``reset`` and of a ``bash``
round trip under that load, episodes per minute, and what is left afterwards (containers of
the run, episode folders). On 2 cores, 32 episodes is 16 per core: the point is that
nothing hangs, fails or leaks, not the absolute speed.

Usage: python bench/swe_parallel.py [--episodes 32] [--rounds 2] [--sandboxes docker bwrap]
                                   [--via envpool ray rollout] [--warm 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from agentgym.policies import Conversation
from agentgym.pool import EnvPool, Pool
from agentgym.protocols import ToolCall
from agentgym.rollout import rollout

ROUND_TRIP = ToolCall("bash", {"command": "echo ok"}).to_text()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def leftovers() -> dict[str, int]:
    """Sandbox containers and SWE episode folders that exist right now (any process)."""
    from environments.swe.docker_engine import docker_available, engine

    folders = len(list(Path(tempfile.gettempdir()).glob("agentgym-swe-*")))
    containers = 0
    if docker_available():
        containers = len(engine().api.containers(all=True, filters={"label": "agentgym.swe"}))
    return {"containers": containers, "folders": folders}


def make_pool(via: str, n: int, kwargs: dict[str, Any]) -> Pool:
    """``EnvPool`` (one process per env) or ``RayEnvPool`` (one actor per env)."""
    if via == "ray":
        from agentgym.ray_pool import RayEnvPool

        # Ray reserves CPUs per actor: all N must fit on this machine's cores at once
        return RayEnvPool("SWE-v0", n, env_kwargs=kwargs, timeout=600,
                          num_cpus=(os.cpu_count() or 1) / n)
    return EnvPool("SWE-v0", n, env_kwargs=kwargs, timeout=600)


def play(pool: Pool, rounds: int, bar: Progress, job: TaskID) -> dict:
    """Every env of ``pool`` plays ``rounds`` expert episodes, each with two ``bash`` round
    trips before the fix; calls are submitted by hand as soon as the env's last returns."""
    n = len(pool)
    latency: dict[str, list[float]] = {"reset": [], "trip": []}
    failures: list[str] = []
    pending = dict.fromkeys(range(n), "reset")
    trips_left, played = dict.fromkeys(range(n), 2), dict.fromkeys(range(n), 0)
    for i in range(n):
        pool.submit(i, "reset", seed=i)
    while pending:
        for result in pool.wait():
            i, kind = result.env, pending.pop(result.env)
            if not result.ok:
                failures.append(f"env {i} {kind}: {result.error}")
                bar.advance(job, rounds - played[i])
                continue
            if kind in latency:
                latency[kind].append(result.seconds)
            info, over = result.value[-1], len(result.value) == 5 and any(result.value[2:4])
            if over:
                if info["outcome_channels"]["resolved"] != 1.0:
                    failures.append(f"env {i}: not resolved")
                bar.advance(job)
                played[i] += 1
                if played[i] < rounds:
                    pending[i], trips_left[i] = "reset", 2
                    pool.submit(i, "reset", seed=i + played[i] * n)
            elif trips_left[i]:
                trips_left[i] -= 1
                pending[i] = "trip"
                pool.submit(i, "step", ROUND_TRIP)
            else:
                pending[i] = "expert"
                pool.submit(i, "step", info["expert_action"])
    return {"failed": failures, **latency}


def look_then_expert(conversation: Conversation) -> str:
    """Two ``bash`` round trips, then the expert's actions."""
    return ROUND_TRIP if conversation.turn < 2 else conversation.info["expert_action"]


def play_rollout(pool: Pool, rounds: int, bar: Progress, job: TaskID) -> dict:
    """The same episodes through ``agentgym.rollout`` (the async engine) over ``pool``;
    it times env steps, not resets."""
    episodes = rollout(pool, look_then_expert, tasks=len(pool) * rounds, progress=False)
    bar.advance(job, len(episodes))
    failures = [f"{e.task_id}: {e.error['message'] if e.error else 'not resolved'}"
                for e in episodes if e.error or not e.outcome.success]
    trips = [t.env_seconds for e in episodes for t in e.turns[:2]]
    return {"failed": failures, "reset": [], "trip": trips}


def run(sandbox: str, via: str, n: int, warm: int, rounds: int) -> dict:
    """N envs at once, timed from when every env is built."""
    kwargs = {"sandbox": sandbox, "max_turns": 20, "warm_containers": warm}
    pooled = "ray" if via == "ray" else "envpool"
    with Progress(transient=True) as bar, make_pool(pooled, n, kwargs) as pool:
        for i in range(n):  # workers build their envs (imports, task sets) before the clock
            pool.submit(i, "env_id")
        pool.wait(min_results=n)
        job = bar.add_task(f"{sandbox} via {via}: {n} envs x {rounds} episodes",
                           total=n * rounds)
        started = time.perf_counter()
        row = (play_rollout if via == "rollout" else play)(pool, rounds, bar, job)
        minutes = (time.perf_counter() - started) / 60
    return {**row, "per_min": n * rounds / minutes}


def p50_p99(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1e3:,.0f} / {percentile(values, .99) * 1e3:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--sandboxes", nargs="+", default=["docker", "bwrap"])
    parser.add_argument("--via", nargs="+", default=["envpool"],
                        choices=["envpool", "ray", "rollout"],
                        help="EnvPool driven by hand, RayEnvPool driven by hand, or "
                             "agentgym.rollout over an EnvPool")
    parser.add_argument("--warm", type=int, default=2, help="warm containers per env")
    parser.add_argument("--rounds", type=int, default=2, help="episodes per env")
    args = parser.parse_args()
    rows = {}
    for sandbox in args.sandboxes:
        for via in args.via:
            before = leftovers()
            rows[sandbox, via] = run(sandbox, via, args.episodes, args.warm, args.rounds)
            rows[sandbox, via]["left"] = {k: v - before[k] for k, v in leftovers().items()}
    table = Table(title=f"{args.episodes} SWE-v0 envs at once, {args.rounds} expert "
                        f"episodes each, warm_containers={args.warm}")
    for column in ("sandbox", "via", "failed", "reset p50/p99 ms",
                   "bash round trip p50/p99 ms", "episodes/min", "containers left",
                   "folders left"):
        table.add_column(column, justify="right")
    for (sandbox, via), row in rows.items():
        table.add_row(sandbox, via, f"{len(row['failed'])} of {args.episodes * args.rounds}",
                      p50_p99(row["reset"]), p50_p99(row["trip"]), f"{row['per_min']:.1f}",
                      str(row["left"]["containers"]), str(row["left"]["folders"]))
    Console(width=140).print(table)
    for (sandbox, via), row in rows.items():
        for failure in row["failed"]:
            print(f"{sandbox} via {via}: {failure}")


if __name__ == "__main__":
    main()
