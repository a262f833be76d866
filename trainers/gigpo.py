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
import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic.dataclasses import dataclass

from agentgym.errors import EstimatorError
from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import CHECKED, discounted_returns


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
        """``A^S_{i,t}`` for every step: (7) over every anchor group of the batch at once."""
        step_returns = [discounted_returns(rewards, self.gamma)
                        - self.invalid_penalty * _invalid(episode)
                        for episode, rewards in zip(batch.episodes, batch.rewards)]
        if not step_returns:
            return []
        values, anchor = np.concatenate(step_returns), self.anchor_ids(batch)
        counts = np.bincount(anchor)
        deviation = values - (np.bincount(anchor, values) / counts)[anchor]
        scale = np.ones(len(counts))
        if self.mode == "mean_std_norm":
            spread = np.bincount(anchor, deviation ** 2) / np.maximum(counts - 1, 1)
            scale = np.sqrt(spread) + self.eps
        normed = np.where(counts[anchor] > 1, deviation / scale[anchor], 0.0)  # alone: 0
        return np.split(normed, np.cumsum([len(r) for r in step_returns])[:-1])

    def anchor_ids(self, batch: Batch) -> np.ndarray:
        """Every step's anchor group (6), numbered across the batch (episode order)."""
        numbers: defaultdict[tuple, int] = defaultdict(itertools.count().__next__)
        ids: list[list[int]] = [[] for _ in batch.episodes]
        for group, members in enumerate(batch.groups):
            anchors = iter(self._anchors(batch, members))
            for i in members:
                keys = zip(itertools.repeat(group), itertools.islice(anchors,
                                                                     len(batch.episodes[i].turns)))
                ids[i] = list(map(numbers.__getitem__, keys))  # new keys: next number
        return np.fromiter((n for row in ids for n in row), np.int64,
                           sum(len(row) for row in ids))

    def _anchors(self, batch: Batch, members: Sequence[int]) -> Sequence[object]:
        """The anchor of every step of a group's episodes, in order."""
        turns = [turn for i in members for turn in batch.episodes[i].turns]
        if self.anchor == "state_key":
            anchors = [turn.state_key for turn in turns]
            if None in anchors:
                raise EstimatorError("GiGPO(anchor='state_key') needs every turn's state_key; "
                                     "this env records none, so use anchor='observation'.")
            return anchors
        if self.similarity is not None:
            return cluster_by_similarity([turn.observation for turn in turns], self.similarity)
        return [turn.observation for turn in turns]

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """``A_{i,t} = A^E_i + omega * A^S_{i,t}``."""
        episode = self.episode_advantages(batch)
        with gc_paused():
            steps = self.step_advantages(batch)
        return [a + self.omega * s for a, s in zip(episode, steps)]
