"""Monte-Carlo state values from snapshots: what VinePPO's advantages are made of.

For each state ``s_t`` a recorded episode passed through, ``k`` continuations of a policy
from a snapshot of ``s_t`` estimate its value (VinePPO, Kazemnejad et al., 2024)::

    V^(s_t) = 1/k * sum_j sum_{u >= t} gamma^{u-t} r^{(j)}_u ,      V^(s_T) = 0 (the end)

The episode is walked again in the env (reset to its task and seed, its actions replayed),
so the values are data on the episode (``episode.metadata["mc_values"]``) and the
estimator that turns them into advantages (``trainers.Vine``) needs no env. Rewards are
the env's, or a reward spec's (``reward=``) applied to each continuation's record.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.core import AgentEnv
from agentgym.errors import AgentGymError
from agentgym.records import Episode
from agentgym.rollout import EpisodeRecorder

Policy = Callable[[Any], Any]
RewardFn = Callable[[Episode], Sequence[float]]


@dataclass
class MonteCarloValues:
    """An episode's state values and what estimating them cost.

    Attributes:
        values: ``V^(s_0) .. V^(s_T)``, one more than the episode's turns (the last is 0).
        env_steps: Steps taken in the env (the walk and every continuation).
        policy_calls: Actions the policy was asked for.
    """

    values: list[float]
    env_steps: int
    policy_calls: int


def monte_carlo_values(env: AgentEnv, policy: Policy, episode: Episode, k: int = 8,
                       gamma: float = 1.0, reward: RewardFn | None = None,
                       max_turns: int | None = None,
                       known: dict[tuple[Any, int], float] | None = None) -> MonteCarloValues:
    """The value of every state ``episode`` passed through, from ``k`` continuations each.

    Args:
        env: An env of the episode's id and kwargs (it is reset here).
        policy: Plays the continuations (``Conversation -> action``), e.g. the current
            policy (VinePPO) or a prover (PAV).
        episode: A recorded episode with its ``task_id`` and ``seed``.
        k: Continuations per state.
        gamma: Discount of the continuations' rewards.
        reward: A reward spec (``Episode -> per-turn rewards``); default: the env's rewards.
        max_turns: Stop a continuation after this many turns in all (default: the env's).
        known: Values already estimated, by ``(state_key, turn)``; new ones are added. Only
            for a policy whose actions depend on the state alone (not on the history), and
            the same policy, rewards and ``k`` throughout.
    """
    if k < 1:
        raise AgentGymError(f"k (continuations per state) must be >= 1, got {k}.")
    recorder = _recorder(env, episode)
    observation, info = env.reset(seed=episode.seed, options={"task_id": episode.task_id})
    recorder.begin(observation, info)
    cost = {"env_steps": 0, "policy_calls": 0}
    values = []
    for turn in episode.turns:
        key = (recorder.info.get("state_key"), recorder.turns)
        if known is not None and key in known:
            values.append(known[key])
        else:
            here = env.snapshot()
            returns = []
            for _ in range(k):
                env.restore(here)
                returns.append(_continue(env, policy, recorder.fork(), gamma, reward,
                                         max_turns, cost))
            values.append(statistics.fmean(returns))
            if known is not None:
                known[key] = values[-1]
            env.restore(here)
        recorder.record(turn.action, env.step(turn.action), 0.0, 0.0)
        cost["env_steps"] += 1
    return MonteCarloValues(values + [0.0], **cost)


def attach_mc_values(env: AgentEnv, policy: Policy, episodes: Sequence[Episode], k: int = 8,
                     gamma: float = 1.0, reward: RewardFn | None = None) -> dict[str, int]:
    """Record each episode's :func:`monte_carlo_values` in its metadata; the total cost.

    Sets ``metadata["mc_values"]`` (and ``"mc_cost"``), which ``trainers.Vine`` reads.
    """
    def attach(episode: Episode, estimate: MonteCarloValues) -> None:
        episode.metadata["mc_values"] = estimate.values

    return _estimate_each(env, policy, episodes, k, gamma, reward, "mc", attach)


def attach_mc_progress(env: AgentEnv, prover: Policy, episodes: Sequence[Episode],
                       k: int = 8, channel: str = "mc_progress") -> dict[str, int]:
    """Record each step's progress under ``prover`` as a turn reward channel (PAV).

    "Rewarding Progress" (Setlur et al., 2024): a step's reward is its advantage under a
    prover policy, ``r_t + V^mu(s_{t+1}) - V^mu(s_t)``, with the values from ``k``
    continuations of the prover (e.g. ``NoisyExpertPolicy(0.2)``). Any reward spec can then
    weigh ``turn.reward_channels[channel]``. Returns the total cost.
    """
    def attach(episode: Episode, estimate: MonteCarloValues) -> None:
        values = estimate.values
        for t, turn in enumerate(episode.turns):
            turn.reward_channels[channel] = turn.reward + values[t + 1] - values[t]

    return _estimate_each(env, prover, episodes, k, 1.0, None, channel, attach)


def _estimate_each(env: AgentEnv, policy: Policy, episodes: Sequence[Episode], k: int,
                   gamma: float, reward: RewardFn | None, name: str,
                   attach: Callable[[Episode, MonteCarloValues], None]) -> dict[str, int]:
    """Estimate every episode's values, ``attach`` them, log ``metadata[name + "_cost"]``."""
    total = {"env_steps": 0, "policy_calls": 0}
    for episode in episodes:
        estimate = monte_carlo_values(env, policy, episode, k, gamma, reward)
        attach(episode, estimate)
        episode.metadata[f"{name}_cost"] = {"k": k, "gamma": gamma,
                                            "env_steps": estimate.env_steps,
                                            "policy_calls": estimate.policy_calls}
        total["env_steps"] += estimate.env_steps
        total["policy_calls"] += estimate.policy_calls
    return total


def _recorder(env: AgentEnv, episode: Episode) -> EpisodeRecorder:
    return EpisodeRecorder(env.env_id, env.system_prompt(), env.protocol.encode,
                           seed=episode.seed, group_id=episode.group_id,
                           history_window=episode.history_window, metadata={})


def _continue(env: AgentEnv, policy: Policy, recorder: EpisodeRecorder, gamma: float,
              reward: RewardFn | None, max_turns: int | None, cost: dict[str, int]) -> float:
    """Play ``policy`` on from the recorder's state; the discounted return from there."""
    start = recorder.turns
    while not recorder.done and (max_turns is None or recorder.turns < max_turns):
        reply = policy(recorder.conversation())
        if getattr(reply, "tool_calls", None):
            raise AgentGymError("Monte-Carlo values play text replies; this policy answered "
                                "with native tool calls, which continuations do not run yet.")
        action = str(getattr(reply, "text", reply))  # a model's Reply, or plain text
        recorder.record(action, env.step(action), 0.0, 0.0)
        cost["env_steps"] += 1
        cost["policy_calls"] += 1
    played = recorder.finish()
    rewards = list(reward(played)) if reward else [t.reward for t in played.turns]
    return sum(gamma ** u * r for u, r in enumerate(rewards[start:]))
