"""ALFWorld-v0 against the stock alfworld engine: reset time and steps/s, same games, same commands.

The stock side is what alfworld's own ``AlfredTWEnv`` builds: TextWorld's gym env over the
``game.tw-pddl`` file with alfworld's ``AlfredDemangler`` and ``AlfredInfos`` wrappers,
asking for admissible commands and ``won``. Our side is ``ALFWorld-v0`` itself (protocol
parsing, progress channel, state key and expert action included). Both play identical
command scripts (the expert's moves, then seeded random admissible commands) on identical
generated games, in one process; the transcripts (observations and admissible commands) are
compared for equality.

Usage: python bench/alfworld_speed.py [--games 4] [--steps 30]
Target: >= 3x the stock engine's steps/s, resets after the first under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from environments.alfworld.engine import clear_engine_caches

# one game per room type and a kitchen task of each treatment: the slow and the fast scenes
TASK_TYPES = ["pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
              "pick_clean_then_place_in_recep", "look_at_obj_in_light",
              "pick_two_obj_and_place", "pick_and_place_simple"]


def command_script(env, task_id: str, steps: int, seed: int) -> list[str]:
    """The expert's moves to the win, then seeded random admissible commands."""
    rng = np.random.default_rng(seed)
    _, info = env.reset(options={"task_id": task_id})
    commands: list[str] = []
    done = False
    while len(commands) < steps:
        if not done and info["expert_action"]:
            command = env.protocol.parse(info["expert_action"]).value
        else:
            options = info["admissible_actions"]
            command = options[int(rng.integers(len(options)))]
        commands.append(command)
        if not done:
            _, _, terminated, _, info = env.step(f"<action>{command}</action>")
            done = terminated
    return commands


def run_stock(gamefile: str, commands: list[str], resets: int) -> dict:
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    env_id = textworld.gym.register_games([gamefile], infos, batch_size=1, asynchronous=False,
                                          max_episode_steps=10_000,
                                          wrappers=[AlfredDemangler(), AlfredInfos])
    env = textworld.gym.make(env_id)
    reset_times = []
    for _ in range(resets):
        started = time.perf_counter()
        obs, info = env.reset()
        reset_times.append(time.perf_counter() - started)
    transcript = [(obs[0], info["admissible_commands"][0])]
    started = time.perf_counter()
    for command in commands:
        obs, _, dones, info = env.step([command])
        transcript.append((obs[0], info["admissible_commands"][0]))
        if dones[0]:
            break
    elapsed = time.perf_counter() - started
    env.close()
    return {"resets": reset_times, "steps_per_s": (len(transcript) - 1) / elapsed,
            "transcript": transcript}


def run_ours(task_id: str, commands: list[str], resets: int) -> dict:
    clear_engine_caches()  # the first reset pays the translation, as the stock one does
    env = agentgym.make("ALFWorld-v0", source="generated", max_turns=None)
    reset_times = []
    for _ in range(resets):
        started = time.perf_counter()
        obs, info = env.reset(options={"task_id": task_id})
        reset_times.append(time.perf_counter() - started)
    transcript = [(obs, info["admissible_actions"])]
    started = time.perf_counter()
    for command in commands:
        obs, _, terminated, _, info = env.step(f"<action>{command}</action>")
        transcript.append((obs, info["admissible_actions"]))
        if terminated:
            break
    elapsed = time.perf_counter() - started
    env.close()
    return {"resets": reset_times, "steps_per_s": (len(transcript) - 1) / elapsed,
            "transcript": transcript}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--resets", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=150)
    rows = []
    for n, task_type in enumerate(track(TASK_TYPES[:args.games], description="games")):
        env = agentgym.make("ALFWorld-v0", source="generated", task_types=[task_type],
                            max_turns=None)
        task_id = env.task_ids("test", 1)[0]
        env.reset(options={"task_id": task_id})
        gamefile = str(env.task.source.folder / "game.tw-pddl")  # the cached game file
        commands = command_script(env, task_id, args.steps, seed=n)
        env.close()
        stock = run_stock(gamefile, commands, args.resets)
        ours = run_ours(task_id, commands, args.resets)
        rows.append((task_type, task_id.split("-")[1].split("/")[0], stock, ours,
                     stock["transcript"] == ours["transcript"]))
    table = Table(title="ALFWorld-v0 vs the stock alfworld engine (same games, same commands)")
    for column in ("task", "scene", "1st reset s\nstock", "1st reset s\nours",
                   "later resets s\nstock", "later resets s\nours", "steps/s\nstock",
                   "steps/s\nours", "steps/s\nratio", "transcripts\nequal"):
        table.add_column(column, justify="right")
    for task_type, scene, stock, ours, equal in rows:
        table.add_row(task_type, scene, f"{stock['resets'][0]:.2f}", f"{ours['resets'][0]:.2f}",
                      f"{statistics.median(stock['resets'][1:]):.2f}",
                      f"{statistics.median(ours['resets'][1:]):.3f}",
                      f"{stock['steps_per_s']:.1f}", f"{ours['steps_per_s']:.1f}",
                      f"{ours['steps_per_s'] / stock['steps_per_s']:.1f}x", str(equal))
    console.print(table)
    speedups = [o["steps_per_s"] / s["steps_per_s"] for _, _, s, o, _ in rows]
    later = max(r for _, _, _, o, _ in rows for r in o["resets"][1:])
    console.print(f"steps/s speed-up: median {statistics.median(speedups):.1f}x "
                  f"(min {min(speedups):.1f}x; target >= 3x); slowest later reset "
                  f"{later:.3f} s (target < 0.5 s); all transcripts equal: "
                  f"{all(r[4] for r in rows)}")


if __name__ == "__main__":
    main()
