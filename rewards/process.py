"""Process-reward transforms: PURE's min-form credit and PPR's ReNorm.

PURE (arXiv 2504.15275) replaces the summed return ``sum_{t'>=t} r_t'`` with the minimum
future reward ``min_{t'>=t} r_t'``, so one bad step cannot be hidden by good ones after it.
ReNorm (arXiv 2509.25598) centres process and outcome rewards around zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from agentgym.records import Episode
from rewards.base import RewardSpec, RewardSpecError, check_number, outcome_channel, turn_channel


def suffix_minima(values: list[float]) -> list[float]:
    """``m_t = min_{t' >= t} values[t']``."""
    out, running = [], math.inf
    for value in reversed(values):
        running = min(running, value)
        out.append(running)
    return out[::-1]


def softmin_weights(values: list[float], temperature: float) -> list[float]:
    """``w_j = softmax_j(-r_j / T)`` over the whole trajectory (numerically stable)."""
    scaled = [-v / temperature for v in values]
    top = max(scaled)
    exps = [math.exp(s - top) for s in scaled]
    total = sum(exps)
    return [e / total for e in exps]


@dataclasses.dataclass(frozen=True)
class MinForm(RewardSpec):
    """PURE's min-form credit over a per-turn process channel.

    * ``mode="conceptual"``: per-turn rewards ``r'_t = m_t - m_{t+1}`` (``m_{T+1} = 0``), with
      ``m_t`` the minimum of the future process rewards, so that with ``gamma = 1`` the return
      from turn ``t`` is exactly ``min_{t'>=t} r_t'``.
    * ``mode="softmax"`` (the reference code): ``r'_j = softmax_j(-r_j / T) * r_j`` over the
      whole trajectory (``T = 0.1``); the sum tends to ``min_j r_j`` as ``T -> 0``. As in the
      code, a step after the worst one gets almost no credit, not its own future minimum.
    """

    type_name = "min_form"
    channel: str = "process"
    mode: Literal["conceptual", "softmax"] = "conceptual"
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in ("conceptual", "softmax"):
            raise RewardSpecError(f"MinForm mode must be 'conceptual' or 'softmax', got "
                                  f"{self.mode!r}.")
        temperature = check_number(self.temperature, "temperature")
        if temperature <= 0:
            raise RewardSpecError(f"temperature must be > 0, got {temperature}.")
        object.__setattr__(self, "temperature", temperature)

    def rewards(self, episode: Episode) -> list[float]:
        """Min-form per-turn rewards."""
        values = turn_channel(episode, self.channel)
        if self.mode == "softmax":
            weights = softmin_weights(values, self.temperature)
            return [w * v for w, v in zip(weights, values)]
        minima = suffix_minima(values) + [0.0]
        return [minima[t] - minima[t + 1] for t in range(len(values))]


@dataclasses.dataclass(frozen=True)
class ReNorm(RewardSpec):
    """``r^ = (r_p - 1/2) + (r_o - 1/2)``: process and outcome rewards centred on zero.

    Process rewards ``r_p`` (per turn, in [0, 1]) are centred on every turn. Where the
    outcome ``r_o`` goes is not settled by the paper, so ``outcome_on`` chooses:
    ``"last"`` (default) adds ``r_o - 1/2`` once, on the last turn; ``"every"`` adds it to
    every turn (``r^_t = r_p,t + r_o - 1``, the reviewers' per-step reading).
    """

    type_name = "renorm"
    process: str = "process"
    outcome: str = "success"
    outcome_on: Literal["last", "every"] = "last"

    def __post_init__(self) -> None:
        if self.outcome_on not in ("last", "every"):
            raise RewardSpecError(f"ReNorm outcome_on must be 'last' or 'every', got "
                                  f"{self.outcome_on!r}.")

    def rewards(self, episode: Episode) -> list[float]:
        """Centred process rewards plus the centred outcome."""
        centred = [p - 0.5 for p in turn_channel(episode, self.process)]
        outcome = outcome_channel(episode, self.outcome) - 0.5
        if self.outcome_on == "every":
            return [c + outcome for c in centred]
        centred[-1] += outcome
        return centred
