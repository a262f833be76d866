"""Advantage estimators: GRPO, Dr.GRPO, RLOO, REINFORCE++ and turn-level GAE.

Each estimator is a small object whose ``__call__(batch)`` returns one array of per-turn
advantages per episode (the batch's order). The maths lives in the pure functions below,
written as the formulas in shared/reference/algorithms.md §8:

    GRPO       A_i = (R_i - mean_g R) / (std_g R + eps)      group of one: mean := 0, std := 1
    Dr.GRPO    A_i =  R_i - mean_g R                         (no std; group of one: A = R)
    RLOO       A_i =  R_i - mean_{j != i} R_j                 group of one: A = R
    REINFORCE++ A_{i,t} = whiten_batch( G_{i,t} ),  G_{i,t} = sum_{k>=t} gamma^{k-t} r_{i,k}
      baseline  A_{i,t} = whiten_batch( R_i - mean_g R )
    GAE        delta_k = r_k + gamma V(s_{k+1}) - V(s_k),  A_k = sum_l (gamma lam)^l delta_{k+l}
               V(s_{K+1}) = 0 at a terminal state; on truncation, V(s_{K+1}) or 0 (selectable)

``R_i = sum_t r_{i,t}``: group-based estimators see dense turn rewards only through their sum,
and broadcast the trajectory advantage to every turn. std is the sample std (ddof = 1, as
torch.std in verl); all-equal rewards give 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar, Protocol

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from agentgym.errors import EstimatorError
from trainers.batch import Batch, BatchError

CHECKED = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
"""Estimator settings are checked when an estimator is built: types, ranges, allowed values."""


class Estimator(Protocol):
    """What every advantage estimator is: a batch in, one array of per-turn values out."""

    type_name: ClassVar[str]
    """Its name in configs (``{"type": "grpo"}``)."""

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages of every episode, in the batch's order."""


# ---------------------------------------------------------------- pure functions
def grpo_advantages(returns: np.ndarray, normalize_std: bool = True, eps: float = 1e-6,
                    group: np.ndarray | None = None) -> np.ndarray:
    """Group-relative advantages ``(R_i - mean_g) / (std_g + eps)``, shape ``(N,)``.

    ``group`` numbers each return's group (``0 .. n-1``; default: all one group), so a
    whole batch is one call. A group of one has no baseline: mean 0, std 1.
    """
    group, size = _groups(returns, group)
    mean = (np.bincount(group, returns) / np.bincount(group))[group]
    deviation = returns - mean
    std = np.sqrt(np.bincount(group, deviation ** 2)[group] / np.maximum(size - 1, 1))
    alone = size == 1
    centred = np.where(alone, returns, deviation)
    return centred / (np.where(alone, 1.0, std) + eps) if normalize_std else centred


