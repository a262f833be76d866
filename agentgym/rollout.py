"""The rollout loop: a policy plays an env; every episode becomes an :class:`Episode` record.

:func:`rollout` runs N tasks x G episodes per task (a *group*: same task, different sampling
seeds, one ``group_id``), which is what GRPO, RLOO and SALT consume. A failing policy or env
call does not stop the run: the episode is recorded with a typed ``error`` and marked
truncated (a bad rollout is data, not a crash).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.core import AgentEnv
from agentgym.errors import LifecycleError
from agentgym.policies import Conversation, SeededPolicy, describe
from agentgym.records import Episode, Outcome, Turn
from agentgym.store import EpisodeWriter

TURN_INFO_KEYS = ("admissible_actions", "expert_action")
"""The step-info keys copied onto each :class:`Turn` record."""


def first_user_message(instruction: str, observation: str) -> str:
    """The opening user message: the task, then the first observation."""
    if not instruction or instruction in observation:
        return observation
    return f"Task: {instruction}\n\n{observation}"


def windowed(messages: list[dict[str, str]], history_window: int | None) -> list[dict[str, str]]:
    """Keep the system prompt, the opening message, and the last ``history_window`` turns."""
    if history_window is None:
        return list(messages)
    head, rest = messages[:2], messages[2:]
    # rest alternates assistant/user, one pair per turn; keep the newest observation last
    keep = 2 * history_window
    return head + (rest[-keep:] if keep else [])


def run_episode(
    env: AgentEnv,
    policy: Callable[[Conversation], str],
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    history_window: int | None = None,
    group_id: str | None = None,
) -> Episode:
    """Play one episode and return its record.

    Args:
        env: The env (reset here).
        policy: Maps the conversation to the next action text.
        seed: The reset seed.
        options: Reset options (``task_id``, ``split``, ...).
        history_window: How many past turns the policy sees (``None``: all).
        group_id: Stored on the record.
    """
    observation, info = env.reset(seed=seed, options=options)
    messages = [
        {"role": "system", "content": env.system_prompt()},
        {"role": "user", "content": first_user_message(info.get("instruction", ""), observation)},
    ]
    episode = Episode(
        env_id=getattr(env, "env_id", type(env).__name__),
        task_id=str(info.get("task_id")),
        seed=seed,
        group_id=group_id,
        instruction=info.get("instruction", ""),
        system_prompt=messages[0]["content"],
        metadata=describe(policy),
    )
    state_key = info.get("state_key")
    done = False
    while not done:
        conversation = Conversation(windowed(messages, history_window), info, env.protocol.encode,
                                    len(episode.turns))
        started = time.perf_counter()
        try:
            action = policy(conversation)
        except Exception as exc:  # a policy bug or a dead server is recorded, not raised
            return _failed(episode, observation, "PolicyError", exc)
        policy_seconds = time.perf_counter() - started
        try:
            next_obs, reward, terminated, truncated, step_info = env.step(action)
        except LifecycleError:
            raise
        except Exception as exc:  # an engine crash is recorded, not raised
            return _failed(episode, observation, "EnvError", exc)
        episode.turns.append(Turn(
            index=len(episode.turns),
            observation=observation,
            action=action if isinstance(action, str) else str(action),
            parsed_action=step_info.get("parsed_action"),
            action_valid=bool(step_info.get("action_valid", True)),
            thought=step_info.get("thought"),
            reward=float(reward),
            reward_channels=dict(step_info.get("reward_channels", {})),
            state_key=state_key,
            next_state_key=step_info.get("state_key"),
            info={k: info.get(k) for k in TURN_INFO_KEYS if k in info},
            policy_seconds=policy_seconds,
            env_seconds=time.perf_counter() - started - policy_seconds,
        ))
        messages += [{"role": "assistant", "content": action if isinstance(action, str)
                      else str(action)}, {"role": "user", "content": next_obs}]
        observation, info, state_key = next_obs, step_info, step_info.get("state_key")
        done = terminated or truncated
        episode.terminated, episode.truncated = bool(terminated), bool(truncated)
    episode.final_observation = observation
    episode.outcome = Outcome(
        success=bool(info.get("success", False)),
        total_reward=float(sum(t.reward for t in episode.turns)),
        channels=dict(info.get("outcome_channels", {})),
    )
    return episode


def _failed(episode: Episode, observation: str, kind: str, exc: BaseException) -> Episode:
    episode.final_observation = observation
    episode.truncated = True
    episode.error = {"type": kind, "message": f"{type(exc).__name__}: {exc}"}
    episode.outcome = Outcome(total_reward=float(sum(t.reward for t in episode.turns)))
    return episode


def sampling_seed(seed: int, task_index: int, member: int) -> int:
    """A distinct, reproducible policy seed for each episode of each group."""
    return int(np.random.SeedSequence([seed, task_index, member]).generate_state(1)[0])


def rollout(
    env: AgentEnv | str,
    policy: Callable[[Conversation], str],
    *,
    tasks: int | Sequence[str] = 1,
    group_size: int = 1,
    seed: int = 0,
    split: str | None = None,
    out: str | Path | None = None,
    history_window: int | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> list[Episode]:
    """Run ``policy`` on ``tasks`` x ``group_size`` episodes.

    Args:
        env: An env, or a registered id to ``make`` (closed at the end if made here).
        policy: Any ``Conversation -> str`` callable (see :mod:`agentgym.policies`).
        tasks: How many tasks (task ``i`` is reset with seed ``seed + i``), or task ids.
        group_size: Episodes per task (G); they share a ``group_id``.
        seed: Base seed for tasks and for the policy's per-episode sampling seeds.
        split: ``"train"`` or ``"test"`` (the env's default when ``None``).
        out: A JSONL file episodes are appended to as they finish.
        history_window: How many past turns the policy sees (``None``: all).
        progress: Show a progress bar.
        env_kwargs: Keyword arguments for ``make`` when ``env`` is an id.
        metadata: Added to every episode's metadata.

    Returns:
        The episodes, in order.
    """
    from agentgym.registry import make

    own_env = isinstance(env, str)
    the_env: AgentEnv = make(env, **(env_kwargs or {})) if isinstance(env, str) else env
    plan = _plan(tasks, seed, split)
    writer = EpisodeWriter(out) if out is not None else None
    episodes: list[Episode] = []
    try:
        with _progress_bar(progress, len(plan) * group_size, the_env) as advance:
            for index, (task_seed, options) in enumerate(plan):
                group_id = f"{getattr(the_env, 'env_id', 'env')}:{seed}:{index}"
                for member in range(group_size):
                    if isinstance(policy, SeededPolicy):
                        policy.reseed(sampling_seed(seed, index, member))
                    episode = run_episode(the_env, policy, seed=task_seed, options=options,
                                          history_window=history_window, group_id=group_id)
                    episode.metadata.update(metadata or {})
                    episodes.append(episode)
                    if writer:
                        writer.write(episode)
                    advance(episode)
    finally:
        if writer:
            writer.close()
        if own_env:
            the_env.close()
    return episodes


def _plan(tasks: int | Sequence[str], seed: int, split: str | None) -> list[tuple[int, dict]]:
    base = {"split": split} if split else {}
    if isinstance(tasks, int):
        return [(seed + i, dict(base)) for i in range(tasks)]
    return [(seed + i, {**base, "task_id": task_id}) for i, task_id in enumerate(tasks)]


class _progress_bar:
    """A rich progress bar showing the running success rate, or nothing."""

    def __init__(self, enabled: bool, total: int, env: AgentEnv) -> None:
        self.enabled, self.total, self.name = enabled, total, getattr(env, "env_id", "env")
        self.wins = self.done = 0

    def __enter__(self) -> Callable[[Episode], None]:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=self.total)
        return self.advance

    def advance(self, episode: Episode) -> None:
        self.done += 1
        self.wins += episode.outcome.success
        if self.enabled:
            self.bar.update(self.task, advance=1,
                            description=f"{self.name} success {self.wins / self.done:.0%}")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
