"""SALT: step-level advantages from the trajectory graph, with no critic (arXiv 2510.20022).

For each group, the base estimator gives every step an advantage (for GRPO and RLOO, the
trajectory's advantage on each of its turns). SALT merges the steps the group's
trajectories share (:mod:`trainers.graph`) and gives each step the mean base advantage over
everything that took the same edge::

    A^_{i,t} = mean { A_{j,u} : e_{j,u} = e_{i,t} }

so a step common to successes and failures stops being praised or blamed for the outcome,
while the steps where trajectories diverge keep their trajectory's sign. No work is added
to rollouts: it runs on the recorded episodes.

How an edge repeated inside one trajectory counts (unsettled in the paper) is ``count``:

* ``"trajectory"`` (default): each trajectory through the edge counts once (its own mean
  over its traversals), so looping on an edge does not outweigh the other trajectories;
* ``"occurrence"``: every traversal counts once.

Invariants (tested): an edge taken by every trajectory of a GRPO/RLOO group gets exactly the
group mean, 0; an edge taken by one trajectory keeps that trajectory's advantage; a group of
one reduces to the base estimator; with ``count="occurrence"`` (or with no edge repeated
within a trajectory) the sum of all step advantages of a group equals the base's, because
each edge's traversals share their own sum.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic.dataclasses import dataclass

from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import CHECKED, GRPO
from trainers.graph import StateKeyMatch, TrajectoryGraph, action_text, build_graph


def edge_average(values: np.ndarray, edge: np.ndarray, trajectory: np.ndarray,
                 count: str) -> np.ndarray:
    """Each step's edge mean of ``values`` (one per step, flat), all groups at once.

    ``edge`` numbers each step's edge (distinct across groups), ``trajectory`` its episode.
    With ``count="trajectory"`` each episode's traversals of an edge are averaged first.
    """
    if count == "trajectory":  # one entry per (edge, trajectory): its mean
        pair = edge * (int(trajectory.max(initial=0)) + 1) + trajectory
        _, first, step_pair = np.unique(pair, return_index=True, return_inverse=True)
        pair_means = np.bincount(step_pair, values) / np.bincount(step_pair)
        edge_of_pair = edge[first]
        means = np.bincount(edge_of_pair, pair_means) / np.bincount(edge_of_pair)
        return means[edge]
    return (np.bincount(edge, values) / np.bincount(edge))[edge]


@dataclass(frozen=True, config=CHECKED)
class SALT:
    """SALT over any per-step base estimator (GRPO by default).

    Args:
        base: The estimator whose advantages are averaged (GRPO, RLOO, ...).
        matcher: What makes two states the same (the env's ``state_key`` by default).
        count: ``"trajectory"`` or ``"occurrence"`` (see the module docstring).
    """

    type_name: ClassVar[str] = "salt"
    base: Any = field(default_factory=GRPO)
    matcher: Any = field(default_factory=StateKeyMatch)  # a trainers.graph.StateMatcher
    count: Literal["trajectory", "occurrence"] = "trajectory"

    def graphs(self, batch: Batch) -> list[TrajectoryGraph]:
        """The trajectory graph of each group, in the batch's group order."""
        return [build_graph([batch.episodes[i] for i in members], self.matcher)
                for members in batch.groups]

    def __call__(self, batch: Batch) -> list[np.ndarray]:
        """Per-turn advantages."""
        base = self.base(batch)
        if not base:
            return []
        with gc_paused():
            edge, trajectory = self.edge_ids(batch)
        averaged = edge_average(np.concatenate(base), edge, trajectory, self.count)
        return np.split(averaged, np.cumsum([len(a) for a in base])[:-1])

    def edge_ids(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """For every step of the batch (episode order): its edge's number, its episode.

        An edge is ``(group, state, action, next state)``: the trajectory graph's edges,
        numbered across the whole batch in one pass.
        """
        numbers: defaultdict[tuple, int] = defaultdict(itertools.count().__next__)
        edges: list[list[int]] = [[] for _ in batch.episodes]
        for group, members in enumerate(batch.groups):
            for i in members:
                turns = batch.episodes[i].turns
                if turns:
                    states = self.matcher.states(batch.episodes[i])
                    actions = [action_text(turn) for turn in turns]
                    keys = zip(itertools.repeat(group), states, actions, states[1:])
                    edges[i] = list(map(numbers.__getitem__, keys))  # new keys: next number
        trajectory = np.repeat(np.arange(len(edges)), [len(e) for e in edges])
        return np.fromiter((n for e in edges for n in e), np.int64, len(trajectory)), trajectory
