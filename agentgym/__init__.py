"""agentgym: multi-turn environments for training LLM agents with reinforcement learning.

Usage::

    import agentgym

    env = agentgym.make("TextWorld-v0", preset="easy")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(info["expert_action"])
"""

from agentgym.core import AgentEnv, EnvState, Task, Transition
from agentgym.errors import (
    AgentGymError,
    EnvClosed,
    EpisodeOver,
    InvalidOptionError,
    MissingDependencyError,
    PolicyError,
    RecordError,
    ResetNeeded,
    SnapshotError,
    TaskNotFoundError,
    UnknownEnvError,
)
from agentgym.policies import (
    Conversation,
    ExpertPolicy,
    HumanPolicy,
    NoisyExpertPolicy,
    OpenAIChatPolicy,
    Policy,
    RandomPolicy,
)
from agentgym.pool import EnvPool, Pool, PoolResult
from agentgym.protocols import (
    CommandToolProtocol,
    ParsedAction,
    TagProtocol,
    ToolCall,
    ToolCallProtocol,
)
from agentgym.records import SCHEMA_VERSION, Episode, Outcome, Turn
from agentgym.registry import EnvSpec, list_envs, make, register
from agentgym.rollout import arollout, rollout, run_episode, tree_rollout
from agentgym.snapshots import RemoteSnapshot, Snapshot
from agentgym.store import EpisodeWriter, iter_episodes, read_episodes, write_episodes
from agentgym.summary import summarize, summary_table
from agentgym.tree import Tree, TreeStats

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION", "AgentEnv", "AgentGymError", "CommandToolProtocol", "Conversation",
    "EnvClosed", "EnvPool", "EnvSpec", "EnvState", "Episode", "EpisodeOver", "EpisodeWriter",
    "ExpertPolicy", "HumanPolicy", "InvalidOptionError", "MissingDependencyError",
    "NoisyExpertPolicy",
    "OpenAIChatPolicy", "Outcome", "ParsedAction", "Policy", "PolicyError", "Pool",
    "PoolResult", "RandomPolicy",
    "RecordError", "RemoteSnapshot", "ResetNeeded", "Snapshot", "SnapshotError",
    "TagProtocol", "Task", "TaskNotFoundError", "ToolCall",
    "ToolCallProtocol", "Transition", "Tree", "TreeStats", "Turn", "UnknownEnvError",
    "arollout", "iter_episodes",
    "list_envs",
    "make", "read_episodes", "register", "rollout", "run_episode", "summarize", "summary_table",
    "tree_rollout", "write_episodes",
]
