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
from dataclasses import field
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic.dataclasses import dataclass

from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import CHECKED, GRPO
from trainers.graph import (
    StateKeyMatch,
    TrajectoryGraph,
    action_hashes,
    build_graph,
    state_hashes,
)


def edge_average(values: np.ndarray, edges: StepEdges, count: str) -> np.ndarray:
    """Each step's edge mean of ``values`` (one per step, flat), all groups at once.

    With ``count="trajectory"`` each episode's traversals of an edge are averaged first.
    """
    edge, trajectory = edges.edge, edges.trajectory
    if count == "trajectory":  # one entry per (edge, trajectory): its mean
        # edges.order lists each edge's steps in episode order: a pair is a run in it
        by_edge, by_trajectory = edge[edges.order], trajectory[edges.order]
        new = np.ones(len(edge), bool)
        new[1:] = (by_edge[1:] != by_edge[:-1]) | (by_trajectory[1:] != by_trajectory[:-1])
        step_pair = np.empty(len(edge), np.int64)
        step_pair[edges.order] = np.cumsum(new) - 1
        pair_means = np.bincount(step_pair, values) / np.bincount(step_pair)
        edge_of_pair = by_edge[new]
        means = np.bincount(edge_of_pair, pair_means) / np.bincount(edge_of_pair)
        return means[edge]
    return (np.bincount(edge, values) / np.bincount(edge))[edge]


class StepEdges(NamedTuple):
    """Every step of a batch (episode order): its edge's number and its episode.

    ``order`` lists the steps edge by edge, each edge's steps in episode order.
    """

    edge: np.ndarray
    trajectory: np.ndarray
    order: np.ndarray


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
            edges = self.edges(batch)
        averaged = edge_average(np.concatenate(base), edges, self.count)
        return np.split(averaged, np.cumsum([len(a) for a in base])[:-1])

    def edges(self, batch: Batch) -> StepEdges:
        """For every step of the batch (episode order): its edge's number, its episode.

        An edge is ``(group, state, action, next state)``: the trajectory graph's edges,
        numbered across the whole batch. States and actions are compared by their 64-bit
        hashes, and edges found by one mixed code (checked component by component).
        """
        episodes = batch.episodes
        lengths = np.array([len(e.turns) for e in episodes], dtype=np.int64)
        group = batch.group_numbers()
        turns = list(itertools.chain.from_iterable(e.turns for e in episodes))
        state_hash = state_hashes(self.matcher, episodes, turns)
        action_hash = action_hashes(turns)
        step_episode = np.repeat(np.arange(len(episodes)), lengths)
        # episode i's states sit at [start_i, start_i + T_i]: one more than its turns
        before = np.cumsum(lengths + (lengths > 0)) - (lengths + (lengths > 0))
        source = np.repeat(before, lengths) + _turn_index(lengths)
        parts = np.stack([group[step_episode], state_hash[source], action_hash,
                          state_hash[source + 1]])
        edge, order = _number_rows(parts)
        return StepEdges(edge, step_episode, order)


def _turn_index(lengths: np.ndarray) -> np.ndarray:
    """``0 .. T_i - 1`` for each episode, concatenated."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _number_rows(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct columns of ``parts`` (shape ``(k, n)``), in order of their code.

    Also the columns listed number by number, each number's columns in their own order.
    One mixed 64-bit code per column finds them fast; a column that shares a code but not
    its values (a collision) sends the work to an exact sort instead.
    """
    code = np.zeros(parts.shape[1], np.int64)
    with np.errstate(over="ignore"):
        for row in parts:
            code = code * np.int64(1_000_000_007) + row
    ids, order, first = factorize(code)
    if (parts == parts[:, first[ids]]).all():
        return ids, order
    order = np.lexsort(parts[::-1])
    ordered = parts[:, order]
    new = np.ones(parts.shape[1], bool)
    new[1:] = (ordered[:, 1:] != ordered[:, :-1]).any(axis=0)
    exact = np.empty(parts.shape[1], np.int64)
    exact[order] = np.cumsum(new) - 1
    return exact, order


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the distinct values (in sorted order), with the order listing them so.

    Also returned: the index of each value's first occurrence. The order is stable (equal
    values keep their own order), which lets a caller find runs of a second key inside each
    value without sorting again.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.empty(len(values), bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    ids = np.empty(len(values), np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids, order, order[new]
