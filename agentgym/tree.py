"""Tree-structured groups: a group sampled as a tree, so its trajectories share states.

Independently sampled episodes of one task rarely meet in the same state, so SALT's
trajectory graph stays a set of disjoint paths. A tree group (Tree-GRPO, ARPO) starts every
leaf from the same reset and lets paths split at chosen turns: the prefix before a split
is generated and stepped once, and every leaf below it shares it, state for state.

Each leaf is an ordinary :class:`~agentgym.records.Episode` of the group, with
``metadata["tree"] = {"parent": <episode id it split from, or None>, "branch_turn": t}``
(its first ``t`` turns are the parent's):
the viewer, rewards, estimators and tokenisation read it as any episode.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core import AgentEnv
from agentgym.errors import InvalidOptionError
from agentgym.policies import describe
from agentgym.records import Episode
from agentgym.rollout import EpisodeRecorder, plan_tasks


@dataclass(frozen=True)
class Tree:
    """How a group branches.

    Args:
        leaves: Episodes per group (G).
        width: Continuations a path splits into at a branch turn.
        every: Branch every ``every`` turns (turn 0 included) ...
        at: ... or at these turns.
    """

    leaves: int
    width: int = 2
    every: int | None = None
    at: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.leaves < 1 or self.width < 2:
            raise InvalidOptionError(f"A tree needs leaves >= 1 and width >= 2, got "
                                     f"leaves={self.leaves}, width={self.width}.")
        if (self.every is None) == (not self.at):
            raise InvalidOptionError("Say where a tree branches: every=k turns, or at=[turns]"
                                     " (one of them).")
        if self.every is not None and self.every < 1:
            raise InvalidOptionError(f"every must be >= 1, got {self.every}.")

    def branches_at(self, turn: int) -> bool:
        """Whether paths split before step ``turn``."""
        return turn % self.every == 0 if self.every is not None else turn in self.at


@dataclass
class TreeStats:
    """What sampling trees cost against independent sampling of the same leaves."""

    env_steps: int = 0
    leaf_steps: int = 0
    policy_calls: int = 0
    leaves: int = 0
    groups: list[list[Episode]] = field(default_factory=list)

    @property
    def steps_saved(self) -> float:
        """The share of the leaves' steps that were not stepped again (shared prefixes)."""
        return 1.0 - self.env_steps / self.leaf_steps if self.leaf_steps else 0.0


def tree_rollout(env: AgentEnv, policy: Callable[[Any], Any], tree: Tree, *,
                 tasks: int | Sequence[str] = 1, seed: int = 0, split: str | None = None,
                 run_id: str | None = None) -> tuple[list[Episode], TreeStats]:
    """Sample ``tasks`` groups as trees of ``tree.leaves`` leaves each.

    ``tasks``, ``seed`` and ``split`` choose the tasks as :func:`agentgym.rollout` does
    (a count, task ``i`` reset with ``seed + i``, or task ids).

    Paths are played depth first in ``env``; a split snapshots the state and each
    continuation restores it. Returns the leaves (group by group) and the cost.
    """
    stats, run_id = TreeStats(), run_id or uuid.uuid4().hex[:8]
    episodes: list[Episode] = []
    for index, (task_seed, options) in enumerate(plan_tasks(tasks, seed, split)):
        recorder = EpisodeRecorder(env.env_id, env.system_prompt(), env.protocol.encode,
                                   seed=task_seed,
                                   group_id=f"{env.env_id}:{run_id}:{seed}:{index}",
                                   history_window=None,
                                   metadata={**describe(policy), "run_id": run_id})
        recorder.episode.metadata["tree"] = {"parent": None, "branch_turn": None}
        recorder.begin(*env.reset(seed=task_seed, options=options))
        group = _grow(env, policy, tree, recorder, tree.leaves, stats)
        stats.groups.append(group)
        episodes += group
    stats.leaves = len(episodes)
    stats.leaf_steps = sum(len(e.turns) for e in episodes)
    return episodes, stats


def _grow(env: AgentEnv, policy: Callable[[Any], Any], tree: Tree, recorder: EpisodeRecorder,
          slots: int, stats: TreeStats, split_at: int = -1) -> list[Episode]:
    """Play on from the recorder's state until it ends or splits; ``slots`` leaves below.

    ``split_at``: the turn this path was split at (it splits again only after a step).
    """
    while not recorder.done:
        if slots > 1 and recorder.turns != split_at and tree.branches_at(recorder.turns):
            return _split(env, policy, tree, recorder, slots, stats)
        action = policy(recorder.conversation())
        recorder.record(action, env.step(action), 0.0, 0.0)
        stats.env_steps += 1
        stats.policy_calls += 1
    return [recorder.finish()]


def _split(env: AgentEnv, policy: Callable[[Any], Any], tree: Tree,
           recorder: EpisodeRecorder, slots: int, stats: TreeStats) -> list[Episode]:
    """Continuations of this state sharing ``slots`` leaves, ``width`` of them or more.

    The first continues the path (its link is the path's); each other one links to the
    first leaf. A continuation that ends before it can use its share of leaves leaves them
    to the next ones, and more continuations start here until every leaf is sampled.
    """
    here, turn = env.snapshot(), recorder.turns
    leaves: list[Episode] = []
    children_left = tree.width
    while len(leaves) < slots:
        share = math.ceil((slots - len(leaves)) / max(children_left, 1))
        env.restore(here)
        child = recorder.fork()
        if leaves:
            child.episode.metadata["tree"] = {"parent": leaves[0].episode_id,
                                              "branch_turn": turn}
        leaves += _grow(env, policy, tree, child, share, stats, split_at=turn)
        children_left -= 1
    return leaves
