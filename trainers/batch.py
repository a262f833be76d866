"""A batch for credit assignment: episodes, their per-turn rewards, grouped by ``group_id``.

Every estimator reads a :class:`Batch` and returns one advantage array per episode (one value
per turn), in the batch's episode order. Building the batch is where bad input is caught:
an empty group, a group that mixes tasks, a NaN reward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agentgym.errors import AgentGymError
from agentgym.records import Episode


class BatchError(AgentGymError, ValueError):
    """Episodes or rewards that cannot be turned into advantages."""


@dataclass(frozen=True)
class Batch:
    """Episodes with per-turn rewards, grouped.

    Attributes:
        episodes: The episodes, in order.
        rewards: ``rewards[i]`` holds episode ``i``'s per-turn rewards, shape ``(T_i,)``.
        groups: Lists of episode indices, one list per ``group_id`` (first-seen order).
    """

    episodes: tuple[Episode, ...]
    rewards: tuple[np.ndarray, ...]
    groups: tuple[tuple[int, ...], ...]

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Episode],
        rewards: Callable[[Episode], list[float]] | Sequence[Sequence[float]] | None = None,
    ) -> Batch:
        """Group episodes by ``group_id`` and attach their per-turn rewards.

        Args:
            episodes: Episodes; each must have a ``group_id`` (a group of one is allowed).
            rewards: A reward spec (any ``Episode -> list[float]``), or the per-turn rewards
                themselves; by default the env's own per-turn ``reward``.

        Raises:
            BatchError: for no episodes, a missing group id, a group mixing task ids,
                rewards of the wrong length, or a non-finite reward.
        """
        if not episodes:
            raise BatchError("The batch is empty: pass at least one episode.")
        per_turn = [_rewards_of(e, i, rewards) for i, e in enumerate(episodes)]
        return cls(tuple(episodes), tuple(per_turn), group_indices(episodes))

    def returns(self) -> np.ndarray:
        """Each episode's total reward ``R_i = sum_t r_{i,t}``, shape ``(N,)``."""
        return np.array([r.sum() for r in self.rewards], dtype=np.float64)

    def group_numbers(self) -> np.ndarray:
        """Each episode's group, numbered as in ``groups``, shape ``(N,)``."""
        number = np.empty(len(self.episodes), np.int64)
        for index, members in enumerate(self.groups):
            number[list(members)] = index
        return number


def _rewards_of(episode: Episode, index: int, rewards) -> np.ndarray:
    if rewards is None:
        values = [t.reward for t in episode.turns]
    elif callable(rewards):
        values = rewards(episode)
    else:
        values = list(rewards[index])
    if len(values) != episode.num_turns:
        raise BatchError(
            f"Episode {index} ({episode.episode_id}) has {episode.num_turns} turns but "
            f"{len(values)} rewards; give one reward per turn."
        )
    bad = [t for t, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise BatchError(
            f"Episode {index} ({episode.episode_id}) has non-finite rewards on turn(s) {bad} "
            f"({[values[t] for t in bad]}); fix the reward spec or drop the episode."
        )
    return np.asarray(values, dtype=np.float64)


def group_indices(episodes: Sequence[Episode]) -> tuple[tuple[int, ...], ...]:
    """Indices of the episodes of each ``group_id``, checking each group is one task."""
    groups: dict[str, list[int]] = {}
    for i, episode in enumerate(episodes):
        if episode.group_id is None:
            raise BatchError(
                f"Episode {i} ({episode.episode_id}) has no group_id; group-based estimators "
                "need the episodes of one task sampled together (rollout(group_size=G))."
            )
        groups.setdefault(episode.group_id, []).append(i)
    for group_id, members in groups.items():
        tasks = sorted({episodes[i].task_id for i in members})
        if len(tasks) > 1:
            raise BatchError(
                f"Group {group_id!r} mixes tasks {tasks}; a group is the episodes of one task."
            )
    return tuple(tuple(m) for m in groups.values())
