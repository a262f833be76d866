"""The rollout loop: a policy plays an env; every episode becomes an :class:`Episode` record.

:func:`rollout` runs N tasks x G episodes per task (a *group*: same task, different sampling
seeds, one ``group_id``), which is what GRPO, RLOO and SALT consume. A failing policy or env
call does not stop the run: the episode is recorded with a typed ``error`` and marked
truncated (a bad rollout is data, not a crash).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentgym.core import AgentEnv
from agentgym.errors import LifecycleError
from agentgym.policies import Conversation, SeededPolicy, describe
from agentgym.records import Episode, Outcome, Turn
from agentgym.store import EpisodeWriter

if TYPE_CHECKING:
    from agentgym.pool import Pool

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


class EpisodeRecorder:
    """Builds one :class:`Episode` from reset and step results, and the policy's conversation.

    Both rollout loops (one env in this process, or many in a :class:`~agentgym.pool.Pool`)
    drive episodes through it, so they record them identically.
    """

    def __init__(self, env_id: str, system_prompt: str, encode: Callable[[str], str],
                 policy: Callable[[Conversation], str], *, seed: int | None,
                 group_id: str | None, history_window: int | None) -> None:
        self.encode, self.policy, self.history_window = encode, policy, history_window
        self.episode = Episode(env_id=env_id, task_id="", seed=seed, group_id=group_id,
                               system_prompt=system_prompt, metadata=describe(policy))
        self.messages = [{"role": "system", "content": system_prompt}]
        self.observation, self.info, self.done = "", {}, False

    def begin(self, observation: str, info: dict[str, Any]) -> None:
        """Record what ``reset`` returned."""
        self.episode.task_id = str(info.get("task_id"))
        self.episode.instruction = info.get("instruction", "")
        self.messages.append({"role": "user", "content": first_user_message(
            self.episode.instruction, observation)})
        self.observation, self.info = observation, info

    def conversation(self) -> Conversation:
        """What the policy sees now."""
        return Conversation(windowed(self.messages, self.history_window), self.info,
                            self.encode, len(self.episode.turns))

    def act(self) -> tuple[str, float] | None:
        """Ask the policy for the next action: ``(action, seconds)``, or ``None`` if it failed."""
        conversation = self.conversation()
        started = time.perf_counter()
        try:
            action = self.policy(conversation)
        except Exception as exc:  # a policy bug or a dead server is recorded, not raised
            self.fail("PolicyError", f"{type(exc).__name__}: {exc}")
            return None
        return action, time.perf_counter() - started

    def record(self, action: Any, step: tuple, policy_seconds: float, env_seconds: float) -> None:
        """Record one ``step`` result."""
        next_obs, reward, terminated, truncated, step_info = step
        text = action if isinstance(action, str) else str(action)
        self.episode.turns.append(Turn(
            index=len(self.episode.turns), observation=self.observation, action=text,
            parsed_action=step_info.get("parsed_action"),
            action_valid=bool(step_info.get("action_valid", True)),
            thought=step_info.get("thought"), reward=float(reward),
            reward_channels=dict(step_info.get("reward_channels", {})),
            state_key=self.info.get("state_key"), next_state_key=step_info.get("state_key"),
            info={k: self.info.get(k) for k in TURN_INFO_KEYS if k in self.info},
            policy_seconds=policy_seconds, env_seconds=env_seconds,
        ))
        self.messages += [{"role": "assistant", "content": text},
                          {"role": "user", "content": next_obs}]
        self.observation, self.info = next_obs, step_info
        self.episode.terminated, self.episode.truncated = bool(terminated), bool(truncated)
        self.done = bool(terminated or truncated)

    def fail(self, kind: str, message: str) -> None:
        """End the episode as a failed rollout (a bad rollout is data, not a crash)."""
        self.episode.truncated, self.done = True, True
        self.episode.error = {"type": kind, "message": message}

    def finish(self) -> Episode:
        """The finished episode record."""
        episode = self.episode
        episode.final_observation = self.observation
        info = self.info if episode.error is None else {}
        if info.get("reference"):
            episode.metadata["reference"] = info["reference"]
        episode.outcome = Outcome(
            success=bool(info.get("success", False)),
            total_reward=float(sum(t.reward for t in episode.turns)),
            channels=dict(info.get("outcome_channels", {})),
        )
        return episode


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
    recorder = EpisodeRecorder(getattr(env, "env_id", type(env).__name__), env.system_prompt(),
                               env.protocol.encode, policy, seed=seed, group_id=group_id,
                               history_window=history_window)
    recorder.begin(*env.reset(seed=seed, options=options))
    while not recorder.done:
        acted = recorder.act()
        if acted is None:
            break
        action, policy_seconds = acted
        started = time.perf_counter()
        try:
            step = env.step(action)
        except LifecycleError:
            raise
        except Exception as exc:  # an engine crash is recorded, not raised
            recorder.fail("EnvError", f"{type(exc).__name__}: {exc}")
            break
        recorder.record(action, step, policy_seconds, time.perf_counter() - started)
    return recorder.finish()


def sampling_seed(seed: int, task_index: int, member: int) -> int:
    """A distinct, reproducible policy seed for each episode of each group."""
    return int(np.random.SeedSequence([seed, task_index, member]).generate_state(1)[0])


def rollout(
    env: AgentEnv | str | Pool | Sequence[AgentEnv],
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
        env: An env, a registered id to ``make`` (closed at the end if made here), a list
            of envs (with a batching policy such as ``TransformersPolicy``: one
            ``generate`` call serves every episode waiting for an action), or a
            :class:`~agentgym.pool.Pool` (``EnvPool``, ``RayEnvPool``): then every env of the
            pool plays an episode at once, and the policy answers each as its step comes
            back while the others step.
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
        The episodes, in task order, then group-member order.
    """
    from agentgym.pool import Pool
    from agentgym.registry import make

    jobs = [_Job(index, member, task_seed, options, f"{seed}:{index}",
                 sampling_seed(seed, index, member))
            for index, (task_seed, options) in enumerate(_plan(tasks, seed, split))
            for member in range(group_size)]
    own_env = isinstance(env, str)
    the_env = make(env, **(env_kwargs or {})) if isinstance(env, str) else env
    writer = EpisodeWriter(out) if out is not None else None
    done: dict[tuple[int, int], Episode] = {}
    first = the_env[0] if isinstance(the_env, (list, tuple)) else the_env
    name = getattr(first, "env_id", "pool")
    try:
        with _progress_bar(progress, len(jobs), name) as advance:
            def emit(job: _Job, episode: Episode) -> None:
                episode.metadata.update(metadata or {})
                done[(job.index, job.member)] = episode
                if writer:
                    writer.write(episode)
                advance(episode)

            if isinstance(the_env, Pool):
                _run_pooled(the_env, policy, jobs, history_window, emit)
            elif isinstance(the_env, (list, tuple)):
                _run_batched(list(the_env), policy, jobs, history_window, emit)
            else:
                for job in jobs:
                    episode = run_episode(the_env, _episode_policy(policy, job.sampling_seed),
                                          seed=job.task_seed, options=job.options,
                                          history_window=history_window,
                                          group_id=f"{name}:{job.group}")
                    emit(job, episode)
    finally:
        if writer:
            writer.close()
        if own_env:
            the_env.close()
    return [done[key] for key in sorted(done)]


