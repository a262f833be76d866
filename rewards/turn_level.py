"""Dense turn-level rewards, placed as in the multi-turn practitioner's guide (meow-tea-taro)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from agentgym.records import Episode
from rewards.base import (
    RewardSpec,
    RewardSpecError,
    check_number,
    on_last_turn,
    outcome_channel,
    turn_channel,
)

Normalise = Literal["guide", "rewarding_turns", "max_total", "none"]
NORMALISE_MODES = ("guide", "rewarding_turns", "max_total", "none")


@dataclasses.dataclass(frozen=True)
class TurnLevel(RewardSpec):
    """``r~_k = r_k / N`` for every turn ``k``, plus an optional outcome on the last turn.

    ``N`` by ``normalise``:

    * ``"guide"`` (the reference code's choice): ``N = #{k : r_k > 0}`` when the episode was
      won (``won_channel`` >= 1), else ``N = max_total``;
    * ``"rewarding_turns"``: always ``N = #{k : r_k > 0}``;
    * ``"max_total"``: always ``N = max_total`` (TextWorld's maximum total is 1.0 per point);
    * ``"none"``: ``N = 1``.

    ``N = max(1, N)`` in every mode, as in the reference, so an episode with no rewarding turn
    keeps its (zero or negative) rewards unscaled.
    """

    type_name = "turn_level"
    channel: str = "progress"
    normalise: Normalise = "guide"
    max_total: float = 1.0
    won_channel: str = "success"
    outcome: str | None = None
    outcome_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.normalise not in NORMALISE_MODES:
            raise RewardSpecError(
                f"TurnLevel normalise must be one of {', '.join(NORMALISE_MODES)}; "
                f"got {self.normalise!r}."
            )
        object.__setattr__(self, "max_total", check_number(self.max_total, "max_total"))
        object.__setattr__(self, "outcome_weight",
                           check_number(self.outcome_weight, "outcome_weight"))

    def divisor(self, episode: Episode, values: list[float]) -> float:
        """The normaliser ``N`` of this episode."""
        rewarding = sum(v > 0 for v in values)
        if self.normalise == "guide":
            won = outcome_channel(episode, self.won_channel) >= 1.0
            n = rewarding if won else self.max_total
        elif self.normalise == "rewarding_turns":
            n = rewarding
        elif self.normalise == "max_total":
            n = self.max_total
        else:
            n = 1.0
        return max(1.0, float(n))

    def rewards(self, episode: Episode) -> list[float]:
        """Normalised turn rewards, plus the outcome on the last turn when asked."""
        values = turn_channel(episode, self.channel)
        n = self.divisor(episode, values)
        dense = [v / n for v in values]
        if self.outcome is None:
            return dense
        final = self.outcome_weight * outcome_channel(episode, self.outcome)
        return [d + f for d, f in zip(dense, on_last_turn(final, len(dense)))]
