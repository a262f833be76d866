"""Any agentgym env served to OpenEnv clients (``agentgym serve ENV --protocol openenv``).

OpenEnv (``openenv-core``) defines environments as typed actions, observations and state
served over HTTP and WebSocket; its clients (``GenericEnvClient``, or a typed ``EnvClient``
subclass, and TRL's environment support built on them) reset and step them. This module
wraps an agentgym env in OpenEnv's ``Environment`` interface, with these types:

* :class:`AgentGymAction`: ``text`` (what the agent wrote, parsed by the env's protocol),
  ``command`` (a bare command the server encodes in the env's protocol, for clients that
  do not know it: a TRL tool call), ``tool_call`` (``{"name": ..., "arguments": {...}}``
  for envs with native tool calls) or ``stop`` (end the episode where it stands, as if
  truncated: a trainer whose model stopped early);
* :class:`AgentGymObservation`: ``text``, ``done``, ``reward``, and what agentgym records
  besides: ``terminated``/``truncated``, the turn's reward ``channels``, ``state_key``,
  ``outcome`` (the outcome channels, on the observation that ends the episode only: never
  mid-episode, where it would be an oracle, e.g. SWE's hidden tests), ``info`` (JSON-safe)
  and, on reset, the ``system_prompt`` and ``task_id``;
* :class:`AgentGymState`: ``episode_id``, ``step_count``, ``env_id``, ``task_id``.

Each WebSocket session gets its own env instance (made with the served id and kwargs). A
malformed action is an observation (the env's own message), as everywhere in agentgym.
"""

from __future__ import annotations

import json
from typing import Any

from agentgym.errors import MissingDependencyError

try:
    from openenv.core.client_types import StepResult  # noqa: F401 (for openenv_client)
    from openenv.core.env_client import EnvClient  # noqa: F401 (for openenv_client)
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State
    from pydantic import Field
except ImportError as exc:  # pragma: no cover - the message names the extra
    raise MissingDependencyError("openenv-core", "openenv") from exc


class AgentGymAction(Action):
    """What the agent does: a text reply, or one native tool call."""

    text: str = Field("", description="The agent's reply, parsed by the env's protocol")
    command: str | None = Field(
        None, description="A bare command, encoded by the server in the env's protocol")
    tool_call: dict[str, Any] | None = Field(
        None, description="A native tool call {'name': str, 'arguments': {...}}")
    stop: bool = Field(False, description="End the episode here, as if truncated")


class AgentGymObservation(Observation):
    """What the env shows after a reset or a step."""

    text: str = Field("", description="The observation text")
    terminated: bool = Field(False, description="The task ended (solved or failed)")
    truncated: bool = Field(False, description="The turn budget ran out")
    channels: dict[str, float] = Field(default_factory=dict,
                                       description="This turn's named reward channels")
    state_key: str | None = Field(None, description="A fingerprint of the world state")
    outcome: dict[str, float] = Field(
        default_factory=dict, description="When the episode ends: its outcome channels")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info, JSON-safe")
    system_prompt: str = Field("", description="On reset: the env's system prompt")
    task_id: str = Field("", description="On reset: the task being played")


class AgentGymState(State):
    """Where the session's episode is."""

    env_id: str = ""
    task_id: str = ""


class OpenEnvAdapter(Environment):
    """One agentgym env behind OpenEnv's ``Environment`` interface."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session makes its own env

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
        import agentgym

        super().__init__()
        self.env = agentgym.make(env_id, **(env_kwargs or {}))
        self._state = AgentGymState(env_id=env_id)
        self._over = False  # ended by the env or stopped: steps answer so, the env is spared

    def reset(self, seed: int | None = None, episode_id: str | None = None,
              **options: Any) -> AgentGymObservation:
        """A new episode (``options`` are the env's reset options: ``split``, ``task_id``)."""
        text, info = self.env.reset(seed=seed, options=options or None)
        unwrapped: Any = self.env.unwrapped
        self._state = AgentGymState(episode_id=episode_id, step_count=0,
                                    env_id=self._state.env_id, task_id=unwrapped.task_id)
        self._over = False
        return AgentGymObservation(text=text, info=_json_safe(info),
                                   state_key=info.get("state_key"),
                                   system_prompt=self.env.system_prompt(),
                                   task_id=unwrapped.task_id)

    def step(self, action: AgentGymAction, timeout_s: float | None = None,
             **kwargs: Any) -> AgentGymObservation:
        """One turn of the episode."""
        from agentgym.protocols import ToolCall

        if self._over:
            return AgentGymObservation(text="The episode is over; reset to play again.",
                                       done=True)
        if action.stop:
            return self._stopped()
        command: Any = action.text
        if action.command is not None:
            command = self.env.protocol.encode(action.command)
        if action.tool_call is not None:
            call = action.tool_call
            command = ToolCall(str(call.get("name", "")), dict(call.get("arguments") or {}))
        text, reward, terminated, truncated, info = self.env.step(command)
        self._state.step_count += 1
        self._over = bool(terminated or truncated)
        return AgentGymObservation(
            text=text, reward=float(reward), done=bool(terminated or truncated),
            terminated=bool(terminated), truncated=bool(truncated),
            channels={k: float(v) for k, v in (info.get("reward_channels") or {}).items()},
            state_key=info.get("state_key"), info=_json_safe(info),
            outcome={k: float(v) for k, v in (info.get("outcome_channels") or {}).items()})

    def _stopped(self) -> AgentGymObservation:
        """End the episode as it stands; the outcome ending it here records."""
        unwrapped: Any = self.env.unwrapped
        self._over = True
        return AgentGymObservation(
            text="Stopped.", done=True, truncated=True, reward=0.0,
            outcome={k: float(v) for k, v in unwrapped.outcome_now().items()})

    @property
    def state(self) -> AgentGymState:
        """The session's episode id, step count, env and task."""
        return self._state

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()


def create_openenv_app(env_id: str, env_kwargs: dict[str, Any] | None = None,
                       max_sessions: int = 64) -> Any:
    """OpenEnv's FastAPI app serving ``env_id``: one env per WebSocket session."""
    from openenv.core.env_server.http_server import create_fastapi_app

    from agentgym.registry import spec

    spec(env_id)  # fail now, with the known ids
    return create_fastapi_app(lambda: OpenEnvAdapter(env_id, env_kwargs), AgentGymAction,
                              AgentGymObservation, max_concurrent_envs=max_sessions)


def serve_openenv(env_id: str, env_kwargs: dict[str, Any] | None = None,
                  host: str = "127.0.0.1", port: int = 8000, max_sessions: int = 64) -> None:
    """Serve ``env_id`` to OpenEnv clients until interrupted."""
    import uvicorn

    uvicorn.run(create_openenv_app(env_id, env_kwargs, max_sessions), host=host, port=port,
                log_level="warning")


# what the env knows about the answer: never sent to a client, which may be the agent itself
_HIDDEN = ("expert_action",)


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as plain JSON types (anything else as its text), the answer left out."""
    shown = {k: v for k, v in value.items() if k not in _HIDDEN}
    return json.loads(json.dumps(shown, default=str))
