"""Hand-built episodes for the reward tests."""

from __future__ import annotations

from agentgym.records import Episode, Outcome, Turn


def episode_of(channels, outcome=None, actions=None, infos=None, success=None):
    """An episode whose turn i has reward channels ``channels[i]``."""
    n = len(channels)
    actions = actions or ["<action>x</action>"] * n
    infos = infos or [{} for _ in range(n)]
    turns = [Turn(index=i, observation=f"o{i}", action=actions[i], reward_channels=dict(c),
                  info=dict(infos[i])) for i, c in enumerate(channels)]
    outcome = dict(outcome or {})
    won = bool(outcome.get("success", 0) >= 1) if success is None else success
    return Episode(env_id="Test-v0", task_id="t", turns=turns,
                   outcome=Outcome(success=won, channels=outcome))
