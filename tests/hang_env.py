"""``Hang-v0``: a test env whose ``hang`` command never returns (as a stuck engine would)."""

from __future__ import annotations

import threading
from typing import Any

from agentgym.core import AgentEnv, Transition
from agentgym.protocols import TagProtocol
from agentgym.registry import EnvSpec, register


class HangEnv(AgentEnv):
    """Answers ``ok``; ``hang`` blocks its thread for good (releasing the GIL, like I/O)."""

    description = "A test env."
    engines_started = 0

    def __init__(self, max_turns: int | None = 10) -> None:
        super().__init__(protocol=TagProtocol(), max_turns=max_turns)
        self.engine: object | None = None

    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        if self.engine is None:
            self.engine = object()
            HangEnv.engines_started += 1
        return "Say ok.", "hang/0"

    def _apply(self, command: Any) -> Transition:
        if command == "hang":
            threading.Event().wait()
        return Transition(observation=f"you said {command}", channels={})

    def _abandon(self) -> None:
        self.engine = None

    def _instruction(self) -> str:
        return "Say ok."

    def _state_key(self) -> str:
        return "s"

    def _outcome(self) -> dict[str, float]:
        return {"success": 0.0}


register(EnvSpec("Hang-v0", "tests.hang_env:HangEnv", "a test env that can hang"))
