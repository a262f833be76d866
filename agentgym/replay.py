"""Plain rich rendering of recorded episodes (the interactive viewer builds on this)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentgym.records import Episode, Turn


def _channels(channels: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:+.3g}" for k, v in channels.items()) or "-"


def render_turn(turn: Turn) -> Any:
    """One turn as a rich panel: observation, thought, action and reward channels."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    parts: list[Any] = [Text(turn.observation, style="white")]
    if turn.thought:
        parts.append(Text(f"think: {turn.thought}", style="dim italic"))
    style = "bold green" if turn.action_valid else "bold red"
    action = turn.parsed_action if turn.action_valid else f"(invalid) {turn.action[:300]}"
    parts.append(Text(f"> {action}", style=style))
    footer = f"reward {turn.reward:+.3g}   {_channels(turn.reward_channels)}"
    if turn.advantage is not None:
        footer += f"   advantage {turn.advantage:+.3f}"
    return Panel(Group(*parts), title=f"turn {turn.index}", subtitle=footer,
                 title_align="left", subtitle_align="right")


def render_episode(episode: Episode) -> Any:
    """A whole episode: header, turns, final observation and outcome."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    verdict = "[green]success[/]" if episode.outcome.success else "[red]failure[/]"
    header = (
        f"[bold]{episode.env_id}[/]  task [cyan]{episode.task_id}[/]  group {episode.group_id}  "
        f"seed {episode.seed}  {verdict}  return {episode.outcome.total_reward:+.3g}  "
        f"turns {episode.num_turns}"
    )
    parts: list[Any] = [Text.from_markup(header), Text(f"Task: {episode.instruction}")]
    parts += [render_turn(turn) for turn in episode.turns]
    parts.append(Panel(Text(episode.final_observation), title="final observation",
                       title_align="left"))
    ending = "terminated" if episode.terminated else "truncated" if episode.truncated else "open"
    parts.append(Text(f"{ending}; outcome {_channels(episode.outcome.channels)}"))
    if episode.error:
        parts.append(Text(f"error {episode.error['type']}: {episode.error['message']}",
                          style="bold red"))
    return Group(*parts)


def episode_list(episodes: Iterable[Episode]) -> Any:
    """A table of episodes: env, task, group, success, return, turns."""
    from rich.table import Table

    table = Table(title="Episodes")
    for column in ("#", "env", "task", "group", "success", "return", "turns", "error"):
        table.add_column(column)
    for number, ep in enumerate(episodes):
        table.add_row(str(number), ep.env_id, ep.task_id, str(ep.group_id),
                      "yes" if ep.outcome.success else "no", f"{ep.outcome.total_reward:+.3g}",
                      str(ep.num_turns), ep.error["type"] if ep.error else "")
    return table
