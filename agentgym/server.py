"""``agentgym serve ENV``: any registered env over HTTP, in sessions.

Endpoints (JSON):

=========================================  ===============================================
``POST /sessions``                          open a session: ``{"session", "env_id",
                                            "system_prompt"}`` (429 when full)
``POST /sessions/{id}/reset``               ``{"seed", "options"}`` -> ``{"observation", "info"}``
``POST /sessions/{id}/step``                ``{"action"}`` -> ``{"observation", "reward",
                                            "terminated", "truncated", "info"}``
``POST /sessions/{id}/encode``              ``{"command"}`` -> ``{"text"}`` (the env's protocol)
``DELETE /sessions/{id}``                   close it
``GET /health``, ``GET /metrics``           liveness; sessions, steps, reaped, memory
=========================================  ===============================================

An env error comes back as 400 ``{"error": <class name>, "message"}`` (404 for an unknown
session), and the client raises the same agentgym exception. Sessions idle longer than
``idle_timeout`` are closed by a reaper thread, so clients that vanish leak nothing.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' hints at runtime.
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import AgentGymError, MissingDependencyError


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
        self._stop = threading.Event()
        threading.Thread(target=self._reap_forever, daemon=True).start()

    def open(self) -> tuple[str, Any]:
        """Open a session with a new env (reaping idle ones first)."""
        from agentgym.registry import make

        self.reap()
        with self.lock:
            if len(self.sessions) >= self.max_sessions:
                raise SessionLimit(f"The server holds its maximum of {self.max_sessions} "
                                   "sessions; close one (DELETE /sessions/ID) or wait for idle "
                                   f"ones to be reaped after {self.idle_timeout:.0f} s.")
        env = make(self.env_id, **self.env_kwargs)
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
            with session.lock:
                session.env.close()

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


class SessionLimit(AgentGymError):
    """The server is full."""


class UnknownSession(AgentGymError):
    """No such session."""


def create_app(env_id: str, env_kwargs: dict | None = None, max_sessions: int = 64,
               idle_timeout: float = 300.0) -> Any:
    """The FastAPI app serving ``env_id``."""
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

    class ResetBody(BaseModel):
        seed: int | None = None
        options: dict | None = None

    class StepBody(BaseModel):
        action: Any

    class EncodeBody(BaseModel):
        command: Any

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
        return {"observation": observation, "info": info}

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
        return {"text": store.get(sid).env.protocol.encode(body.command)}

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


def serve(env_id: str, env_kwargs: dict | None = None, host: str = "127.0.0.1",
          port: int = 8000, max_sessions: int = 64, idle_timeout: float = 300.0) -> None:
    """Serve ``env_id`` until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "serve") from exc
    app = create_app(env_id, env_kwargs, max_sessions, idle_timeout)
    uvicorn.run(app, host=host, port=port, log_level="warning")
