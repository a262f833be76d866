"""Many SWE-v0 expert episodes at once: does every sandbox hold up under parallel load?

For each sandbox, an ``EnvPool`` of N workers (default 32) plays expert episodes at the
same time (``--rounds`` each), every call submitted as soon as the previous one of its env
returns; the clock starts once every worker has built its env. Reported:
failed episodes (with their reasons), p50/p99 latency of ``reset`` and of a ``bash``
round trip under that load, episodes per minute, and what is left afterwards (containers of
the run, episode folders). On 2 cores, 32 episodes is 16 per core: the point is that
nothing hangs, fails or leaks, not the absolute speed.

Usage: python bench/swe_parallel.py [--episodes 32] [--rounds 2] [--sandboxes docker bwrap]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agentgym.pool import EnvPool
from agentgym.protocols import ToolCall

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


def play(sandbox: str, n: int, warm: int, rounds: int) -> dict:
    """N envs at once, each playing ``rounds`` expert episodes (two ``bash`` round trips
    before the fix); timed from when every env is built."""
    latency: dict[str, list[float]] = {"reset": [], "trip": []}
    failures: list[str] = []
    kwargs = {"sandbox": sandbox, "max_turns": 20, "warm_containers": warm}
    with Progress(transient=True) as bar, EnvPool("SWE-v0", n, env_kwargs=kwargs,
                                                  timeout=600) as pool:
        for i in range(n):  # workers build their envs (imports, task sets) before the clock
            pool.submit(i, "env_id")
        pool.wait(min_results=n)
        job = bar.add_task(f"{sandbox}: {n} envs x {rounds} episodes", total=n * rounds)
        started = time.perf_counter()
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
        minutes = (time.perf_counter() - started) / 60
    return {"failed": failures, **latency, "per_min": n * rounds / minutes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--sandboxes", nargs="+", default=["docker", "bwrap"])
    parser.add_argument("--warm", type=int, default=2, help="warm containers per env")
    parser.add_argument("--rounds", type=int, default=2, help="episodes per env")
    args = parser.parse_args()
    rows = {}
    for sandbox in args.sandboxes:
        before = leftovers()
        rows[sandbox] = play(sandbox, args.episodes, args.warm, args.rounds)
        rows[sandbox]["left"] = {k: v - before[k] for k, v in leftovers().items()}
    table = Table(title=f"{args.episodes} SWE-v0 envs at once (EnvPool), {args.rounds} expert "
                        "episodes each")
    for column in ("sandbox", "failed", "reset p50/p99 ms", "bash round trip p50/p99 ms",
                   "episodes/min", "containers left", "folders left"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        reset, trip = row["reset"], row["trip"]
        table.add_row(name, str(len(row["failed"])),
                      f"{statistics.median(reset) * 1e3:.0f} / {percentile(reset, .99) * 1e3:.0f}",
                      f"{statistics.median(trip) * 1e3:.0f} / {percentile(trip, .99) * 1e3:.0f}",
                      f"{row['per_min']:.1f}", str(row["left"]["containers"]),
                      str(row["left"]["folders"]))
    Console(width=130).print(table)
    for name, row in rows.items():
        for failure in row["failed"]:
            print(f"{name}: {failure}")


if __name__ == "__main__":
    main()
