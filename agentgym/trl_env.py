"""agentgym envs as TRL environments: ``GRPOTrainer(environment_factory=trl_environment(...))``.

TRL's ``GRPOTrainer`` takes an ``environment_factory``: a class it makes one instance of per
rollout, whose ``reset(**example)`` starts an episode (the text it returns is appended to
the prompt), whose public methods are tools the model calls during generation, and whose
``get_reward()`` scores the finished rollout. :func:`trl_environment` builds that class for
any agentgym env, made in the trainer's process or served elsewhere
(``agentgym serve ENV --protocol openenv``, reached with ``base_url=``):

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
from agentgym.errors import InvalidOptionError
from agentgym.rollout import EpisodeRecorder

Step = tuple[str, float, bool, bool, dict[str, Any]]


class LocalEnv:
    """An agentgym env made in this process."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        self.env = agentgym.make(env_id, **env_kwargs)

    def reset(self, seed: int | None, split: str) -> tuple[str, dict[str, Any], str]:
        """The first observation, the info and the system prompt."""
        observation, info = self.env.reset(seed=seed, options={"split": split})
        return observation, info, self.env.system_prompt()

    def step(self, command: str) -> Step:
        """``command`` encoded by the env's protocol, played."""
        text, reward, terminated, truncated, info = self.env.step(
            self.env.protocol.encode(command))
        return text, float(reward), terminated, truncated, info

    def outcome_now(self) -> dict[str, float]:
        """The outcome channels if the episode ended now."""
        unwrapped: Any = self.env.unwrapped
        return unwrapped.outcome_now()


class ServedEnv:
    """An env served to OpenEnv clients (``agentgym serve ENV --protocol openenv``).

    One WebSocket session per instance, closed with it.
    """

    def __init__(self, base_url: str) -> None:
        import weakref

        from agentgym.openenv_client import AgentGymClient

        self.client = AgentGymClient(base_url=base_url).sync()
        self.client.connect()
        weakref.finalize(self, self.client.close)

    def reset(self, seed: int | None, split: str) -> tuple[str, dict[str, Any], str]:
        """The first observation, the info and the system prompt."""
        observation = self.client.reset(seed=seed, split=split).observation
        return observation.text, observation.info, observation.system_prompt

    def step(self, command: str) -> Step:
        """``command`` encoded by the served env's protocol, played there."""
        from agentgym.openenv_client import AgentGymAction

        observation = self.client.step(AgentGymAction(command=command)).observation
        info = {**observation.info, "reward_channels": observation.channels,
                "state_key": observation.state_key, "outcome_channels": observation.outcome}
        return (observation.text, float(observation.reward or 0.0), observation.terminated,
                observation.truncated, info)

    def outcome_now(self) -> dict[str, float]:
        """Stop the served episode here; the outcome channels that records."""
        from agentgym.openenv_client import AgentGymAction

        return dict(self.client.step(AgentGymAction(stop=True)).observation.outcome)


def trl_environment(env_id: str, reward: Any = None, *, base_url: str | None = None,
                    **env_kwargs: Any) -> type:
    """A TRL environment class for ``env_id`` (made with ``env_kwargs``).

    Args:
        env_id: A registered agentgym env.
        reward: An agentgym reward spec (``Episode -> per-turn rewards``); ``None``: the
            env's own per-turn reward.
        base_url: Where ``agentgym serve env_id --protocol openenv`` serves the env (its
            kwargs are the server's); ``None``: each rollout makes the env here.
        **env_kwargs: For ``agentgym.make`` (local envs only).
    """
    if base_url is not None and env_kwargs:
        raise InvalidOptionError(
            f"a served env has the server's kwargs; got {sorted(env_kwargs)} with "
            f"base_url={base_url!r}. Pass them to `agentgym serve` instead.")

    class AgentGymEnvironment:
        """One rollout's agentgym env, for TRL."""

        def __init__(self) -> None:
            self.env = ServedEnv(base_url) if base_url is not None else \
                LocalEnv(env_id, env_kwargs)
            self.recorder: EpisodeRecorder | None = None
            self.scored: float | None = None  # the return, once get_reward has ended it

        def reset(self, seed: int | None = None, split: str = "train", **_: Any) -> str:
            """Start the episode the example names; its instruction and first observation."""
            observation, info, system_prompt = self.env.reset(seed, split)
            self.scored = None
            self.recorder = EpisodeRecorder(env_id, system_prompt, str, seed=seed,
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
            if recorder.done or self.scored is not None:
                return "The episode is over; nothing more happens."
            step = self.env.step(command)
            recorder.record(command, step, 0.0, 0.0)
            return step[0]

        def get_reward(self) -> float:
            """The episode's return under the reward spec.

            A rollout the model ended before the env did is scored as it stands, as if
            truncated there (the env's outcome of the current state). Scoring ends the
            episode: asked again, the same return (the env is not stopped twice).
            """
            if self.scored is None:
                self.scored = self._score(self._started())
            return self.scored

        def _score(self, recorder: EpisodeRecorder) -> float:
            episode = recorder.finish()
            if not episode.turns:
                return 0.0  # no command played: nothing earned
            if not recorder.done:  # what truncation at this turn would have recorded
                episode.truncated = True
                episode.outcome.channels = self.env.outcome_now()
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
