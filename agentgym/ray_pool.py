"""``RayEnvPool``: the :class:`~agentgym.pool.Pool` interface over Ray actors, one env each.

For envs spread over a cluster (``address="auto"``) or a local Ray instance. A call past its
timeout, or an actor that dies, comes back as a failed result and the actor is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentgym.errors import MissingDependencyError
from agentgym.pool import Method, Pool, PoolError, PoolResult, call_env, make_env

_CLOSE_S = 30.0


class EnvActor:
    """Holds one env inside a Ray actor; every call returns ``(ok, value_or_error)``."""

    def __init__(self, factory: Any, kwargs: dict[str, Any]) -> None:
        self.env = make_env(factory, kwargs)

    def call(self, method: str, args: tuple, kwargs: dict) -> tuple[bool, Any, float]:
        """Run one pool method on the env: ``(ok, value or error, seconds)``."""
        started = time.perf_counter()
        try:
            ok, value = True, call_env(self.env, method, args, kwargs)
        except Exception as exc:  # the env's error travels back as data
            ok, value = False, f"{type(exc).__name__}: {exc}"
        return ok, value, time.perf_counter() - started


class RayEnvPool(Pool):
    """N envs in Ray actors.

    Args:
        env: A registered env id or a picklable factory.
        n: How many envs (actors).
        env_kwargs: Keyword arguments for each env.
        timeout: Seconds a call may take before its actor is replaced.
        startup_timeout: Seconds more for the first call to a new actor (its process
            starts and makes its env first; on a loaded machine that alone takes a while).
        address: A Ray cluster to join (``"auto"``); a local instance is started if Ray is
            not running yet (and stopped on close).
        num_cpus: CPUs Ray reserves per actor.
    """

    def __init__(self, env: str | Callable[..., Any], n: int, *,
                 env_kwargs: dict[str, Any] | None = None, timeout: float = 60.0,
                 startup_timeout: float = 120.0, address: str | None = None,
                 num_cpus: float = 0.5) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("ray", "ray") from exc
        if n < 1:
            raise PoolError(f"A pool needs at least one env, got n={n}.")
        self._ray = ray
        self._own_ray = not ray.is_initialized()
        if self._own_ray:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self._actor_class = ray.remote(num_cpus=num_cpus)(EnvActor)
        self._factory, self._kwargs, self.timeout = env, dict(env_kwargs or {}), timeout
        self.startup_timeout = startup_timeout
        self._actors = [self._spawn() for _ in range(n)]
        self._fresh = set(range(n))  # actors that have not answered a call yet
        self._pending: dict[Any, tuple[int, str, float, float]] = {}
        self.replaced = 0
        self._closed = False

    def _spawn(self) -> Any:
        return self._actor_class.remote(self._factory, self._kwargs)

    def __len__(self) -> int:
        return len(self._actors)

    def busy(self) -> list[int]:
        """The envs with a call in flight."""
        return sorted(index for index, *_ in self._pending.values())

    def submit(self, env: int, method: Method, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> None:
        """Start ``env.<method>(*args, **kwargs)`` on env ``env``."""
        if self._closed:
            raise PoolError("The pool is closed.")
        if not 0 <= env < len(self._actors):
            raise PoolError(f"No env {env}; the pool has envs 0..{len(self._actors) - 1}.")
        if env in self.busy():
            raise PoolError(f"Env {env} is still busy; wait for it.")
        ref = self._actors[env].call.remote(method, args, kwargs)
        now = time.monotonic()
        allowed = (timeout or self.timeout) + (self.startup_timeout if env in self._fresh
                                                else 0.0)
        self._pending[ref] = (env, method, now, now + allowed)

    def wait(self, timeout: float | None = None, min_results: int = 1) -> list[PoolResult]:
        """Results of finished calls; calls past their deadline fail and their actor is replaced."""
        results: list[PoolResult] = []
        give_up = None if timeout is None else time.monotonic() + timeout
        while len(results) < min_results and self._pending:
            deadline = min(p[3] for p in self._pending.values())
            if give_up is not None:
                deadline = min(deadline, give_up)
            ready, _ = self._ray.wait(list(self._pending), num_returns=1,
                                      timeout=max(0.0, deadline - time.monotonic()))
            for ref in ready:
                results.append(self._collect(ref))
            if not ready:
                results += self._expire()
                if give_up is not None and time.monotonic() >= give_up:
                    break
        return results

    def _collect(self, ref: Any) -> PoolResult:
        env, method, started, _ = self._pending.pop(ref)
        seconds = time.monotonic() - started
        try:
            ok, value, env_seconds = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            self._replace(env)
            return PoolResult(env, method, ok=False, seconds=seconds,
                              error=f"worker died: {type(exc).__name__}; replaced with a new env")
        self._fresh.discard(env)
        if ok:
            return PoolResult(env, method, value, seconds=seconds, env_seconds=env_seconds)
        return PoolResult(env, method, ok=False, error=value, seconds=seconds)

    def _expire(self) -> list[PoolResult]:
        now, expired = time.monotonic(), []
        for ref, (env, method, started, deadline) in list(self._pending.items()):
            if deadline <= now:
                del self._pending[ref]
                self._replace(env)
                expired.append(PoolResult(env, method, ok=False, seconds=now - started,
                                          error=f"timeout: {method} took over "
                                                f"{deadline - started:.1f} s; replaced"))
        return expired

    def _replace(self, env: int) -> None:
        self._ray.kill(self._actors[env], no_restart=True)
        self._actors[env] = self._spawn()
        self._fresh.add(env)
        self.replaced += 1

    def kill_actor(self, env: int) -> None:
        """Kill env ``env``'s actor (for failure drills); its next call reports it dead.

        Returns once the actor is gone: ``ray.kill`` only asks, and a call sent before the
        actor dies would still be answered.
        """
        actor = self._actors[env]
        self._ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self._ray.get(actor.__ray_ready__.remote(), timeout=5)
            except Exception:  # noqa: BLE001 - any error means it no longer answers
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Close every env, kill every actor (and the local Ray instance this pool started).

        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        # envs release what they hold (containers, folders) before their actors are killed;
        # a close queues behind a call in flight, so a hung env gets _CLOSE_S, not forever
        closing = [actor.call.remote("close", (), {}) for actor in self._actors]
        self._ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_S)
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)
        if self._own_ray:
            self._ray.shutdown()
