"""A client for ``agentgym serve``: an :class:`~agentgym.core.AgentEnv` whose env runs elsewhere.

``agentgym.make("remote:http://host:port/TextWorld-v0")`` returns one; rollouts cannot tell it
from a local env. Errors the server raises come back as the same agentgym exceptions.
"""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium

from agentgym import errors
from agentgym.core import AgentEnv, EnvState, Task
from agentgym.errors import AgentGymError, InvalidOptionError, SnapshotError
from agentgym.protocols import ActionProtocol, ToolCall
from agentgym.snapshots import RemoteSnapshot


class RemoteError(AgentGymError, ConnectionError):
    """The env server cannot be reached (the message names its URL)."""


class RemoteProtocol(ActionProtocol):
    """The server env's protocol: parsing happens there; ``encode`` asks it."""

    name = "remote"

    def __init__(self, env: RemoteEnv) -> None:
        self.env = env

    def encode(self, command: str | ToolCall) -> str:
        """Write ``command`` as action text, as the server env's protocol does."""
        payload = command.to_dict() if isinstance(command, ToolCall) else command
        return self.env.request("POST", "encode", {"command": payload})["text"]


class RemoteEnv(AgentEnv):
    """An env served by ``agentgym serve``, in its own session.

    Args:
        url: ``http://host:port/ENV_ID``.
        timeout: Seconds per request.
        token: The server's bearer token (default: ``AGENTGYM_TOKEN``).
    """

    def __init__(self, url: str, timeout: float = 60.0, token: str | None = None) -> None:
        import httpx

        base, _, env_id = url.rstrip("/").rpartition("/")
        if not base.startswith(("http://", "https://")) or not env_id:
            raise InvalidOptionError(
                f"Expected a remote env URL like http://host:port/TextWorld-v0, got {url!r}.")
        super().__init__(protocol=RemoteProtocol(self))
        self.env_id = env_id
        token = token or os.environ.get("AGENTGYM_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self._http = httpx.Client(base_url=base, timeout=timeout, headers=headers)
        try:
            served = self._call("GET", "/health").json().get("env_id")
        except RemoteError:
            self._http.close()
            raise
        if served != env_id:
            self._http.close()
            raise InvalidOptionError(f"{base} serves {served!r}, not {env_id!r}; use "
                                     f"{base}/{served}.")
        opened = self._call("POST", "/sessions")
        self._raise_for(opened)
        self.session = opened.json()["session"]
        self._system_prompt = opened.json()["system_prompt"]

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the session's endpoint ``path``; raise the server's error as ours."""
        response = self._call(method, f"/sessions/{self.session}/{path}".rstrip("/"), body)
        self._raise_for(response)
        return response.json()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            return self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise RemoteError(f"Cannot reach the env server at {self.url} "
                              f"({type(exc).__name__}: {exc}); is `agentgym serve` running "
                              "there?") from None

    @staticmethod
    def _raise_for(response: Any) -> None:
        if response.status_code == 200:
            return
        try:
            payload = response.json()
            kind, message = payload["error"], payload["message"]
        except (ValueError, KeyError, TypeError):
            raise AgentGymError(f"Server answered HTTP {response.status_code}: "
                                f"{response.text[:300]}") from None
        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, AgentGymError) \
                and cls is not errors.MissingDependencyError:
            raise cls(message)
        raise AgentGymError(f"{kind}: {message}")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        """Reset the remote env (same contract as :meth:`AgentEnv.reset`)."""
        self._ensure_open()
        # the task is chosen by the server's generator; this one is seeded too, as Gymnasium
        # promises ``env.np_random`` after ``reset(seed=...)``
        gymnasium.Env.reset(self, seed=seed)
        result = self.request("POST", "reset", {"seed": seed, "options": options})
        self.state, self.turn = EnvState.RUNNING, 0
        self.task_id = result["info"].get("task_id")
        self._current_task = Task(**result["task"]) if result.get("task") else None
        self._last_observation = result["observation"]
        return result["observation"], result["info"]

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the remote env (same contract as :meth:`AgentEnv.step`)."""
        self._ensure_open()
        payload = action.to_dict() if isinstance(action, ToolCall) else action
        if isinstance(payload, (bytes, bytearray)):
            payload = bytes(payload).decode("utf-8", errors="replace")
        r = self.request("POST", "step", {"action": payload})
        self.turn += 1
        if r["terminated"] or r["truncated"]:
            self.state = EnvState.DONE
        self._last_observation = r["observation"]
        return r["observation"], r["reward"], r["terminated"], r["truncated"], r["info"]

    def snapshot(self) -> RemoteSnapshot:  # type: ignore[override]
        """The served env's state, kept by the server (any of its sessions restores it)."""
        self._ensure_open()
        taken = self.request("POST", "snapshot")
        return RemoteSnapshot(self.url, taken["snapshot"], taken["turn"])

    def restore(self, snapshot: RemoteSnapshot) -> None:  # type: ignore[override]
        """Put the served env back into ``snapshot``'s state (taken on the same server)."""
        self._ensure_open()
        if not isinstance(snapshot, RemoteSnapshot) or snapshot.server != self.url:
            raise SnapshotError(f"{self.url} restores only snapshots taken from it, got "
                                f"{snapshot!r:.200}.")
        now = self.request("POST", "restore", {"snapshot": snapshot.id})
        self.task_id, self.turn, self.state = now["task_id"], now["turn"], EnvState(now["state"])
        self._current_task = Task(**now["task"])

    def system_prompt(self) -> str:
        """The server env's system prompt."""
        return self._system_prompt

    def _release(self) -> None:
        try:
            self.request("DELETE", "")
        except Exception:  # the server may be gone or have reaped us already
            pass
        self._http.close()
