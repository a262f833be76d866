"""Tree groups in training: each shared turn trained once, with the mean credit of its leaves.

In a tree group (``agentgym.Tree``) a leaf's first ``branch_turn`` turns are its parent's
turns: the same tokens, generated once. Training every leaf on all its turns would count
those tokens once per leaf below them. Instead each turn has one *owner*, the first leaf
that took it (the root path owns all its turns; every other leaf owns the turns from its
branch turn on), and the owner trains it with the mean of the advantages every leaf
through it gave it::

    A^_k(owner) = mean { A_k(leaf) : leaf shares turn k with the owner }

Under SALT the leaves through a shared turn already agree on it (it is one edge of the
graph), so this changes nothing but the count; under GRPO it is the mean of the leaves'
outcomes below the turn, which is SALT's value for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from agentgym.records import Episode
from agentgym.tree import shared_turns


def fold_shared_turns(episodes: Sequence[Episode], advantages: Sequence[np.ndarray]
                      ) -> tuple[list[np.ndarray], list[int]]:
    """Each turn's advantage moved to its owner; and per episode, its first owned turn.

    Episodes outside a tree (or whose parent is not in ``episodes``) own every turn.
    """
    index = {episode.episode_id: i for i, episode in enumerate(episodes)}
    first_owned = [_shared(episode, index) for episode in episodes]
    through: defaultdict[tuple[int, int], list[float]] = defaultdict(list)
    for i, episode in enumerate(episodes):
        for turn in range(len(episode.turns)):
            through[(_owner(i, turn, episodes, index, first_owned), turn)].append(
                float(advantages[i][turn]))
    folded = [np.array(values, dtype=np.float64) for values in advantages]
    for (owner, turn), values in through.items():
        folded[owner][turn] = float(np.mean(values))
    return folded, first_owned


def _shared(episode: Episode, index: dict[str, int]) -> int:
    parent = (episode.metadata.get("tree") or {}).get("parent")
    return shared_turns(episode) if parent in index else 0


def _owner(i: int, turn: int, episodes: Sequence[Episode], index: dict[str, int],
           first_owned: list[int]) -> int:
    while turn < first_owned[i]:  # the turn is the parent's: ask it
        i = index[episodes[i].metadata["tree"]["parent"]]
    return i