def rloo_advantages(returns: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """Leave-one-out advantages ``R_i - mean_{j != i} R_j``, shape ``(N,)``.

    ``group`` as for :func:`grpo_advantages`; a group of one keeps its return.
    """
    group, size = _groups(returns, group)
    others = np.bincount(group, returns)[group] - returns
    return np.where(size == 1, returns, returns - others / np.maximum(size - 1, 1))


def _groups(returns: np.ndarray, group: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The group number of each return and the size of its group."""
    if group is None:
        group = np.zeros(len(returns), np.int64)
    return group, np.bincount(group)[group]


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = sum_{k >= t} gamma^{k-t} r_k`` for one episode."""
    out = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def whiten(arrays: Sequence[np.ndarray], eps: float = 1e-8) -> list[np.ndarray]:
    """``(x - mean) / sqrt(var + eps)`` with mean and variance over every element of all arrays."""
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    if flat.size == 0:
        return [a.copy() for a in arrays]
    mean, var = flat.mean(), flat.var()
    return [(a - mean) / np.sqrt(var + eps) for a in arrays]


def gae(rewards: np.ndarray, values: np.ndarray, last_value: float, gamma: float,
        lam: float) -> np.ndarray:
    """Turn-level GAE of one episode.

    Args:
        rewards: ``r_0 .. r_{K-1}``.
        values: ``V(s_0) .. V(s_{K-1})``.
        last_value: ``V(s_K)``, the value after the last turn (0 at a terminal state).
        gamma: Discount.
        lam: GAE lambda.
    """
    next_values = np.append(values[1:], last_value)
    deltas = rewards + gamma * next_values - values
    return discounted_returns(deltas, gamma * lam)


# ---------------------------------------------------------------- estimator objects
def _broadcast(batch: Batch, per_episode: np.ndarray) -> list[np.ndarray]:
    return [np.full(len(r), a, dtype=np.float64) for r, a in zip(batch.rewards, per_episode)]




@dataclass(frozen=True, config=CHECKED)
class GRPO:
    """GRPO: ``A_i = (R_i - mean_g) / (std_g + eps)``; ``normalize_std=False`` is Dr.GRPO's."""

    type_name: ClassVar[str] = "grpo"
    normalize_std: bool = True
    eps: float = 1e-6

    def trajectory_advantages(self, batch: Batch) -> np.ndarray:
        """One advantage per episode, shape ``(N,)``."""
        return grpo_advantages(batch.returns(), self.normalize_std, self.eps,
                               group=batch.group_numbers())

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages (the trajectory advantage on every turn)."""
        return _broadcast(batch, self.trajectory_advantages(batch))


@dataclass(frozen=True, config=CHECKED)
class DrGRPO(GRPO):
    """Dr.GRPO: ``A_i = R_i - mean_g`` (GRPO without the std division).

    Dr.GRPO also changes the loss aggregation to a constant-length normaliser; that belongs
    to the loss (``loss_agg_mode``), not to the advantage.
    """

    type_name: ClassVar[str] = "dr_grpo"
    normalize_std: bool = False


@dataclass(frozen=True, config=CHECKED)
class RLOO:
    """RLOO: ``A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean_g)``."""

    type_name: ClassVar[str] = "rloo"

    def trajectory_advantages(self, batch: Batch) -> np.ndarray:
        """One advantage per episode, shape ``(N,)``."""
        return rloo_advantages(batch.returns(), group=batch.group_numbers())

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages (the trajectory advantage on every turn)."""
        return _broadcast(batch, self.trajectory_advantages(batch))


@dataclass(frozen=True, config=CHECKED)
class ReinforcePP:
    """REINFORCE++: batch-whitened discounted returns per turn.

    ``baseline=True`` is the group-baseline variant: ``whiten_batch(R_i - mean_g)``. The
    ``-beta * KL`` token reward of the paper belongs in the reward, before this step. Returns
    are carried across turns (verl resets them at every masked token, which in a multi-turn
    sequence would cut credit at each observation).
    """

    type_name: ClassVar[str] = "reinforce_pp"
    gamma: float = 1.0
    baseline: bool = False

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages."""
        if self.baseline:
            centred = GRPO(normalize_std=False)(batch)
            return whiten(centred)
        return whiten([discounted_returns(r, self.gamma) for r in batch.rewards])


@dataclass(frozen=True, config=CHECKED)
class TurnGAE:
    """Turn-level GAE from per-turn values (Turn-PPO style).

    Args:
        gamma: Discount.
        lam: GAE lambda.
        bootstrap_truncated: On a truncated episode, use ``V(s_K)`` (the last entry of its
            values, which then has ``K + 1`` entries) instead of 0.
    """

    gamma: float = 1.0
    lam: float = 1.0
    bootstrap_truncated: bool = True

    def __call__(self, batch: Batch, values: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """Per-turn advantages; ``values[i]`` holds ``V(s_0..s_{K-1})`` (or ``..s_K``)."""
        if len(values) != len(batch.episodes):
            raise BatchError(f"TurnGAE got values for {len(values)} episodes; the batch has "
                             f"{len(batch.episodes)}.")
        out = []
        for episode, rewards, given in zip(batch.episodes, batch.rewards, values):
            v = np.asarray(given, dtype=np.float64)
            k = len(rewards)
            if len(v) not in (k, k + 1):
                raise BatchError(f"Episode {episode.episode_id} has {k} turns; give {k} values "
                                 f"(or {k + 1} with V(s_K)), not {len(v)}.")
            bootstrap = episode.truncated and self.bootstrap_truncated
            if bootstrap and len(v) == k:
                raise BatchError(f"Episode {episode.episode_id} was truncated and "
                                 "bootstrap_truncated=True, so it needs V(s_K): give "
                                 f"{k + 1} values, not {k}.")
            out.append(gae(rewards, v[:k], float(v[k]) if bootstrap else 0.0,
                           self.gamma, self.lam))
        return out


@dataclass(frozen=True, config=CHECKED)
class Vine:
    """VinePPO: ``A_t = r_t + gamma * V^(s_{t+1}) - V^(s_t)`` with Monte-Carlo values.

    The values come from continuations out of each state's snapshot
    (``agentgym.values.attach_mc_values`` records them in ``metadata["mc_values"]``); with
    them this is turn-level GAE at ``lam = 0``. The batch's rewards must be the ones the
    values were estimated with (the env's, or the same reward spec).
    """

    type_name: ClassVar[str] = "vine"
    gamma: float = 1.0
    k: Annotated[int, Field(ge=1)] = 4
    """Continuations per state the values should come from (VinePPO's K): what the trainer
    asks ``attach_mc_values`` for before this estimator runs."""

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages."""
        missing = [e.episode_id for e in batch.episodes if "mc_values" not in e.metadata]
        if missing:
            raise EstimatorError(
                f"Vine needs Monte-Carlo state values; {len(missing)} episodes have none "
                f"(first: {missing[0]}). Estimate them with agentgym.values.attach_mc_values("
                "env, policy, episodes, k=...).")
        values = [e.metadata["mc_values"] for e in batch.episodes]
        return TurnGAE(self.gamma, lam=0.0, bootstrap_truncated=False)(batch, values)