@dataclass(frozen=True)
class _Job:
    index: int
    member: int
    task_seed: int
    options: dict[str, Any]
    group: str
    sampling_seed: int


def _episode_policy(policy: Callable[[Conversation], str], seed: int
                    ) -> Callable[[Conversation], str]:
    """The policy for one episode: a reseeded copy, so interleaved episodes stay reproducible."""
    if not isinstance(policy, SeededPolicy):
        return policy
    own = copy.copy(policy)
    own.reseed(seed)
    return own


def _run_batched(envs: list[AgentEnv], policy: Any, jobs: list[_Job],
                 history_window: int | None, emit: Callable[[_Job, Episode], None]) -> None:
    """One episode per env at once; each ``policy.generate`` call serves every waiting one."""
    queue = list(reversed(jobs))
    active: dict[int, tuple[_Job, EpisodeRecorder]] = {}

    def start(slot: int) -> None:
        if queue:
            job, env = queue.pop(), envs[slot]
            recorder = EpisodeRecorder(env.env_id, env.system_prompt(), env.protocol.encode,
                                       policy, seed=job.task_seed,
                                       group_id=f"{env.env_id}:{job.group}",
                                       history_window=history_window)
            recorder.begin(*env.reset(seed=job.task_seed, options=job.options))
            active[slot] = (job, recorder)

    for slot in range(len(envs)):
        start(slot)
    while active:
        slots = sorted(active)
        started = time.perf_counter()
        try:
            replies = policy.generate([active[s][1].conversation() for s in slots])
        except Exception as exc:  # a failed generation fails the episodes it served
            replies = None
            for slot in slots:
                active[slot][1].fail("PolicyError", f"{type(exc).__name__}: {exc}")
        share = (time.perf_counter() - started) / len(slots)
        for n, slot in enumerate(slots):
            job, recorder = active[slot]
            if replies is not None:
                action = replies[n].text
                stepped = time.perf_counter()
                recorder.record(action, envs[slot].step(action), share,
                                time.perf_counter() - stepped)
            if recorder.done:
                del active[slot]
                emit(job, recorder.finish())
                start(slot)


