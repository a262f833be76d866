"""A typed OpenEnv client for agentgym envs served with ``agentgym serve ENV --protocol openenv``.

``AgentGymClient`` is OpenEnv's ``EnvClient`` with agentgym's action and observation types,
so code written against OpenEnv (TRL's environment support among it) gets typed results::

    with AgentGymClient(base_url="http://127.0.0.1:8000").sync() as env:
        first = env.reset(seed=0)
        print(first.observation.system_prompt, first.observation.text)
        result = env.step(AgentGymAction(text="<action>go north</action>"))
        print(result.reward, result.done, result.observation.channels)

OpenEnv's ``GenericEnvClient`` works too, with plain dicts (``{"text": ...}``).
"""

from __future__ import annotations

from typing import Any

# through openenv_server: without openenv-core, a MissingDependencyError naming the extra
from agentgym.openenv_server import (
    AgentGymAction,
    AgentGymObservation,
    AgentGymState,
    EnvClient,
    StepResult,
)


class AgentGymClient(EnvClient[AgentGymAction, AgentGymObservation, AgentGymState]):
    """OpenEnv's client, typed for agentgym envs."""

    def _step_payload(self, action: AgentGymAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"})

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[AgentGymObservation]:
        observation = AgentGymObservation(**payload.get("observation", {}),
                                          reward=payload.get("reward"),
                                          done=bool(payload.get("done", False)))
        return StepResult(observation=observation, reward=payload.get("reward"),
                          done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> AgentGymState:
        return AgentGymState(**payload)
