"""``agentgym serve ENV``: any registered env over HTTP, in sessions.

Endpoints (JSON):

=========================================  ===============================================
``POST /sessions``                          open a session: ``{"session", "env_id",
                                            "system_prompt"}`` (429 when full)
``POST /sessions/{id}/reset``               ``{"seed", "options"}`` -> ``{"observation", "info",
                                            "task"}`` (``env.task``: id, split, instruction,
                                            reference)
``POST /sessions/{id}/step``                ``{"action"}`` -> ``{"observation", "reward",
                                            "terminated", "truncated", "info"}``
``POST /sessions/{id}/encode``              ``{"command"}`` -> ``{"text"}`` (the env's protocol)
``POST /sessions/{id}/snapshot``            -> ``{"snapshot", "turn"}``: an id the server keeps
``POST /sessions/{id}/restore``             ``{"snapshot"}`` -> ``{"task_id", "turn",
                                            "state", "task"}`` (any session of the server)
``DELETE /sessions/{id}``                   close it
``GET /health``, ``GET /metrics``           liveness; sessions, steps, reaped, memory
``GET /docs``, ``GET /openapi.json``        the API, described by FastAPI (OpenAPI schema)
=========================================  ===============================================

An env error comes back as 400 ``{"error": <class name>, "message"}`` (404 for an unknown
session, 401 without the token, 413 for a body over ``max_request_bytes``, 429 when full),
and the client raises the same agentgym exception. Sessions idle longer than
``idle_timeout`` are closed by a reaper thread, so clients that vanish leak nothing; the
reaper and shutdown never wait on a session whose step is still running.

Binding to anything but loopback exposes every session to whoever reaches the port: they can
open sessions up to the limit and step the env (for SWE-v0, run commands in its sandbox). Pass
``token`` (``agentgym serve --token``, or ``AGENTGYM_TOKEN``) so that only clients sending
``Authorization: Bearer <token>`` are served, and put TLS in front of it across networks.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' hints at runtime.
import hmac
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import (
    AgentGymError,
    InvalidOptionError,
    MissingDependencyError,
    SnapshotError,
)
from agentgym.protocols import ToolCall
from agentgym.snapshots import Snapshot


@dataclass
class Session:
    """One env and when it was last used."""

    env: Any
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


def rss_mb() -> float:
    """This process's resident memory in MB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class SessionStore:
    """The open sessions, with a session limit and idle reaping."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], max_sessions: int,
                 idle_timeout: float) -> None:
        self.env_id, self.env_kwargs = env_id, env_kwargs
        self.max_sessions, self.idle_timeout = max_sessions, idle_timeout
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.counts = {"created": 0, "closed": 0, "reaped": 0, "steps": 0}
        self._opening = 0
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, daemon=True).start()

    def open(self) -> tuple[str, Any]:
        """Open a session with a new env (reaping idle ones first)."""
        from agentgym.registry import make

        self.reap()
        with self.lock:  # the slot is taken under the lock: concurrent opens cannot overshoot
            if len(self.sessions) + self._opening >= self.max_sessions:
                raise SessionLimit(f"The server holds its maximum of {self.max_sessions} "
                                   "sessions; close one (DELETE /sessions/ID) or wait for idle "
                                   f"ones to be reaped after {self.idle_timeout:.0f} s.")
            self._opening += 1
        try:
            env = make(self.env_id, **self.env_kwargs)
        finally:
            with self.lock:
                self._opening -= 1
        sid = uuid.uuid4().hex
        with self.lock:
            self.sessions[sid] = Session(env)
            self.counts["created"] += 1
        return sid, env

    def get(self, sid: str) -> Session:
        """The session, marked as used now."""
        with self.lock:
            session = self.sessions.get(sid)
        if session is None:
            raise UnknownSession(f"No session {sid!r} (closed, reaped after "
                                 f"{self.idle_timeout:.0f} s idle, or never opened).")
        session.last_used = time.monotonic()
        return session

    def close(self, sid: str, reason: str = "closed") -> None:
        """Close a session and its env (if still open)."""
        with self.lock:
            session = self.sessions.pop(sid, None)
            if session is not None:
                self.counts[reason] += 1
        if session is not None:
            _close_when_free(session)

    def reap(self) -> None:
        """Close every session idle longer than the timeout."""
        cutoff = time.monotonic() - self.idle_timeout
        with self.lock:
            idle = [sid for sid, s in self.sessions.items() if s.last_used < cutoff]
        for sid in idle:
            self.close(sid, "reaped")

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(5.0, max(0.05, self.idle_timeout / 4))):
            self.reap()

    def shutdown(self) -> None:
        """Stop reaping and close every session."""
        self._stop.set()
        for sid in list(self.sessions):
            self.close(sid)


def _close_when_free(session: Session) -> None:
    """Close a session's env now, or (if a step still holds it) once that step returns."""
    if session.lock.acquire(timeout=0.1):
        try:
            session.env.close()
        finally:
            session.lock.release()
        return

    def later() -> None:
        with session.lock:
            session.env.close()

    threading.Thread(target=later, daemon=True).start()


