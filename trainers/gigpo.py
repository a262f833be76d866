"""GiGPO: episode-level group advantage plus step-level advantage within anchor states.

As in the reference code (verl-agent ``gigpo/core_gigpo.py``), with its equation numbers::

    (3) R_i = sum_t r_{i,t};   A^E_i = (R_i - mean_g) / F_norm,  F_norm in {std_g + eps, 1}
    (5) R_{i,t} = sum_{k>=t} gamma^{k-t} r_{i,k}        (minus the invalid-action penalty)
    (6) G_s = {(i,t) in one group : anchor_{i,t} == s}
    (7) A^S_{i,t} = (R_{i,t} - mean_{G_s}) / F_norm(G_s)
    (8) A_{i,t} = A^E_i + omega * A^S_{i,t}

Rows, as the code has them: every turn is one row, and every row of episode i carries the
score R_i, less the invalid-action penalty on the row of an invalid action (the code's
``apply_invalid_action_penalty`` subtracts it from ``token_level_scores`` *and* from the step
return). So ``A^E`` is per row: an invalid step's row scores lower than its siblings.

Edge cases, as the code does them: a score group of one entry has mean 0 and std 1
(``A^E = R``); a single multi-turn episode is several rows, so its ``A^E`` is 0. A step group
of one has ``A^S = 0``; all-equal values give 0. ``episode_stats="step_rows"`` (the code's
default, ``compute_mean_std_cross_steps``) takes the mean and std over all rows of the group,
so a trajectory of T turns counts T times; ``"trajectory"`` counts each episode once, by the
score of its first row (the code keeps the first row it meets). ``penalize_episode_score=False``
is a deliberate variant: the penalty lowers only the step return, not the row's score.
Anchors are the env's ``state_key`` or the observation text; with ``similarity`` set, an
observation joins the first cluster whose first member is at least that similar
(``difflib`` ratio), as the code's ``enable_similarity``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic.dataclasses import dataclass

from agentgym.errors import EstimatorError
from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import CHECKED, discounted_returns


def _normalised(values: np.ndarray, use_std: bool, eps: float, single_mean: float,
                single_std: float) -> np.ndarray:
    if len(values) == 1:
        mean, std = single_mean, single_std
    else:
        mean, std = values.mean(), values.std(ddof=1)
    return (values - mean) / (std + eps if use_std else 1.0)


def _invalid(episode) -> np.ndarray:
    return np.array([0.0 if turn.action_valid else 1.0 for turn in episode.turns])


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


@dataclass(frozen=True, config=CHECKED)
class GiGPO:
    """GiGPO advantages.

    Args:
        omega: Weight of the step-level advantage (``step_advantage_w``).
        gamma: Discount of the step returns (0.95 in the shipped scripts).
        mode: ``"mean_norm"`` (F_norm = 1) or ``"mean_std_norm"`` (F_norm = std + eps).
        anchor: ``"state_key"`` or ``"observation"``.
        similarity: With ``anchor="observation"``, cluster observations at this ratio.
        episode_stats: ``"step_rows"`` (the code) or ``"trajectory"`` (the paper).
        invalid_penalty: Subtracted from the step return and the row score of each
            invalid-action step.
        penalize_episode_score: ``False`` subtracts the penalty from the step return only.
        eps: Added to the std.
    """

    type_name: ClassVar[str] = "gigpo"
    omega: float = 1.0
    gamma: float = 0.95
    mode: Literal["mean_norm", "mean_std_norm"] = "mean_norm"
    anchor: Literal["state_key", "observation"] = "state_key"
    similarity: float | None = None
    episode_stats: Literal["step_rows", "trajectory"] = "step_rows"
    invalid_penalty: float = 0.0
    penalize_episode_score: bool = True
    eps: float = 1e-6

    def row_scores(self, batch: Batch) -> list[np.ndarray]:
        """The score of every row (turn): ``R_i``, less the penalty on an invalid action."""
        returns = batch.returns()
        penalty = self.invalid_penalty if self.penalize_episode_score else 0.0
        return [returns[i] - penalty * _invalid(episode)
                for i, episode in enumerate(batch.episodes)]

    def episode_advantages(self, batch: Batch) -> list[np.ndarray]:
        """``A^E`` for every row (turn) of every episode."""
        scores, use_std = self.row_scores(batch), self.mode == "mean_std_norm"
        out = [np.zeros_like(s) for s in scores]
        for members in batch.groups:
            idx = list(members)
            if self.episode_stats == "trajectory":
                entries = np.array([scores[i][0] for i in idx])
            else:
                entries = np.concatenate([scores[i] for i in idx])
            if len(entries) == 1:
                mean, std = 0.0, 1.0
            else:
                mean, std = entries.mean(), entries.std(ddof=1)
            for i in idx:
                out[i] = (scores[i] - mean) / (std + self.eps if use_std else 1.0)
        return out

    def step_advantages(self, batch: Batch) -> list[np.ndarray]:
        """``A^S_{i,t}`` for every step."""
        step_returns = []
        for episode, rewards in zip(batch.episodes, batch.rewards):
            ret = discounted_returns(rewards, self.gamma)
            step_returns.append(ret - self.invalid_penalty * _invalid(episode))
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
            anchors: Sequence[object] = [turn.state_key for turn in turns]
            if None in anchors:
                raise EstimatorError("GiGPO(anchor='state_key') needs every turn's state_key; "
                                     "this env records none, so use anchor='observation'.")
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
