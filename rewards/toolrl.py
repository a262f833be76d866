"""ToolRL's tool-call reward (arXiv 2504.13958; reference ``rlla.py``): format + correctness.

``R = R_format + R_correct`` (+ an optional think-length term). ``R_format`` is 1 when the
whole turn matches the layout the gold answer has (think, then tool_call and/or response,
each tag exactly once), else 0. ``R_correct`` in ``[min, max]`` (default ``[-3, 3]``)::

    gold has no <tool_call>                  -> 0
    prediction unparseable / tags missing    -> min
    prediction list == gold list             -> max
    else S = J(gold names, pred names)
             + sum_g max_{unused p, p.name == g.name} [J(keys_g, keys_p) + #{k: p[k] == g[k]}]
         R = (max - min) * S / S_max + min,   S_max = 1 + sum_g (1 + |params_g|)

``J`` is the multiset Jaccard index (1 when both sides are equal, 0 when one is empty).
Schedules (the paper's ablations): ``"two_stage"`` scales correctness by 1/3 before step 30
and halves format from step 30 on; ``"dynamic"`` moves the format range from [-2, 2] toward
[-1, 1] and the correctness range from [-2, 2] toward [-3, 3] over 150 steps.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from agentgym.records import Episode
from rewards.base import RewardSpec, RewardSpecError, check_number

Call = dict[str, Any]
_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def jaccard(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Multiset Jaccard index; 1 if equal, 0 if either side is empty."""
    ca, cb = Counter(a), Counter(b)
    if ca == cb:
        return 1.0
    if not ca or not cb:
        return 0.0
    common = sum((ca & cb).values())
    return common / (sum(ca.values()) + sum(cb.values()) - common)


def parse_tool_calls(text: str) -> list[Call] | None:
    """The calls in a turn's single ``<tool_call>`` block, one JSON object per line.

    Returns ``None`` when there is no block, more than one, or a line is not a call object.
    """
    blocks = _TOOL_CALL_BLOCK.findall(text)
    if len(blocks) != 1:
        return None
    calls = []
    for line in blocks[0].strip().splitlines():
        if not line.strip():
            continue
        try:
            call = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(call, dict) or "name" not in call:
            return None
        call.setdefault("arguments", {})
        if not isinstance(call["arguments"], dict):
            return None
        calls.append(call)
    return calls


def format_ok(response: str, gold: str) -> bool:
    """Whether ``response`` has the layout of ``gold`` (each tag exactly once, in order)."""
    has_call, has_resp = "<tool_call>" in gold, "<response>" in gold
    parts = [r"<think>.*?</think>"]
    tags = ["<think>", "</think>"]
    if has_call:
        parts.append(r"<tool_call>\n.*?\n</tool_call>")
        tags += ["<tool_call>", "</tool_call>"]
    if has_resp:
        parts.append(r"<response>.*?</response>")
        tags += ["<response>", "</response>"]
    pattern = "^" + r"\n".join(parts) + "$"
    return bool(re.match(pattern, response.strip(), re.DOTALL)) and all(
        response.count(tag) == 1 for tag in tags)


def match_score(gold: list[Call], pred: list[Call]) -> tuple[float, float]:
    """``(S, S_max)``: name overlap plus, per gold call, its best unused same-name match."""
    score = jaccard([g["name"] for g in gold], [p["name"] for p in pred])
    used: set[int] = set()
    for g in gold:
        best, best_i = 0.0, None
        for i, p in enumerate(pred):
            if i in used or p["name"] != g["name"]:
                continue
            g_args, p_args = g["arguments"], p["arguments"]
            value = jaccard(list(g_args), list(p_args)) + sum(
                1 for k in g_args if k in p_args and p_args[k] == g_args[k])
            if best_i is None or value > best:
                best, best_i = value, i
        if best_i is not None:
            used.add(best_i)
            score += best
    s_max = 1 + sum(1 + len(g["arguments"]) for g in gold)
    return score, s_max


def correctness(response: str, gold: str, low: float = -3.0, high: float = 3.0) -> float:
    """``R_correct`` of one turn, in ``[low, high]``."""
    gold_calls = parse_tool_calls(gold)
    if "<tool_call>" not in gold or gold_calls is None:
        return 0.0
    pred_calls = parse_tool_calls(response)
    if pred_calls is None:
        return low
    if pred_calls == gold_calls:
        return high
    score, s_max = match_score(gold_calls, pred_calls)
    return (high - low) * score / s_max + low


Schedule = Literal["none", "two_stage", "dynamic"]


@dataclasses.dataclass(frozen=True)
class ToolCallReward(RewardSpec):
    """ToolRL's per-turn reward, scoring each turn's action against a gold answer.

    Named ``ToolCallReward`` (the issue called it ``ToolCall``) so it is never confused with
    ``agentgym.ToolCall``, the action object.

    Args:
        gold_key: The turn-info key holding the gold answer text (the env's expert action,
            ``<tool_call>`` JSON lines and/or ``<response>``).
        correct_max: Top of the correctness range; the bottom is ``-correct_max``
            (3 by default; the ``CORRECTMAX1`` ablation is 1).
        schedule: ``"none"``, ``"two_stage"`` or ``"dynamic"`` (see the module docstring).
        training_step: The current training step, for the schedules.
        length_target: If set, adds ``min(1, words in <think> / length_target)``.
    """

    type_name = "tool_call"
    gold_key: str = "expert_action"
    correct_max: float = 3.0
    schedule: Schedule = "none"
    training_step: int = 0
    length_target: int | None = None

    def __post_init__(self) -> None:
        if self.schedule not in ("none", "two_stage", "dynamic"):
            raise RewardSpecError(
                f"ToolCallReward schedule must be 'none', 'two_stage' or 'dynamic'; "
                f"got {self.schedule!r}.")
        object.__setattr__(self, "correct_max", check_number(self.correct_max, "correct_max"))

    def ranges(self) -> tuple[tuple[float, float], tuple[float, float], float]:
        """``((format_min, format_max), (correct_min, correct_max), correct_scale)`` now."""
        s, top = self.training_step, self.correct_max
        if self.schedule == "dynamic":
            return ((min(-1.0, -2 + 2 * s / 150), max(1.0, 2 - s / 150)),
                    (max(-top, -2 - s / 150), min(top, 2 + s / 150)), 1.0)
        if self.schedule == "two_stage":
            return ((0.0, 0.5 if s >= 30 else 1.0), (-top, top), 1 / 3 if s < 30 else 1.0)
        return (0.0, 1.0), (-top, top), 1.0

    def score(self, response: str, gold: str) -> float:
        """The reward of one turn."""
        (f_low, f_high), (c_low, c_high), scale = self.ranges()
        total = (f_high if format_ok(response, gold) else f_low)
        total += scale * correctness(response, gold, c_low, c_high)
        if self.length_target:
            think = _THINK_BLOCK.search(response)
            words = len(think.group(1).split()) if think else 0
            total += min(1.0, words / self.length_target)
        return total

    def rewards(self, episode: Episode) -> list[float]:
        """Each turn's action scored against ``turn.info[gold_key]``."""
        out = []
        for turn in episode.turns:
            gold = turn.info.get(self.gold_key)
            if not isinstance(gold, str):
                raise RewardSpecError(
                    f"Turn {turn.index} of episode {episode.episode_id} has no gold answer "
                    f"under info[{self.gold_key!r}] (found {gold!r}); the turn info has: "
                    f"{', '.join(sorted(turn.info)) or '(nothing)'}.")
            out.append(self.score(turn.action, gold))
        return out