class SnapshotStore:
    """The server's snapshots by id: the latest ``size`` are kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, snapshot: Snapshot) -> str:
        """Keep ``snapshot``; its id."""
        sid = uuid.uuid4().hex
        with self._lock:
            self._kept[sid] = snapshot
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return sid

    def get(self, sid: str) -> Snapshot:
        """The snapshot ``sid``, or a SnapshotError if it is unknown or was dropped."""
        with self._lock:
            snapshot = self._kept.get(sid)
        if snapshot is None:
            raise SnapshotError(f"No snapshot {sid!r} on this server: it keeps its latest "
                                f"{self.size} snapshots, and only its own.")
        return snapshot


def _task_fields(env: Any) -> dict[str, Any]:
    """``env.task`` as JSON (its family's own record stays on the server)."""
    task = env.task
    return {"id": task.id, "split": task.split, "instruction": task.instruction,
            "reference": dict(task.reference) if task.reference else None, "kind": task.kind}


class SessionLimit(AgentGymError):
    """The server is full."""


class UnknownSession(AgentGymError):
    """No such session."""


MAX_REQUEST_BYTES = 8_000_000


def create_app(env_id: str, env_kwargs: dict | None = None, max_sessions: int = 64,
               idle_timeout: float = 300.0, token: str | None = None,
               max_request_bytes: int = MAX_REQUEST_BYTES,
               max_snapshots: int = 4096) -> Any:
    """The FastAPI app serving ``env_id``.

    ``token``: the bearer token clients must send, if given; ``max_snapshots``: how many of
    the latest snapshots it keeps.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse
        from pydantic import BaseModel
    except ImportError as exc:
        raise MissingDependencyError("fastapi", "serve") from exc
    from agentgym.registry import spec

    spec(env_id)  # fail now, with the known ids, not at the first session
    store = SessionStore(env_id, dict(env_kwargs or {}), max_sessions, idle_timeout)
    app = FastAPI(title=f"agentgym {env_id}")
    app.state.store = store
    snapshots = SnapshotStore(max_snapshots)

    class ResetBody(BaseModel):
        seed: int | None = None
        options: dict | None = None

    class StepBody(BaseModel):
        action: Any

    class EncodeBody(BaseModel):
        command: Any

    class RestoreBody(BaseModel):
        snapshot: str

    app.add_middleware(_Guard, token=token, max_bytes=max_request_bytes)

    @app.exception_handler(AgentGymError)
    def agentgym_error(request: Request, exc: AgentGymError) -> JSONResponse:
        status = {UnknownSession: 404, SessionLimit: 429}.get(type(exc), 400)
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status)

    @app.post("/sessions")
    def open_session() -> dict:
        sid, env = store.open()
        return {"session": sid, "env_id": env_id, "system_prompt": env.system_prompt()}

    @app.post("/sessions/{sid}/reset")
    def reset(sid: str, body: ResetBody) -> dict:
        session = store.get(sid)
        with session.lock:
            observation, info = session.env.reset(seed=body.seed, options=body.options)
            task = _task_fields(session.env)
        return {"observation": observation, "info": info, "task": task}

    @app.post("/sessions/{sid}/step")
    def step(sid: str, body: StepBody) -> dict:
        session = store.get(sid)
        with session.lock:
            observation, reward, terminated, truncated, info = session.env.step(body.action)
        store.counts["steps"] += 1
        return {"observation": observation, "reward": reward, "terminated": terminated,
                "truncated": truncated, "info": info}

    @app.post("/sessions/{sid}/encode")
    def encode(sid: str, body: EncodeBody) -> dict:
        command = body.command
        if isinstance(command, dict) and isinstance(command.get("name"), str) \
                and isinstance(command.get("arguments", {}), dict):
            command = ToolCall(command["name"], dict(command.get("arguments") or {}))
        elif not isinstance(command, str):
            raise InvalidOptionError("command must be a string or a tool call "
                                     f"{{'name': str, 'arguments': object}}, got {command!r:.100}.")
        try:
            return {"text": store.get(sid).env.protocol.encode(command)}
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidOptionError(f"Cannot encode {str(command)[:100]!r}: {exc}") from None

    @app.post("/sessions/{sid}/snapshot")
    def snapshot(sid: str) -> dict:
        session = store.get(sid)
        with session.lock:
            taken = session.env.snapshot()
        return {"snapshot": snapshots.keep(taken), "turn": taken.turn}

    @app.post("/sessions/{sid}/restore")
    def restore(sid: str, body: RestoreBody) -> dict:
        session = store.get(sid)
        with session.lock:
            session.env.restore(snapshots.get(body.snapshot))
            env = session.env.unwrapped
            task = _task_fields(env)
        return {"task_id": env.task_id, "turn": env.turn, "state": env.state.value,
                "task": task}

    @app.delete("/sessions/{sid}")
    def close(sid: str) -> dict:
        store.get(sid)
        store.close(sid)
        return {"closed": sid}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "env_id": env_id}

    @app.get("/metrics")
    def metrics() -> dict:
        return {"sessions": len(store.sessions), **store.counts, "rss_mb": round(rss_mb(), 1),
                "max_sessions": max_sessions, "idle_timeout": idle_timeout}

    @app.on_event("shutdown")
    def shutdown() -> None:
        store.shutdown()

    return app


class _Guard:
    """ASGI middleware: the bearer token, and a cap on request bodies (413 past it)."""

    def __init__(self, app: Any, token: str | None, max_bytes: int) -> None:
        self.app, self.token, self.max_bytes = app, token, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token and scope.get("path") != "/health":
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given, f"Bearer {self.token}"):
                return await _reply(send, 401, "Unauthorized", "This server needs "
                                    "'Authorization: Bearer <token>' (agentgym serve --token).")
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _reply(send, 413, "RequestTooLarge", self._too_large())
        # read the body here, up to the cap, so that a chunked body cannot pass it either
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                return await _reply(send, 413, "RequestTooLarge", self._too_large())
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"Request bodies are limited to {self.max_bytes:,} bytes."


async def _reply(send: Any, status: int, error: str, message: str) -> None:
    import json

    body = json.dumps({"error": error, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve(env_id: str, env_kwargs: dict | None = None, host: str = "127.0.0.1",
          port: int = 8000, max_sessions: int = 64, idle_timeout: float = 300.0,
          token: str | None = None, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
    """Serve ``env_id`` until interrupted (SIGTERM/SIGINT stop it within a few seconds)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "serve") from exc
    token = token or os.environ.get("AGENTGYM_TOKEN") or None
    app = create_app(env_id, env_kwargs, max_sessions, idle_timeout, token, max_request_bytes)
    # a step that never returns must not hold shutdown: in-flight requests get 3 s
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
