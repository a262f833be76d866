"""Credit assignment and training: advantage estimators, trajectory graphs, tokenisation.

Usage::

    from trainers import SALT, GRPO, Batch
    batch = Batch.from_episodes(episodes, rewards=spec)    # spec: any rewards.RewardSpec
    advantages = SALT(base=GRPO())(batch)                  # one array of per-turn values each
"""

from trainers.batch import Batch, BatchError
from trainers.estimators import GRPO, RLOO, DrGRPO, Estimator, ReinforcePP, TurnGAE, Vine
from trainers.gigpo import GiGPO
from trainers.graph import (
    LastKMatch,
    ObservationMatch,
    PrefixMatch,
    StateKeyMatch,
    TrajectoryGraph,
    build_graph,
)
from trainers.salt import SALT
from trainers.tokenize import TokenizationError, TokenizedSequence, tokenize_episode

__all__ = [
    "GRPO", "RLOO", "SALT", "Batch", "BatchError", "DrGRPO", "Estimator", "GiGPO", "LastKMatch",
    "ObservationMatch", "PrefixMatch", "ReinforcePP", "StateKeyMatch", "TokenizationError",
    "TokenizedSequence", "TrajectoryGraph", "TurnGAE", "Vine", "build_graph", "tokenize_episode",
]
