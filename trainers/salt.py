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

from collections import defaultdict
from dataclasses import field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic.dataclasses import dataclass

from trainers._gc import gc_paused
from trainers.batch import Batch
from trainers.estimators import CHECKED, GRPO
from trainers.graph import StateKeyMatch, TrajectoryGraph, build_graph


def edge_mean(occurrences: list[tuple[int, int]], base: list[list[float]], count: str) -> float:
    """The mean base advantage over an edge's traversals (``base`` indexed within the group)."""
    if count == "occurrence" or len(occurrences) == 1:
        return sum(base[j][u] for j, u in occurrences) / len(occurrences)
    per_trajectory: dict[int, list[float]] = defaultdict(list)
    for j, u in occurrences:
        per_trajectory[j].append(base[j][u])
    return sum(sum(v) / len(v) for v in per_trajectory.values()) / len(per_trajectory)


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
        base = [a.tolist() for a in self.base(batch)]  # plain floats: fast scalar access
        out = [list(a) for a in base]
        with gc_paused():
            for members, graph in zip(batch.groups, self.graphs(batch)):
                group_base = [base[i] for i in members]
                for occurrences in graph.occurrences.values():
                    if len(occurrences) == 1:
                        continue  # an edge taken once keeps its own advantage
                    value = edge_mean(occurrences, group_base, self.count)
                    for j, u in occurrences:
                        out[members[j]][u] = value
        return [np.asarray(a, dtype=np.float64) for a in out]
