"""Rich rendering of recorded episodes, shared by ``agentgym replay --print`` and the viewer.

Observations are shown by their env family's renderer, which the family registers through
its :class:`~agentgym.registry.EnvSpec` (Search: retrieved documents one line each with the
gold answer highlighted; WebShop: the page one element per line with the chosen options
marked); tool calls show shell commands with their exit codes and file edits as diffs.
Everything else is shown as text.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from agentgym.records import Episode, Turn

THOUGHT_PREVIEW = 60


def channels_text(channels: dict[str, float]) -> str:
    """``name=+1  other=+0.5``."""
    return "  ".join(f"{k}={v:+.3g}" for k, v in channels.items()) or "-"


def advantage_style(value: float) -> str:
    """Green for positive, red for negative; bolder the larger it is."""
    colour = "green" if value > 0 else "red" if value < 0 else "white"
    return f"bold {colour}" if abs(value) >= 0.5 else colour


# ---------------------------------------------------------------- observations
def observation_renderable(episode: Episode, text: str) -> Any:
    """The observation, rendered by its env family's renderer (``EnvSpec.renderer``) or as text.

    Episodes of an env that is not registered here, or whose renderer fails to import, are
    shown as plain text: a replay never fails for want of a pretty view.
    """
    from rich.text import Text

    render = _renderer(episode.env_id)
    return render(text, episode.metadata.get("reference", {})) if render else Text(text)


@functools.cache
def _renderer(env_id: str) -> Callable[[str, dict[str, Any]], Any] | None:
    from agentgym.errors import AgentGymError
    from agentgym.registry import spec

    served = env_id.removeprefix("remote:").rpartition("/")[2]  # remote:http://h:p/<id>
    try:
        return spec(served).load_renderer()
    except (AgentGymError, ImportError, AttributeError):
        return None


# ---------------------------------------------------------------- actions
def _tool_call(turn: Turn) -> dict[str, Any] | None:
    try:
        call = json.loads(turn.parsed_action or "")
    except (json.JSONDecodeError, TypeError):
        return None
    return call if isinstance(call, dict) and "name" in call else None


def native_call(turn: Turn, episode: Episode | None) -> dict[str, Any] | None:
    """The structured tool call a turn ran (native tool calling), from the reply that made it."""
    if turn.tool_call_id is None:
        return None
    replies = [turn] + ([t for t in reversed(episode.turns[:turn.index])]
                        if episode is not None else [])
    for reply in replies:
        for call in reply.tool_calls or []:
            if call.get("id") == turn.tool_call_id:
                return call
    return None


def action_renderable(turn: Turn, result: str = "", native: dict[str, Any] | None = None) -> Any:
    """The action: a shell command with its exit code, a diff for an edit, or the text.

    ``result`` is what the env answered (the next observation), where exit codes are read;
    ``native`` is the structured tool call the turn ran, when the model called a tool.
    """
    from rich.console import Group
    from rich.text import Text

    shown = _action_body(turn, result, native)
    if native is None:
        return shown
    line = Text(f"tool call {native['name']} (id {turn.tool_call_id})", style="dim")
    if turn.action.strip():
        line.append(f"   with text: {turn.action.strip()[:200]}")
    return Group(line, shown)


def _action_body(turn: Turn, result: str, native: dict[str, Any] | None) -> Any:
    from rich.syntax import Syntax
    from rich.text import Text

    if not turn.action_valid:
        written = json.dumps(native, ensure_ascii=False) if native else turn.action
        return Text(f"> (invalid) {written[:300]}", style="bold red")
    call = _tool_call(turn)
    args = (call or {}).get("arguments", {})
    if call and call["name"] == "bash":
        code = re.search(r"exit code:? (-?\d+)", result, re.IGNORECASE)
        suffix = f"   (exit {code.group(1)})" if code else ""
        return Text(f"$ {args.get('command', '')}{suffix}", style="bold green")
    if call and call["name"] in ("str_replace", "create"):
        old = args.get("old", "") if call["name"] == "str_replace" else ""
        new = args.get("new", args.get("content", ""))
        diff = "\n".join(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                              f"a/{args.get('path', '')}",
                                              f"b/{args.get('path', '')}", lineterm=""))
        return Syntax(diff or "(no change)", "diff", theme="ansi_dark")
    return Text(f"> {turn.parsed_action}", style="bold green")


def render_turn(turn: Turn, episode: Episode | None = None, show_thought: bool = True) -> Any:
    """One turn as a rich panel: observation, thought, action, channels, advantage."""
    result = ""
    if episode is not None and episode.turns:
        later = [t.observation for t in episode.turns[turn.index + 1:turn.index + 2]]
        result = later[0] if later else episode.final_observation
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    episode = episode or Episode(env_id="", task_id="")
    parts: list[Any] = [observation_renderable(episode, turn.observation)]
    if turn.thought:
        thought = turn.thought if show_thought else (
            turn.thought[:THOUGHT_PREVIEW] + ("…" if len(turn.thought) > THOUGHT_PREVIEW else ""))
        parts.append(Text(f"think: {thought}", style="dim italic"))
    parts.append(action_renderable(turn, result, native_call(turn, episode)))
    footer = Text(f"reward {turn.reward:+.3g}   {channels_text(turn.reward_channels)}")
    if turn.advantage is not None:
        footer.append(f"   advantage {turn.advantage:+.3f}", style=advantage_style(turn.advantage))
    border = "red" if not turn.action_valid else "blue"
    return Panel(Group(*parts), title=f"turn {turn.index}", subtitle=footer,
                 title_align="left", subtitle_align="right", border_style=border)


def render_header(episode: Episode) -> Any:
    """The episode's one-line header and its task."""
    from rich.console import Group
    from rich.text import Text

    verdict = "[green]success[/]" if episode.outcome.success else "[red]failure[/]"
    head = Text.from_markup(
        f"[bold]{episode.env_id}[/]  task [cyan]{episode.task_id}[/]  group "
        f"{episode.group_id}  seed {episode.seed}  {verdict}  return "
        f"{episode.outcome.total_reward:+.3g}  turns {episode.num_turns}")
    return Group(head, Text(f"Task: {episode.instruction}"))


