"""Gated rewards: a reward counts only when the rewards above it pass their thresholds.

One rule serves both papers' forms. Levels are ordered by priority; level ``k`` has a
per-turn reward ``r_k`` (any spec), a weight ``w_k`` and, optionally, a threshold ``d_k``::

    R_k   = sum_t r_k[t]                               (the level's episode total)
    m_k   = prod_{j < k} 1[R_j >= d_j]                 (every level above passed; m_0 = 1)
    r[t]  = sum_k m_k * w_k * r_k[t]

* :class:`GatedAccumulation` (G-RA, arXiv 2508.10548): high-level outcome channels first,
  the immediate (turn-level) reward last; ``r_high`` always counts and the immediate rewards
  count only when the outcome reaches the threshold. A timeout with no submit has a low
  outcome, so its gate is shut.
* :class:`Hierarchy` (ChatShopBuddy-style hierarchical reward modelling): any levels, each
  counted only when every level above it passed.

The paper leaves ``>=`` vs ``>`` open; ``comparison`` selects it (default ``>=``, as the
secondary sources write it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from agentgym.records import Episode
from rewards.base import RewardSpec, RewardSpecError, check_number, from_dict
from rewards.basic import Outcome, Sum

Comparison = Literal[">=", ">"]


def _passes(total: float, threshold: float | None, comparison: str) -> bool:
    if threshold is None:
        return True
    return total >= threshold if comparison == ">=" else total > threshold


@dataclasses.dataclass(frozen=True)
class Level:
    """One level of a gated reward: its reward spec, weight and pass threshold."""

    reward: RewardSpec
    threshold: float | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward", from_dict(self.reward))
        object.__setattr__(self, "weight", check_number(self.weight, "Level weight"))
        if self.threshold is not None:
            object.__setattr__(self, "threshold", check_number(self.threshold, "threshold"))


def gated_sum(levels: Sequence[Level], comparison: str, episode: Episode) -> list[float]:
    """``r[t] = sum_k m_k * w_k * r_k[t]`` with ``m_k`` the product of the gates above ``k``."""
    total = [0.0] * episode.num_turns
    open_gate = True
    for level in levels:
        per_turn = level.reward(episode)
        if open_gate:
            total = [a + level.weight * b for a, b in zip(total, per_turn)]
        open_gate = open_gate and _passes(sum(per_turn), level.threshold, comparison)
    return total


def ungated_sum(levels: Sequence[Level]) -> RewardSpec:
    """The levels' weighted sum with every gate open."""
    return Sum(terms=tuple(lv.reward for lv in levels), weights=tuple(lv.weight for lv in levels))


def _check_comparison(comparison: str) -> None:
    if comparison not in (">=", ">"):
        raise RewardSpecError(f"comparison must be '>=' or '>', got {comparison!r}.")


@dataclasses.dataclass(frozen=True)
class Hierarchy(RewardSpec):
    """Levels in priority order; a level's reward counts only when every level above passed.

    Usage::

        Hierarchy(levels=(
            Level(Outcome("correct"), threshold=1.0),          # L1: basic accuracy
            Level(Outcome("persuasive"), threshold=0.5, weight=0.5),
            Level(Weighted({"tool_efficiency": 1.0}), weight=0.2),
        ))
    """

    type_name = "hierarchy"
    levels: tuple[Level, ...] = ()
    comparison: Comparison = ">="

    def __post_init__(self) -> None:
        levels = tuple(lv if isinstance(lv, Level) else Level(**lv) for lv in self.levels)
        if not levels:
            raise RewardSpecError("Hierarchy needs at least one level.")
        object.__setattr__(self, "levels", levels)
        _check_comparison(self.comparison)

    def rewards(self, episode: Episode) -> list[float]:
        """The gated sum of the levels."""
        return gated_sum(self.levels, self.comparison, episode)

    def ungated(self) -> RewardSpec:
        """The same levels summed with no gates (the baseline the gates guard against)."""
        return ungated_sum(self.levels)


@dataclasses.dataclass(frozen=True)
class GatedAccumulation(RewardSpec):
    """G-RA: ``r_high`` on the last turn; immediate rewards count only if the gate opens.

    Single gate: ``high="resolved", threshold=1.0``. Priority-ordered multi-level form:
    ``high=("submitted", "resolved"), threshold=(1.0, 1.0)``: each outcome counts only when
    the ones before it passed, and the immediate rewards only when all of them passed.

    Usage::

        GatedAccumulation(high="resolved", threshold=1.0,
                          immediate=Weighted({"format": 0.1, "tool_valid": 0.1}))
    """

    type_name = "gated"
    high: str | tuple[str, ...] = "success"
    threshold: float | tuple[float, ...] = 1.0
    immediate: RewardSpec | Mapping[str, Any] | None = None
    comparison: Comparison = ">="
    high_weight: float = 1.0

    def __post_init__(self) -> None:
        highs = (self.high,) if isinstance(self.high, str) else tuple(self.high)
        thresholds = ((self.threshold,) if not isinstance(self.threshold, (list, tuple))
                      else tuple(self.threshold))
        if len(highs) != len(thresholds):
            raise RewardSpecError(
                f"GatedAccumulation has {len(highs)} high-level channel(s) but "
                f"{len(thresholds)} threshold(s); give one threshold per channel."
            )
        if self.immediate is None:
            raise RewardSpecError("GatedAccumulation needs an 'immediate' spec (the turn rewards).")
        object.__setattr__(self, "high", highs[0] if len(highs) == 1 else highs)
        thresholds = tuple(check_number(t, "threshold") for t in thresholds)
        object.__setattr__(self, "threshold", thresholds[0] if len(thresholds) == 1
                           else thresholds)
        object.__setattr__(self, "immediate", from_dict(self.immediate))
        _check_comparison(self.comparison)

    def levels(self) -> tuple[Level, ...]:
        """The gate as hierarchy levels: the outcomes in priority order, then the immediate."""
        highs = (self.high,) if isinstance(self.high, str) else self.high
        thresholds = self.threshold if isinstance(self.threshold, tuple) else (self.threshold,)
        outcome_levels = tuple(Level(Outcome(h), threshold=t, weight=self.high_weight)
                               for h, t in zip(highs, thresholds))
        assert isinstance(self.immediate, RewardSpec)  # __post_init__ built it
        return (*outcome_levels, Level(self.immediate))

    def rewards(self, episode: Episode) -> list[float]:
        """The gated sum of the outcome levels and the immediate rewards."""
        return gated_sum(self.levels(), self.comparison, episode)

    def ungated(self) -> RewardSpec:
        """D-RA, the ungated baseline: ``r_high + sum_t r_low[t]``."""
        return ungated_sum(self.levels())
