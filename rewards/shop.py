"""Shop-R1's hierarchical action reward (arXiv 2507.17842): format, then type, then details.

The model writes ``{"rationale": ..., "action": {"type", "name", "text"}}``; the gold action
comes from the turn info. Per turn::

    unparseable JSON or a key missing     -> 0 (nothing else counts)
    format                                 0.5
    action type == gold type               0.3     (otherwise nothing below counts)
    click:            +0.2 if name given   + dars * ROUGE-L(name)
    type_and_submit:  +0.1 if name given   +0.1 if text given
                      + 0.1 * ROUGE-L(name) + dars * ROUGE-L(text)
    terminate:        nothing more (capped at 0.3 + format: why DARS exists)
    + alpha * self-certainty, if a ``certainty_channel`` was recorded (alpha = 0.005)

``dars`` is the difficulty-aware scale of the long-text terms. Our source notes a factor of
1000 but we found no primary text for it, so the default is 1.0; set it to follow the paper.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agentgym.records import Episode
from rewards.base import RewardSpec, RewardSpecError, check_number, turn_channel

ACTION_TYPES = ("click", "type_and_submit", "terminate")


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure over lower-cased whitespace tokens (LCS based)."""
    pred, ref = prediction.lower().split(), reference.lower().split()
    if not pred or not ref:
        return 0.0
    prev = [0] * (len(ref) + 1)
    for p in pred:
        row = [0]
        for j, r in enumerate(ref):
            row.append(prev[j] + 1 if p == r else max(prev[j + 1], row[j]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def parse_shop_output(text: str) -> dict[str, Any] | None:
    """The ``{"rationale", "action"}`` object, or ``None`` if the format is wrong."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict) or "rationale" not in data or "action" not in data:
        return None
    return data if isinstance(data["action"], dict) else None


def _gold_action(gold: Any) -> dict[str, Any]:
    data = json.loads(gold) if isinstance(gold, str) else gold
    return data.get("action", data) if isinstance(data, dict) else {}


@dataclasses.dataclass(frozen=True)
class ShopAction(RewardSpec):
    """Shop-R1's per-turn action reward against ``turn.info[gold_key]``."""

    type_name = "shop_action"
    gold_key: str = "gold_action"
    dars: float = 1.0
    certainty_channel: str | None = None
    alpha: float = 0.005

    def __post_init__(self) -> None:
        object.__setattr__(self, "dars", check_number(self.dars, "dars"))
        object.__setattr__(self, "alpha", check_number(self.alpha, "alpha"))

    def score(self, response: str, gold: Any) -> float:
        """The reward of one turn (without the self-certainty term)."""
        output = parse_shop_output(response)
        if output is None:
            return 0.0
        pred, want = output["action"], _gold_action(gold)
        total = 0.5
        kind = pred.get("type")
        if kind not in ACTION_TYPES or kind != want.get("type"):
            return total
        total += 0.3
        name, text = str(pred.get("name") or ""), str(pred.get("text") or "")
        gold_name, gold_text = str(want.get("name") or ""), str(want.get("text") or "")
        if kind == "click":
            total += 0.2 * bool(name) + self.dars * rouge_l(name, gold_name)
        elif kind == "type_and_submit":
            total += 0.1 * bool(name) + 0.1 * bool(text)
            total += 0.1 * rouge_l(name, gold_name) + self.dars * rouge_l(text, gold_text)
        return total

    def rewards(self, episode: Episode) -> list[float]:
        """Each turn's action scored against its gold action."""
        certainty = (turn_channel(episode, self.certainty_channel) if self.certainty_channel
                     else [0.0] * episode.num_turns)
        out = []
        for turn, c in zip(episode.turns, certainty):
            if self.gold_key not in turn.info:
                raise RewardSpecError(
                    f"Turn {turn.index} of episode {episode.episode_id} has no gold action "
                    f"under info[{self.gold_key!r}]; the turn info has: "
                    f"{', '.join(sorted(turn.info)) or '(nothing)'}.")
            out.append(self.score(turn.action, turn.info[self.gold_key]) + self.alpha * c)
        return out
