"""GiGPO: episode-level group advantage plus step-level advantage within anchor states.

As in the reference code (verl-agent ``gigpo/core_gigpo.py``), with its equation numbers::

    (3) R_i = sum_t r_{i,t};   A^E_i = (R_i - mean_g) / F_norm,  F_norm in {std_g + eps, 1}
    (5) R_{i,t} = sum_{k>=t} gamma^{k-t} r_{i,k}        (minus the invalid-action penalty)
    (6) G_s = {(i,t) in one group : anchor_{i,t} == s}
    (7) A^S_{i,t} = (R_{i,t} - mean_{G_s}) / F_norm(G_s)
    (8) A_{i,t} = A^E_i + omega * A^S_{i,t}

Edge cases, as the code does them: an episode group of one has mean 0 and std 1 (A^E = R);
a step group of one has A^S = 0; all-equal values give 0. ``episode_stats="step_rows"``
(the code's default, ``compute_mean_std_cross_steps``) takes the episode mean and std over
step rows, so a trajectory of T turns counts T times; ``"trajectory"`` is the paper's form.
Anchors are the env's ``state_key`` or the observation text; with ``similarity`` set, an
observation joins the first cluster whose first member is at least that similar
(``difflib`` ratio), as the code's ``enable_similarity``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import discounted_returns


def _normalised(values: np.ndarray, use_std: bool, eps: float, single_mean: float,
                single_std: float) -> np.ndarray:
    if len(values) == 1:
        mean, std = single_mean, single_std
    else:
        mean, std = values.mean(), values.std(ddof=1)
    return (values - mean) / (std + eps if use_std else 1.0)


def cluster_by_similarity(texts: list[str], threshold: float) -> list[int]:
    """Greedy clusters: each text joins the first cluster whose first member is similar."""
    representatives: list[str] = []
    labels = []
    for text in texts:
        for label, rep in enumerate(representatives):
            if difflib.SequenceMatcher(None, rep, text).ratio() >= threshold:
                labels.append(label)
                break
        else:
            representatives.append(text)
            labels.append(len(representatives) - 1)
    return labels


@dataclass(frozen=True)
class GiGPO:
    """GiGPO advantages.

    Args:
        omega: Weight of the step-level advantage (``step_advantage_w``).
        gamma: Discount of the step returns (0.95 in the shipped scripts).
        mode: ``"mean_norm"`` (F_norm = 1) or ``"mean_std_norm"`` (F_norm = std + eps).
        anchor: ``"state_key"`` or ``"observation"``.
        similarity: With ``anchor="observation"``, cluster observations at this ratio.
        episode_stats: ``"step_rows"`` (the code) or ``"trajectory"`` (the paper).
        invalid_penalty: Subtracted from the step return of each invalid-action step.
        eps: Added to the std.
    """

    omega: float = 1.0
    gamma: float = 0.95
    mode: Literal["mean_norm", "mean_std_norm"] = "mean_norm"
    anchor: Literal["state_key", "observation"] = "state_key"
    similarity: float | None = None
    episode_stats: Literal["step_rows", "trajectory"] = "step_rows"
    invalid_penalty: float = 0.0
    eps: float = 1e-6

    def episode_advantages(self, batch: Batch) -> np.ndarray:
        """``A^E_i`` for every episode, shape ``(N,)``."""
        returns, use_std = batch.returns(), self.mode == "mean_std_norm"
        out = np.empty_like(returns)
        for members in batch.groups:
            idx = list(members)
            if self.episode_stats == "trajectory" or len(idx) == 1:
                out[idx] = _normalised(returns[idx], use_std, self.eps, 0.0, 1.0)
                continue
            rows = np.concatenate([np.full(len(batch.rewards[i]), returns[i]) for i in idx])
            mean, std = rows.mean(), rows.std(ddof=1) if len(rows) > 1 else 1.0
            out[idx] = (returns[idx] - mean) / (std + self.eps if use_std else 1.0)
        return out

    def step_advantages(self, batch: Batch) -> list[np.ndarray]:
        """``A^S_{i,t}`` for every step."""
        step_returns = []
        for episode, rewards in zip(batch.episodes, batch.rewards):
            ret = discounted_returns(rewards, self.gamma)
            invalid = np.array([not t.action_valid for t in episode.turns])
            step_returns.append(ret - self.invalid_penalty * invalid)
        out = [np.zeros_like(r) for r in step_returns]
        for members in batch.groups:
            for steps in self._anchor_groups(batch, members).values():
                if len(steps) == 1:
                    continue  # a step group of one: A^S = 0, as initialised
                values = np.array([step_returns[i][t] for i, t in steps])
                normed = _normalised(values, self.mode == "mean_std_norm", self.eps,
                                     float(values[0]), 1.0)
                for (i, t), a in zip(steps, normed):
                    out[i][t] = a
        return out

    def _anchor_groups(self, batch: Batch, members) -> dict[object, list[tuple[int, int]]]:
        steps = [(i, t) for i in members for t in range(len(batch.rewards[i]))]
        turns = [batch.episodes[i].turns[t] for i, t in steps]
        if self.anchor == "state_key":
            anchors: list[object] = [turn.state_key for turn in turns]
            if None in anchors:
                raise ValueError("GiGPO(anchor='state_key') needs every turn's state_key; this "
                                 "env records none, so use anchor='observation'.")
        elif self.similarity is not None:
            anchors = cluster_by_similarity([turn.observation for turn in turns], self.similarity)
        else:
            anchors = [turn.observation for turn in turns]
        groups: dict[object, list[tuple[int, int]]] = {}
        for step, anchor in zip(steps, anchors):
            groups.setdefault(anchor, []).append(step)
        return groups

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """``A_{i,t} = A^E_i + omega * A^S_{i,t}``."""
        episode = self.episode_advantages(batch)
        with gc_paused():
            steps = self.step_advantages(batch)
        return [a + self.omega * s for a, s in zip(episode, steps)]
