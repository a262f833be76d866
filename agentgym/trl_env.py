"""agentgym envs as TRL environments: ``GRPOTrainer(environment_factory=trl_environment(...))``.

TRL's ``GRPOTrainer`` takes an ``environment_factory``: a class it makes one instance of per
rollout, whose ``reset(**example)`` starts an episode (the text it returns is appended to
the prompt), whose public methods are tools the model calls during generation, and whose
``get_reward()`` scores the finished rollout. :func:`trl_environment` builds that class for
any agentgym env:

* ``reset(seed=..., split=..., **_)``: the env's reset; returns the instruction and first
  observation. Dataset columns named ``seed`` and ``split`` choose the task.
* ``act(command)``: the one tool; plays ``command`` (encoded by the env's protocol) and
  returns what the env answers. A malformed command is an observation, as everywhere.
* ``get_reward()``: the episode's return under an agentgym reward spec (the env's own
  per-turn reward when none is given), computed from the recorded channels; an episode the
  model stopped before its end is scored as if truncated there.

What TRL cannot take: per-token advantages. Its GRPO gives every token of a completion the
same group-normalised advantage, so SALT's step-level credit does not reach it; per-episode
rewards (any spec, G-RA included) do.
"""

from __future__ import annotations

from typing import Any

import agentgym
from agentgym.chat import first_user_message
from agentgym.rollout import EpisodeRecorder


def trl_environment(env_id: str, reward: Any = None, **env_kwargs: Any) -> type:
    """A TRL environment class for ``env_id`` (made with ``env_kwargs``).

    Args:
        env_id: A registered agentgym env.
        reward: An agentgym reward spec (``Episode -> per-turn rewards``); ``None``: the
            env's own per-turn reward.
        **env_kwargs: For ``agentgym.make``.
    """

    class AgentGymEnvironment:
        """One rollout's agentgym env, for TRL."""

        def __init__(self) -> None:
            self.env = agentgym.make(env_id, **env_kwargs)
            self.recorder: EpisodeRecorder | None = None

        def reset(self, seed: int | None = None, split: str = "train", **_: Any) -> str:
            """Start the episode the example names; its instruction and first observation."""
            observation, info = self.env.reset(seed=seed, options={"split": split})
            self.recorder = EpisodeRecorder(env_id, self.env.system_prompt(),
                                            self.env.protocol.encode, seed=seed,
                                            group_id=None, history_window=None,
                                            metadata={"trainer": "trl"})
            self.recorder.begin(observation, info)
            return "\n\n" + first_user_message(info.get("instruction", ""), observation)

        def act(self, command: str) -> str:
            """Play one command in the environment and read what it answers.

            Args:
                command: The command to play, for example "go north" or "take the key".

            Returns:
                The environment's answer.
            """
            recorder = self._started()
            if recorder.done:
                return "The episode is over; nothing more happens."
            step = self.env.step(self.env.protocol.encode(command))
            recorder.record(command, step, 0.0, 0.0)
            return step[0]

        def get_reward(self) -> float:
            """The episode's return under the reward spec.

            A rollout the model ended before the env did is scored as it stands, as if
            truncated there (the env's outcome of the current state).
            """
            recorder = self._started()
            episode = recorder.finish()
            if not episode.turns:
                return 0.0  # no command played: nothing earned
            if not recorder.done:  # what truncation at this turn would have recorded
                episode.truncated = True
                unwrapped: Any = self.env.unwrapped
                episode.outcome.channels = unwrapped.outcome_now()
            per_turn = reward(episode) if reward is not None else [t.reward for t in
                                                                   episode.turns]
            return float(sum(per_turn))

        def _started(self) -> EpisodeRecorder:
            if self.recorder is None:
                self.reset()
            assert self.recorder is not None
            return self.recorder

    AgentGymEnvironment.__name__ = AgentGymEnvironment.__qualname__ = \
        "".join(ch for ch in env_id.title() if ch.isalnum()) + "Environment"
    return AgentGymEnvironment
