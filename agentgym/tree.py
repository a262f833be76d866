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

from collections.abc import Sequence
from dataclasses import dataclass

from agentgym.errors import InvalidOptionError
from agentgym.records import Episode


@dataclass(frozen=True)
class Tree:
    """How a group branches.

    Args:
        leaves: Episodes per group (G).
        width: Continuations a state splits into, at most (the first one included).
        every: Branch every ``every`` turns (turn 0 included) ...
        at: ... or at these turns ...
        uncertain: ... or where the policy was least sure: play a path to its end, then
            branch again and again at the state whose reply had the highest mean token
            surprisal (``-log p`` of the sampled tokens, an estimate of the reply's
            entropy) of all the tree's paths so far, until there are ``leaves`` leaves.
            Needs a policy that reports log-probs (``TransformersPolicy``, ``VLLMPolicy``).
    """

    leaves: int
    width: int = 2
    every: int | None = None
    at: tuple[int, ...] = ()
    uncertain: bool = False

    def __post_init__(self) -> None:
        if self.leaves < 1 or self.width < 2:
            raise InvalidOptionError(f"A tree needs leaves >= 1 and width >= 2, got "
                                     f"leaves={self.leaves}, width={self.width}.")
        if [self.every is not None, bool(self.at), self.uncertain].count(True) != 1:
            raise InvalidOptionError("Say where a tree branches: every=k turns, at=[turns] or "
                                     "uncertain=True (one of them).")
        if self.every is not None and self.every < 1:
            raise InvalidOptionError(f"every must be >= 1, got {self.every}.")

    def branches_at(self, turn: int) -> bool:
        """Whether paths split before step ``turn`` (never, for ``uncertain`` trees)."""
        return turn % self.every == 0 if self.every is not None else turn in self.at


@dataclass
class TreeStats:
    """What sampling trees cost against independent sampling of the same leaves.

    ``env_steps`` and ``generated_tokens`` were spent; ``leaf_steps`` and ``leaf_tokens``
    are what the same leaves sampled independently would have spent.
    """

    env_steps: int = 0
    leaf_steps: int = 0
    generated_tokens: int = 0
    leaf_tokens: int = 0
    leaves: int = 0

    @classmethod
    def of(cls, episodes: Sequence[Episode]) -> TreeStats:
        """The cost of tree leaves (episodes without a ``tree`` link count in full)."""
        stats = cls(leaves=len(episodes))
        for episode in episodes:
            own = shared_turns(episode)
            tokens = [len(t.token_ids or ()) for t in episode.turns]
            stats.leaf_steps += len(episode.turns)
            stats.env_steps += len(episode.turns) - own
            stats.leaf_tokens += sum(tokens)
            stats.generated_tokens += sum(tokens[own:])
        return stats

    @property
    def steps_saved(self) -> float:
        """The share of the leaves' steps that were not stepped again (shared prefixes)."""
        return 1.0 - self.env_steps / self.leaf_steps if self.leaf_steps else 0.0

    @property
    def tokens_saved(self) -> float:
        """The share of the leaves' generated tokens that were not generated again."""
        return 1.0 - self.generated_tokens / self.leaf_tokens if self.leaf_tokens else 0.0


def shared_turns(episode: Episode) -> int:
    """How many first turns ``episode`` shares with its parent leaf (0 if it has none)."""
    link = episode.metadata.get("tree") or {}
    return int(link.get("branch_turn") or 0) if link.get("parent") else 0
