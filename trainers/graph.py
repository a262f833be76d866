"""The trajectory graph of one group: states as nodes, transitions as edges, merged.

Different trajectories of the same task often pass through the same states and take the
same steps (the same first moves, the same detour). The graph merges them: an edge is a
``(state, action, next state)`` triple, and it remembers every ``(episode, turn)`` that
traversed it and how those episodes ended. SALT averages advantages over these occurrences.

What counts as "the same state" is a :class:`StateMatcher`:

* :class:`StateKeyMatch` (default): the env's ``state_key``, an exact world-state fingerprint;
* :class:`ObservationMatch`: the observation text;
* :class:`PrefixMatch`: the whole history so far (the graph becomes a prefix tree);
* :class:`LastKMatch`: the last ``k`` (observation, action) pairs and the current observation.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import numpy as np

from agentgym.errors import EstimatorError
from agentgym.records import Episode

_PARSED, _STATE_KEY = attrgetter("parsed_action"), attrgetter("state_key")
_NONE_HASH = hash(None)


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def action_texts(turns: Iterable[Any]) -> list[str]:
    """Each action as matched: the parsed command, or the raw text of an invalid action.

    Read in one C-level pass (``attrgetter``), the invalid ones mended after: SALT reads
    whole batches.
    """
    turns = turns if isinstance(turns, list) else list(turns)
    texts = list(map(_PARSED, turns))
    if None not in texts:
        return texts
    return [text if text is not None else f"<invalid>{turn.action}"
            for text, turn in zip(texts, turns)]


def action_hashes(turns: list[Any]) -> np.ndarray:
    """64-bit hashes of :func:`action_texts` of ``turns``, in one C-level pass."""
    hashes = np.fromiter(map(hash, map(_PARSED, turns)), np.int64, len(turns))
    for i in np.flatnonzero(hashes == _NONE_HASH):  # invalid actions: their raw text
        if turns[i].parsed_action is None:
            hashes[i] = hash(action_text(turns[i]))
    return hashes


def state_hashes(matcher: StateMatcher, episodes: Sequence[Episode],
                 turns: list[Any] | None = None) -> np.ndarray:
    """64-bit hashes of the states ``s_0 .. s_T`` of each episode with turns, concatenated.

    ``turns``: every turn of ``episodes`` in order, when the caller has the list already.
    A matcher may do this for a whole batch itself (``matcher.state_hashes``).
    """
    batched = getattr(matcher, "state_hashes", None)
    if batched is not None:
        return batched(episodes, turns)
    states = [matcher.states(e) for e in episodes if e.turns]
    return np.fromiter(map(hash, itertools.chain.from_iterable(states)), np.int64,
                       sum(map(len, states)))


def action_text(turn: Any) -> str:
    """:func:`action_texts` of one turn."""
    return action_texts((turn,))[0]


class StateMatcher(Protocol):
    """Names the states ``s_0 .. s_T`` an episode passed through."""

    def states(self, episode: Episode) -> Sequence[Hashable]:
        """``T + 1`` state ids: before each turn, and after the last."""


@dataclass(frozen=True)
class StateKeyMatch:
    """States are the env's ``state_key`` fingerprints (exact world state)."""

    def states(self, episode: Episode) -> Sequence[Hashable]:
        """``state_key`` before each turn, then the last turn's ``next_state_key``."""
        keys = [*map(_STATE_KEY, episode.turns), episode.turns[-1].next_state_key]
        if None in keys:
            raise EstimatorError(
                f"Episode {episode.episode_id} ({episode.env_id}) has turns without a "
                "state_key; match on observations instead (ObservationMatch())."
            )
        return keys

    def state_hashes(self, episodes: Sequence[Episode],
                     turns: list[Any] | None = None) -> np.ndarray:
        """:func:`state_hashes` of a whole batch, reading every turn once in C."""
        played = [e for e in episodes if e.turns]
        if turns is None:
            turns = list(itertools.chain.from_iterable(e.turns for e in played))
        ends = np.cumsum([len(e.turns) + 1 for e in played]) - 1  # each one's last state
        last = np.zeros(len(turns) + len(played), bool)
        last[ends] = True
        hashes = np.empty(len(last), np.int64)
        hashes[~last] = np.fromiter(map(hash, map(_STATE_KEY, turns)), np.int64, len(turns))
        hashes[last] = [hash(e.turns[-1].next_state_key) for e in played]
        if (hashes == _NONE_HASH).any():  # a missing state_key: say which episode
            for episode in played:
                self.states(episode)
        return hashes


@dataclass(frozen=True)
class ObservationMatch:
    """States are the observation texts."""

    def states(self, episode: Episode) -> Sequence[Hashable]:
        """Each turn's observation, then the final observation."""
        texts = [t.observation for t in episode.turns] + [episode.final_observation]
        return [_digest(text) for text in texts]


