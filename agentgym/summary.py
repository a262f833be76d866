"""Summaries of a batch of episodes: rates, returns, turns, and every channel's statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.records import Episode


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def channel_values(episodes: Sequence[Episode]) -> dict[str, list[float]]:
    """Per-episode values of every channel: ``turn/<name>`` (summed) and ``outcome/<name>``.

    An episode that lacks a channel contributes nothing to it.
    """
    values: dict[str, list[float]] = defaultdict(list)
    for episode in episodes:
        totals: dict[str, float] = defaultdict(float)
        for turn in episode.turns:
            for name, value in turn.reward_channels.items():
                totals[name] += value
        for name, value in totals.items():
            values[f"turn/{name}"].append(value)
        for name, value in episode.outcome.channels.items():
            values[f"outcome/{name}"].append(value)
    return dict(sorted(values.items()))


def rates(episodes: Sequence[Episode]) -> dict[str, float]:
    """Success, completion, modification and resolution rates.

    Completion: the episode ended by itself (a win, a loss, a submit), not by a limit or an
    error. Modification and resolution (the gated-reward paper's SWE rates): the means of the
    ``modified`` and ``resolved`` outcome channels, where recorded.
    """
    out = {
        "success_rate": _mean([float(e.outcome.success) for e in episodes]),
        "completion_rate": _mean([float(e.terminated and not e.error) for e in episodes]),
    }
    for channel, rate in (("modified", "modification_rate"), ("resolved", "resolution_rate")):
        values = [e.outcome.channels[channel] for e in episodes if channel in e.outcome.channels]
        if values:
            out[rate] = _mean(values)
    return out


def summarize(episodes: Sequence[Episode]) -> dict[str, float]:
    """Headline numbers of a batch of episodes.

    Returns:
        ``episodes``, the rates of :func:`rates`, ``mean_return``, ``mean_turns``,
        ``invalid_rate`` (share of turns whose action did not parse), ``errors`` (failed
        rollouts), and the mean of every channel of :func:`channel_values`.
    """
    turns = [t for e in episodes for t in e.turns]
    stats: dict[str, float] = {
        "episodes": len(episodes),
        **rates(episodes),
        "mean_return": _mean([e.outcome.total_reward for e in episodes]),
        "mean_turns": _mean([e.num_turns for e in episodes]),
        "invalid_rate": _mean([float(not t.action_valid) for t in turns]),
        "errors": sum(e.error is not None for e in episodes),
    }
    stats.update({name: _mean(v) for name, v in channel_values(episodes).items()})
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


def stats_table(columns: Mapping[str, Sequence[float]], title: str) -> Any:
    """A rich table of mean / min / max / count for each named column of numbers."""
    from rich.table import Table

    table = Table(title=title)
    for name in ("name", "mean", "min", "max", "n"):
        table.add_column(name, justify="left" if name == "name" else "right")
    for name, values in columns.items():
        table.add_row(name, f"{_mean(values):.4g}", f"{min(values):.4g}", f"{max(values):.4g}",
                      str(len(values)))
    return table


def _fmt(row: str, value: float | None) -> str:
    if value is None or value != value:  # missing or NaN
        return "-"
    if row in ("episodes", "errors"):
        return f"{int(value)}"
    if row.endswith("_rate"):
        return f"{value:.1%}"
    return f"{value:.3f}"
