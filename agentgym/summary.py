"""Summaries of a batch of episodes: success rate, returns, turns, per-channel means."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agentgym.records import Episode


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarize(episodes: Sequence[Episode]) -> dict[str, float]:
    """Headline numbers of a batch of episodes.

    Returns:
        ``episodes``, ``success_rate``, ``mean_return``, ``mean_turns``, ``invalid_rate``
        (share of turns whose action did not parse), ``errors`` (failed rollouts), and the
        mean of every turn channel (summed per episode, ``turn/<name>``) and outcome channel
        (``outcome/<name>``).
    """
    turns = [t for e in episodes for t in e.turns]
    stats: dict[str, float] = {
        "episodes": len(episodes),
        "success_rate": _mean([float(e.outcome.success) for e in episodes]),
        "mean_return": _mean([e.outcome.total_reward for e in episodes]),
        "mean_turns": _mean([e.num_turns for e in episodes]),
        "invalid_rate": _mean([float(not t.action_valid) for t in turns]),
        "errors": sum(e.error is not None for e in episodes),
    }
    per_episode: dict[str, list[float]] = defaultdict(list)
    for episode in episodes:
        totals: dict[str, float] = defaultdict(float)
        for turn in episode.turns:
            for name, value in turn.reward_channels.items():
                totals[name] += value
        for name, value in totals.items():
            per_episode[f"turn/{name}"].append(value)
        for name, value in episode.outcome.channels.items():
            per_episode[f"outcome/{name}"].append(value)
    stats.update({name: _mean(values) for name, values in sorted(per_episode.items())})
    return stats


def summary_table(groups: dict[str, Sequence[Episode]], title: str = "Rollout summary") -> Any:
    """A rich table with one column per named batch (e.g. one per policy)."""
    from rich.table import Table

    stats = {name: summarize(eps) for name, eps in groups.items()}
    rows = list(dict.fromkeys(key for s in stats.values() for key in s))
    table = Table(title=title)
    table.add_column("metric")
    for name in stats:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row, *(_fmt(row, s.get(row)) for s in stats.values()))
    return table


def _fmt(row: str, value: float | None) -> str:
    if value is None or value != value:  # missing or NaN
        return "-"
    if row in ("episodes", "errors"):
        return f"{int(value)}"
    if row.endswith("_rate"):
        return f"{value:.1%}"
    return f"{value:.3f}"
