"""Reward specs: turn an episode's recorded channels into per-turn scalar rewards.

One recorded run can be re-scored many ways::

    from rewards import GatedAccumulation, Weighted, from_yaml
    spec = GatedAccumulation(high="success", threshold=1.0, immediate=Weighted({"progress": 1.0}))
    per_turn = spec(episode)          # one float per turn
"""

from rewards.base import (
    MissingChannelError,
    RewardSpec,
    RewardSpecError,
    from_dict,
    from_yaml,
    outcome_channel,
    spec_types,
    to_yaml,
    turn_channel,
)
from rewards.basic import Outcome, Sum, Weighted
from rewards.gating import GatedAccumulation, Hierarchy, Level
from rewards.patch import patch_similarity, swe_rl_reward
from rewards.process import MinForm, ReNorm
from rewards.shop import ShopAction, rouge_l
from rewards.toolrl import ToolCallReward
from rewards.turn_level import TurnLevel

__all__ = [
    "GatedAccumulation", "Hierarchy", "Level", "MinForm", "MissingChannelError", "Outcome",
    "ReNorm", "RewardSpec", "RewardSpecError", "ShopAction", "Sum", "ToolCallReward",
    "TurnLevel", "Weighted", "from_dict", "from_yaml", "outcome_channel", "patch_similarity",
    "rouge_l", "spec_types", "swe_rl_reward", "to_yaml", "turn_channel",
]