@dataclass(frozen=True)
class PrefixMatch:
    """States are whole histories: the instruction, then every observation and action."""

    def states(self, episode: Episode) -> Sequence[Hashable]:
        """A running digest of the history before each turn and after the last."""
        running = _digest(episode.instruction, episode.turns[0].observation)
        states = [running]
        for turn, nxt in zip(episode.turns, _next_observations(episode)):
            running = _digest(running, action_text(turn), nxt)
            states.append(running)
        return states


@dataclass(frozen=True)
class LastKMatch:
    """States are the last ``k`` (observation, action) pairs plus the current observation."""

    k: int = 1

    def states(self, episode: Episode) -> Sequence[Hashable]:
        """A digest of the recent window before each turn and after the last."""
        observations = [t.observation for t in episode.turns] + [episode.final_observation]
        actions = action_texts(episode.turns)
        states = []
        for t, observation in enumerate(observations):
            window = [p for u in range(max(0, t - self.k), t)
                      for p in (observations[u], actions[u])]
            states.append(_digest(*window, observation))
        return states


def _next_observations(episode: Episode) -> list[str]:
    return [t.observation for t in episode.turns[1:]] + [episode.final_observation]


@dataclass(frozen=True)
class Edge:
    """One merged transition and everything that traversed it."""

    source: Hashable
    action: str
    target: Hashable
    occurrences: tuple[tuple[int, int], ...]
    """``(episode index within the group, turn index)`` of every traversal."""

    def trajectories(self) -> list[int]:
        """The distinct episodes that traversed the edge."""
        return sorted({i for i, _ in self.occurrences})


EdgeKey = tuple[Hashable, str, Hashable]


@dataclass
class TrajectoryGraph:
    """The merged graph of one group of episodes.

    Attributes:
        occurrences: Edge key ``(source, action, target)`` -> every ``(episode, turn)`` that
            traversed it (episode indices within the group).
        step_edges: ``step_edges[i][t]`` is the key of the edge episode ``i`` took at turn
            ``t``.
        successes: Whether each episode succeeded.
    """

    occurrences: dict[EdgeKey, list[tuple[int, int]]]
    step_edges: list[list[EdgeKey]]
    successes: list[bool]

    @property
    def edges(self) -> dict[EdgeKey, Edge]:
        """Every edge as an :class:`Edge` (built on demand; SALT reads ``occurrences``)."""
        return {key: Edge(*key, tuple(occ)) for key, occ in self.occurrences.items()}

    @property
    def nodes(self) -> set[Hashable]:
        """Every state that appears in the graph."""
        return {key[0] for key in self.occurrences} | {key[2] for key in self.occurrences}

    def shared(self, i: int, t: int) -> int:
        """How many episodes traversed the edge episode ``i`` took at turn ``t``."""
        return len({j for j, _ in self.occurrences[self.step_edges[i][t]]})

    def contested_steps(self) -> int:
        """Steps on an edge that both a winning and a losing episode took.

        Only there can step-level credit differ from the episode's: elsewhere SALT's edge
        mean is every traversal's own outcome.
        """
        return sum(len(occurrences) for occurrences in self.occurrences.values()
                   if len({self.successes[j] for j, _ in occurrences}) == 2)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for viewers: nodes, edges with counts and the outcomes through them."""
        ids = {node: n for n, node in enumerate(sorted(self.nodes, key=str))}
        return {
            "nodes": [{"id": ids[node], "state": str(node)} for node in ids],
            "edges": [
                {"source": ids[e.source], "target": ids[e.target], "action": e.action,
                 "traversals": len(e.occurrences), "trajectories": e.trajectories(),
                 "successes": sum(self.successes[i] for i in e.trajectories())}
                for e in self.edges.values()
            ],
            "trajectories": len(self.step_edges),
        }


def build_graph(episodes: Sequence[Episode], matcher: StateMatcher | None = None
                ) -> TrajectoryGraph:
    """Merge the transitions of one group's episodes into a :class:`TrajectoryGraph`."""
    matcher = matcher or StateKeyMatch()
    occurrences: dict[EdgeKey, list[tuple[int, int]]] = {}
    step_edges = []
    for i, episode in enumerate(episodes):
        states = matcher.states(episode) if episode.turns else []
        keys = [(states[t], action_text(turn), states[t + 1])
                for t, turn in enumerate(episode.turns)]
        for t, key in enumerate(keys):
            occurrences.setdefault(key, []).append((i, t))
        step_edges.append(keys)
    return TrajectoryGraph(occurrences, step_edges, [e.outcome.success for e in episodes])