def render_ending(episode: Episode) -> Any:
    """The final observation and the outcome."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    ending = "terminated" if episode.terminated else "truncated" if episode.truncated else "open"
    parts: list[Any] = [
        Panel(observation_renderable(episode, episode.final_observation),
              title="final observation", title_align="left"),
        Text(f"{ending}; outcome {channels_text(episode.outcome.channels)}"),
    ]
    if episode.error:
        parts.append(Text(f"error {episode.error['type']}: {episode.error['message']}",
                          style="bold red"))
    return Group(*parts)


def render_episode(episode: Episode, turn: int | None = None) -> Any:
    """A whole episode (or just turn ``turn``): header, turns, final observation, outcome."""
    from rich.console import Group

    if turn is not None:
        return Group(render_header(episode), render_turn(episode.turns[turn], episode))
    return Group(render_header(episode), *(render_turn(t, episode) for t in episode.turns),
                 render_ending(episode))


def episode_list(episodes: Iterable[Episode]) -> Any:
    """A table of episodes: env, task, group, success, return, turns."""
    from rich.table import Table

    table = Table(title="Episodes")
    for column in ("#", "env", "task", "group", "success", "return", "turns", "error"):
        table.add_column(column, overflow="fold")
    for number, ep in enumerate(episodes):
        table.add_row(str(number), ep.env_id, ep.task_id, str(ep.group_id),
                      "yes" if ep.outcome.success else "no", f"{ep.outcome.total_reward:+.3g}",
                      str(ep.num_turns), ep.error["type"] if ep.error else "")
    return table
