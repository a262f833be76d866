"""EnvPool scaling, the HTTP server's cost per step, and env steps hidden behind generation.

1. Steps/s of TextWorld-v0 with 1 and 2 worker processes, each env stepping as fast as its
   worker can (seeded random admissible commands); target: 2 workers >= 1.8x one.
2. The same commands on one env in process and through ``agentgym serve``: ms per step.
3. A rollout whose policy takes a simulated 200 ms per generation: one env in process
   (generation and stepping in series) against a pool of 2 (each env steps while the
   policy generates for the other), with how much of the env time was hidden; on plain
   TextWorld and on TextWorld with 150 ms added per step (standing in for a sandbox).

Run: python bench/pool_scaling.py [--steps 400]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

import agentgym
from agentgym.pool import EnvPool

EASY = {"preset": "medium", "max_turns": 30}


def pool_steps_per_second(workers: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    with EnvPool("TextWorld-v0", workers, env_kwargs=EASY) as pool:
        infos = {}
        for env in range(workers):
            pool.submit(env, "reset", seed=env)
        for result in pool.wait(min_results=workers):
            infos[result.env] = result.value[1]
        done, started = 0, time.perf_counter()

        def next_step(env: int) -> None:
            choices = infos[env]["admissible_actions"]
            pool.submit(env, "step", f"<action>{choices[int(rng.integers(len(choices)))]}"
                                     "</action>")

        for env in range(workers):
            next_step(env)
        while done < steps * workers:
            for result in pool.wait():
                if result.method == "reset":
                    infos[result.env] = result.value[1]
                    next_step(result.env)
                    continue
                done += 1
                _, _, terminated, truncated, infos[result.env] = result.value
                if terminated or truncated:
                    pool.submit(result.env, "reset", seed=result.env)  # the same cached game
                else:
                    next_step(result.env)
        elapsed = time.perf_counter() - started
        pool.wait(min_results=workers)
    return done / elapsed


def per_step_seconds(env, commands: list[str]) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for command in commands:
        *_, terminated, truncated, _ = env.step(command)
        if terminated or truncated:
            env.reset(seed=0)
    return (time.perf_counter() - started) / len(commands)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_overhead(steps: int) -> tuple[float, float]:
    with agentgym.make("TextWorld-v0", **EASY) as env:
        obs, info = env.reset(seed=0)
        rng = np.random.default_rng(1)
        commands = []
        for _ in range(steps):
            choices = info["admissible_actions"]
            commands.append(f"<action>{choices[int(rng.integers(len(choices)))]}</action>")
            *_, terminated, truncated, info = env.step(commands[-1])
            if terminated or truncated:
                obs, info = env.reset(seed=0)
        local = per_step_seconds(env, commands)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve", "TextWorld-v0",
                               "--port", str(port), "--env-arg", "preset=medium"],
                              env=os.environ, stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with agentgym.make(f"remote:{url}/TextWorld-v0") as remote:
            served = per_step_seconds(remote, commands)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return local, served


class SlowEnv:
    """TextWorld-v0 with a fixed extra latency per step, standing in for a slow sandbox."""

    def __init__(self, delay: float, **kwargs) -> None:
        self.env, self.delay = agentgym.make("TextWorld-v0", **kwargs), delay

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, action):
        time.sleep(self.delay)
        return self.env.step(action)


def make_slow(delay: float = 0.0, **kwargs):
    return SlowEnv(delay, **kwargs) if delay else agentgym.make("TextWorld-v0", **kwargs)


class SlowPolicy:
    """A random policy that takes a fixed time per generation, like a model would."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.inner = seconds, agentgym.RandomPolicy()

    def reseed(self, seed: int) -> None:
        self.inner = agentgym.RandomPolicy(seed)

    def __call__(self, conversation):
        time.sleep(self.seconds)
        return self.inner(conversation)


def overlap(episodes: int, generation: float, delay: float
            ) -> list[tuple[str, float, float, float]]:
    kwargs = {"preset": "medium", "max_turns": 8, "delay": delay}
    label = f"+{delay * 1000:.0f} ms/step" if delay else "TextWorld"
    rows = []
    env = make_slow(**kwargs)
    env.reset(seed=0)
    started = time.perf_counter()
    eps = agentgym.rollout(env, SlowPolicy(generation), tasks=episodes, progress=False)
    rows.append((f"{label}: 1 env, in series", time.perf_counter() - started, *totals(eps)))
    env.close()
    with EnvPool(make_slow, 2, env_kwargs=kwargs) as pool:
        pool.call(0, "reset", seed=0)  # start both workers outside the timing
        pool.call(1, "reset", seed=0)
        started = time.perf_counter()
        eps = agentgym.rollout(pool, SlowPolicy(generation), tasks=episodes, progress=False)
        rows.append((f"{label}: pool of 2", time.perf_counter() - started, *totals(eps)))
    return rows


def totals(episodes) -> tuple[float, float]:
    turns = [t for e in episodes for t in e.turns]
    return sum(t.policy_seconds for t in turns), sum(t.env_seconds for t in turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    console = Console()
    with console.status("stepping with 1 and 2 workers"):
        one, two = (pool_steps_per_second(n, args.steps) for n in (1, 2))
    with console.status("comparing in-process and HTTP steps"):
        local, served = http_overhead(args.steps // 2)
    with console.status("rolling out with a 200 ms policy"):
        rows = overlap(4, 0.2, 0.0) + overlap(4, 0.2, 0.15)

    scaling = Table(title="TextWorld-v0 steps/s in an EnvPool")
    for column in ("workers", "steps/s", "x one worker"):
        scaling.add_column(column, justify="right")
    scaling.add_row("1", f"{one:.0f}", "1.00")
    scaling.add_row("2", f"{two:.0f}", f"{two / one:.2f}  (target >= 1.8)")
    console.print(scaling)
    console.print(f"per step: in process {local * 1000:.2f} ms, through agentgym serve "
                  f"{served * 1000:.2f} ms (+{(served - local) * 1000:.2f} ms of HTTP)")
    overlap_table = Table(title="Rollout with a 200 ms policy: is env time hidden?")
    for column in ("setup", "wall s", "generation s", "env s (summed)", "env time hidden"):
        overlap_table.add_column(column, justify="left" if column == "setup" else "right")
    for name, wall, generation, env_time in rows:
        hidden = max(0.0, 1 - max(0.0, wall - generation) / env_time) if env_time else 0.0
        overlap_table.add_row(name, f"{wall:.2f}", f"{generation:.2f}", f"{env_time:.2f}",
                              f"{hidden:.0%}")
    console.print(overlap_table)


if __name__ == "__main__":
    main()
