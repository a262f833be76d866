"""Snapshots: an env's whole state, to put back into it or into any twin of it.

``env.snapshot()`` returns a :class:`Snapshot`; ``env.restore(snapshot)`` puts this env, or
any env made with the same id and kwargs (in this process or another), back into exactly
that state, mid-episode or after its end: the same actions then give the same observations,
rewards, channels, ``info`` and termination as the first time.

Two ways to get there, named by ``env.snapshot_kind``:

``"native"``
    The family copies its own state (a search history, a shop's page, the engine's saved
    state). Restoring costs about as much as copying it.
``"replay"``
    Any deterministic env: reset to the same task with the same generator state, then replay
    the episode's actions. Restoring costs the episode's steps again.

A snapshot always carries the replay path (seed, generator state, actions), so a native
state that cannot leave its process (an engine handle) still restores elsewhere, by replay.
``snapshot_kind = None`` marks an env whose steps are not reproducible: ``snapshot()`` then
raises :class:`SnapshotError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentgym.errors import SnapshotError

__all__ = ["RemoteSnapshot", "Snapshot", "SnapshotError", "SnapshotKind"]

SnapshotKind = Literal["native", "replay"]


@dataclass(frozen=True)
class Snapshot:
    """An env's state at one moment of an episode (opaque to callers; picklable).

    Attributes:
        env_id: The env it was taken from (restoring into another id is refused).
        kind: How it restores (``"native"`` or ``"replay"``).
        task_id: The episode's task.
        reset_seed: The episode's reset seed.
        reset_rng: The env's generator state right after that reset's seeding.
        actions: Every action stepped since the reset, as given to ``step``.
        counters: The base env's own state (turn, invalid actions, lifecycle, last texts).
        rng: The env's generator state now.
        state_key: ``info["state_key"]`` now (a replay checks it got back there).
        native: The family's own state (``None`` for a replay snapshot).
        portable: Whether ``native`` survives pickling; if not, a pickled snapshot is a
            replay one.
    """

    env_id: str
    kind: SnapshotKind
    task_id: str
    reset_seed: int | None
    reset_rng: Mapping[str, Any]
    actions: tuple[Any, ...]
    counters: Mapping[str, Any]
    rng: Mapping[str, Any]
    state_key: str | None
    native: Any = field(default=None, repr=False)
    portable: bool = True

    def __repr__(self) -> str:
        return (f"Snapshot({self.env_id!r}, kind={self.kind!r}, task={self.task_id!r}, "
                f"turn={self.counters.get('turn')})")

    def __getstate__(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not self.portable:  # an engine handle stays home: elsewhere, this replays
            state.update(kind="replay", native=None, portable=True)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @property
    def turn(self) -> int:
        """Steps taken when it was taken."""
        return int(self.counters.get("turn", 0))


@dataclass(frozen=True)
class RemoteSnapshot:
    """A snapshot kept by an ``agentgym serve`` server, named by its id.

    Any session of that server restores it; the server keeps its most recent snapshots (a
    snapshot's contents never travel, so a client cannot hand the server code to unpickle).
    """

    server: str
    id: str
    turn: int
