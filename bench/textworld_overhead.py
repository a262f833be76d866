"""Steps/s of TextWorld-v0 against the raw TextWorld engine, same games, same commands.

Both sides play identical command sequences (the expert's walkthrough and seeded random
admissible commands) on identical game files, in one process, interleaved round by round so
that machine noise hits both alike. The raw side asks TextWorld for the same game-state
fields (admissible commands, policy commands, facts, score, won/lost) that TextWorld-v0 needs
for its info dict, so the ratio measures what agentgym adds: protocol parsing, text
cleaning, the state fingerprint and the info dict. A second raw row asks for nothing extra,
to show what those engine fields cost by themselves.

Usage: python bench/textworld_overhead.py [--games 4] [--rounds 5] [--steps 40]
Target: TextWorld-v0 at >= 0.95 of raw speed (same fields).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

import agentgym
from environments.textworld.engine import request_infos, start_engine
from environments.textworld.games import PRESETS, ensure_game, game_seed


def command_script(path: Path, steps: int, seed: int) -> list[str]:
    """Expert moves to the end, then seeded random admissible commands (resetting on end)."""
    rng = np.random.default_rng(seed)
    commands: list[str] = []
    with agentgym.make("TextWorld-v0", games=[str(path)], max_turns=None) as env:
        _, info = env.reset(seed=0)
        expert = True
        while len(commands) < steps:
            options = info["admissible_actions"]
            command = (env.protocol.parse(info["expert_action"]).value
                       if expert and info["expert_action"] else
                       options[int(rng.integers(len(options)))])
            commands.append(command)
            _, _, terminated, truncated, info = env.step(f"<action>{command}</action>")
            if terminated or truncated:
                commands.append("<reset>")
                _, info = env.reset(seed=0)
                expert = False
    return commands


def run_raw(path: Path, commands: list[str], infos) -> float:
    engine = start_engine(path, infos)
    started = time.perf_counter()
    engine.reset()
    for command in commands:
        if command == "<reset>":
            engine.reset()
        else:
            engine.step(command)
    elapsed = time.perf_counter() - started
    engine.close()
    return elapsed


def run_agentgym(path: Path, commands: list[str]) -> float:
    env = agentgym.make("TextWorld-v0", games=[str(path)], max_turns=None)
    env.reset(seed=0)  # start the engine outside the timing, as run_raw does
    started = time.perf_counter()
    env.reset(seed=0)
    for command in commands:
        if command == "<reset>":
            env.reset(seed=0)
        else:
            env.step(f"<action>{command}</action>")
    elapsed = time.perf_counter() - started
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    import textworld

    presets = ["easy", "medium"]
    games = [ensure_game(PRESETS[presets[i % 2]], game_seed("test", i)) for i in range(args.games)]
    scripts = [command_script(g, args.steps, seed=i) for i, g in enumerate(games)]
    steps = sum(sum(c != "<reset>" for c in s) for s in scripts)
    minimal = textworld.EnvInfos(score=True)
    times: dict[str, list[float]] = {"raw": [], "agentgym": [], "raw_minimal": []}
    for _ in track(range(args.rounds), description="timing rounds"):
        for game, script in zip(games, scripts):
            times["raw"].append(run_raw(game, script, request_infos()))
            times["agentgym"].append(run_agentgym(game, script))
            times["raw_minimal"].append(run_raw(game, script, minimal))
    per_round = {k: [sum(v[i:i + len(games)]) for i in range(0, len(v), len(games))]
                 for k, v in times.items()}
    rate = {k: steps / statistics.median(v) for k, v in per_round.items()}
    table = Table(title=f"TextWorld steps/s: {len(games)} games, {steps} steps, "
                        f"{args.rounds} rounds (median)")
    table.add_column("runner")
    table.add_column("steps/s", justify="right")
    table.add_column("ratio to raw (same fields)", justify="right")
    for name, label in [("raw", "raw textworld, same fields"), ("agentgym", "TextWorld-v0"),
                        ("raw_minimal", "raw textworld, score only")]:
        table.add_row(label, f"{rate[name]:.1f}", f"{rate[name] / rate['raw']:.3f}")
    Console().print(table)
    ratio = rate["agentgym"] / rate["raw"]
    verdict = "met" if ratio >= 0.95 else "NOT met"
    print(f"RATIO agentgym/raw = {ratio:.3f} (target >= 0.95: {verdict})")


if __name__ == "__main__":
    main()