def _run_pooled(pool: Pool, policy: Callable[[Conversation], str], jobs: list[_Job],
                history_window: int | None, emit: Callable[[_Job, Episode], None]) -> None:
    """Every env of the pool plays an episode; the policy answers each step as it returns."""
    queue = list(reversed(jobs))
    env_ids = [pool.call(i, "env_id") for i in range(len(pool))]
    prompts = [pool.call(i, "system_prompt") for i in range(len(pool))]
    protocols = [pool.call(i, "protocol") for i in range(len(pool))]
    active: dict[int, tuple[_Job, EpisodeRecorder, Any, float]] = {}

    def start(slot: int) -> None:
        if queue:
            job = queue.pop()
            recorder = EpisodeRecorder(env_ids[slot], prompts[slot], protocols[slot].encode,
                                       _episode_policy(policy, job.sampling_seed),
                                       seed=job.task_seed, group_id=f"{env_ids[slot]}:{job.group}",
                                       history_window=history_window)
            active[slot] = (job, recorder, None, 0.0)
            pool.submit(slot, "reset", seed=job.task_seed, options=job.options)

    for slot in range(len(pool)):
        start(slot)
    while active:
        for result in pool.wait():
            job, recorder, action, policy_seconds = active[result.env]
            if not result.ok:
                recorder.fail("EnvError", result.error or "unknown")
            elif result.method == "reset":
                recorder.begin(*result.value)
            else:
                recorder.record(action, result.value, policy_seconds, result.env_seconds)
            acted = None if recorder.done else recorder.act()
            if acted is not None:  # generation here overlaps the other envs' steps
                active[result.env] = (job, recorder, *acted)
                pool.submit(result.env, "step", acted[0])
                continue
            del active[result.env]
            emit(job, recorder.finish())
            start(result.env)


def _plan(tasks: int | Sequence[str], seed: int, split: str | None) -> list[tuple[int, dict]]:
    base = {"split": split} if split else {}
    if isinstance(tasks, int):
        return [(seed + i, dict(base)) for i in range(tasks)]
    return [(seed + i, {**base, "task_id": task_id}) for i, task_id in enumerate(tasks)]


class _progress_bar:
    """A rich progress bar showing the running success rate, or nothing."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self.enabled, self.total, self.name = enabled, total, name
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
