"""Several envs in one training run, each with a weight.

``env: [{id: TextWorld-v0, weight: 0.5}, {id: Search-v0, weight: 0.3}, ...]`` in a config
trains on all of them: each update draws how many of its tasks each env gets from the
weights (a multinomial draw, seeded by the run's seed and the update), every group is one
task of one env (groups never mix envs), SFT takes expert episodes from each env in
proportion to the weights, and evaluation plays ``eval.tasks`` held-out tasks of every env.
Metrics carry the env's name: ``env/<name>/success_rate``, ``eval/<name>/success_rate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainers.config import EnvConfig


@dataclass
class EnvMix:
    """Each listed env's config and its ``parallel`` instances."""

    configs: list[EnvConfig]
    pools: list[list[Any]]

    @classmethod
    def make(cls, configs: list[EnvConfig], parallel: int) -> EnvMix:
        """``parallel`` instances of every env in ``configs``."""
        import agentgym

        return cls(configs, [[agentgym.make(c.id, **c.kwargs) for _ in range(parallel)]
                             for c in configs])

    def __repr__(self) -> str:
        return "EnvMix(" + ", ".join(f"{c.label}: {c.weight:g}" for c in self.configs) + ")"

    @property
    def mixed(self) -> bool:
        """Whether there is more than one env (metrics then name each)."""
        return len(self.configs) > 1

    def __iter__(self) -> Iterator[tuple[EnvConfig, list[Any]]]:
        return iter(zip(self.configs, self.pools))

    def task_counts(self, tasks: int, seed: int) -> list[int]:
        """How many of ``tasks`` each env gets this time: a draw weighted by ``weight``."""
        if not self.mixed:
            return [tasks]
        weights = np.array([c.weight for c in self.configs], dtype=float)
        return [int(n) for n in np.random.default_rng(seed).multinomial(tasks,
                                                                         weights / weights.sum())]

    def shares(self, total: int) -> list[int]:
        """``total`` split in proportion to the weights (largest remainders; sums to it)."""
        weights = np.array([c.weight for c in self.configs], dtype=float)
        exact = total * weights / weights.sum()
        counts = np.floor(exact).astype(int)
        for i in np.argsort(counts - exact)[:total - int(counts.sum())]:
            counts[i] += 1
        return [int(n) for n in counts]

    def close(self) -> None:
        """Close every instance."""
        for pool in self.pools:
            for env in pool:
                env.close()
