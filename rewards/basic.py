"""The plain specs: weighted channel sums, outcome placement, and sums of specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agentgym.records import Episode
from rewards.base import (
    RewardSpec,
    RewardSpecError,
    add,
    check_number,
    from_dict,
    on_last_turn,
    outcome_channel,
    turn_channel,
)


@dataclasses.dataclass(frozen=True)
class Weighted(RewardSpec):
    """``r_t = sum_c w_c * channel_c[t]`` over turn channels.

    Usage::

        Weighted({"progress": 1.0, "format": 0.1})
    """

    type_name = "weighted"
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise RewardSpecError(
                f"Weighted needs a non-empty mapping of channel -> weight, got {self.weights!r}."
            )
        clean = {str(k): check_number(v, f"Weighted weight of channel {k!r}")
                 for k, v in self.weights.items()}
        object.__setattr__(self, "weights", clean)

    def rewards(self, episode: Episode) -> list[float]:
        """Weighted sum of the turn channels, per turn."""
        columns = [[w * v for v in turn_channel(episode, name)]
                   for name, w in self.weights.items()]
        return add(*columns)


@dataclasses.dataclass(frozen=True)
class Outcome(RewardSpec):
    """An outcome channel, times ``weight``, on the last turn (zeros before it)."""

    type_name = "outcome"
    channel: str = "success"
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", check_number(self.weight, "Outcome weight"))

    def rewards(self, episode: Episode) -> list[float]:
        """The weighted outcome on the last turn."""
        value = self.weight * outcome_channel(episode, self.channel)
        return on_last_turn(value, episode.num_turns)


@dataclasses.dataclass(frozen=True)
class Sum(RewardSpec):
    """``r_t = sum_k w_k * spec_k(episode)[t]`` (weights default to 1)."""

    type_name = "sum"
    terms: tuple[RewardSpec, ...] = ()
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        terms = tuple(from_dict(t) for t in self.terms)
        if not terms:
            raise RewardSpecError("Sum needs at least one term.")
        object.__setattr__(self, "terms", terms)
        if self.weights is not None:
            weights = tuple(check_number(w, f"Sum weight {i}") for i, w in enumerate(self.weights))
            if len(weights) != len(terms):
                raise RewardSpecError(
                    f"Sum has {len(terms)} terms but {len(weights)} weights; give one per term."
                )
            object.__setattr__(self, "weights", weights)

    def rewards(self, episode: Episode) -> list[float]:
        """The weighted element-wise sum of the terms."""
        weights = self.weights or (1.0,) * len(self.terms)
        return add(*([w * r for r in term(episode)] for w, term in zip(weights, self.terms)))

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``weights`` omitted when all 1."""
        data = super().to_dict()
        if self.weights is None:
            del data["weights"]
        return data
