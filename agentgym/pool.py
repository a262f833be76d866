"""``EnvPool``: N environments in worker processes (or threads), stepping asynchronously.

Submit calls for some envs, then collect results as each finishes, so a rollout loop can
hand finished observations to the model while slow envs are still stepping::

    with EnvPool("TextWorld-v0", n=4, env_kwargs={"preset": "easy"}) as pool:
        pool.submit(0, "reset", seed=0)
        pool.submit(1, "step", "<action>look</action>")
        for result in pool.wait():          # whichever finished first
            ...

Every call has a timeout. A worker that dies or hangs past it is killed and replaced (with
a fresh env, which needs a reset), and its call comes back as a failed :class:`PoolResult`
naming the reason; the pool goes on. Workers ignore Ctrl-C (the parent decides), die with
their parent (``PR_SET_PDEATHSIG``), and are stopped on ``close()`` and at interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing as mp
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentgym.errors import AgentGymError

Method = Literal["reset", "step", "snapshot", "restore", "system_prompt", "protocol", "env_id",
                 "close"]
_DIED = "\x00worker died"


@dataclass
class PoolResult:
    """What one call returned, or why it failed.

    Attributes:
        env: The env's index in the pool.
        method: The call (``reset``, ``step``, ...).
        value: The call's return value when ``ok``.
        ok: Whether the call returned normally.
        error: ``"<kind>: <message>"`` when not ``ok`` (``timeout``, ``worker died``, or the
            exception the env raised).
        seconds: Wall time from submit to result.
        env_seconds: Time the call itself took inside the worker.
    """

    env: int
    method: str
    value: Any = None
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0
    env_seconds: float = 0.0


class PoolError(AgentGymError):
    """Misuse of a pool: an unknown env index, a call on a busy env, a closed pool."""


def make_env(factory: str | Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Build a pool's env from a registered id or a factory."""
    if callable(factory):
        return factory(**kwargs)
    from agentgym.registry import make

    return make(factory, **kwargs)


def call_env(env: Any, method: str, args: tuple, kwargs: dict) -> Any:
    """Run one pool method on an env (shared by every pool backend)."""
    if method == "system_prompt":
        return env.system_prompt()
    if method == "protocol":
        return env.protocol
    if method == "env_id":
        return getattr(env, "env_id", type(env).__name__)
    return getattr(env, method)(*args, **kwargs)


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the atexit handler still stops workers
        pass


def _process_main(conn: Any, factory: Any, kwargs: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    env = make_env(factory, kwargs)
    while True:
        try:
            method, args, call_kwargs = conn.recv()
        except EOFError:
            break
        started = time.perf_counter()
        try:
            ok, value = True, call_env(env, method, args, call_kwargs)
        except Exception as exc:  # the env's error travels back as data
            ok, value = False, f"{type(exc).__name__}: {exc}"
        conn.send((ok, value, time.perf_counter() - started))
        if method == "close":
            break
    conn.close()


@dataclass
class _Pending:
    method: str
    started: float
    deadline: float


@dataclass
class _Worker:
    """One env in its own process (or thread), with a reader that forwards its results."""

    index: int
    backend: str
    factory: Any
    kwargs: dict[str, Any]
    results: queue.Queue
    generation: int = 0
    pending: _Pending | None = None
    proc: Any = None
    conn: Any = None
    inbox: queue.Queue = field(default_factory=queue.Queue)

    def start(self) -> None:
        self.generation += 1
        if self.backend == "process":
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            self.proc = ctx.Process(target=_process_main, args=(child, self.factory, self.kwargs),
                                    daemon=True)
            self.proc.start()
            child.close()
            self.conn = parent
            target = self._read_pipe
        else:
            self.inbox = queue.Queue()
            target = self._run_thread
        threading.Thread(target=target, args=(self.generation,), daemon=True).start()

    def send(self, method: str, args: tuple, kwargs: dict) -> None:
        if self.backend == "process":
            self.conn.send((method, args, kwargs))
        else:
            self.inbox.put((method, args, kwargs))

    def _read_pipe(self, generation: int) -> None:
        conn = self.conn
        while True:
            try:
                ok, value, seconds = conn.recv()
            except (EOFError, OSError):
                self.results.put((self.index, generation, False, _DIED, 0.0))
                return
            self.results.put((self.index, generation, ok, value, seconds))

    def _run_thread(self, generation: int) -> None:
        inbox = self.inbox
        try:
            env = make_env(self.factory, self.kwargs)
        except Exception as exc:
            self.results.put((self.index, generation, False, f"{type(exc).__name__}: {exc}",
                              0.0))
            return
        while True:
            method, args, kwargs = inbox.get()
            started = time.perf_counter()
            try:
                ok, value = True, call_env(env, method, args, kwargs)
            except Exception as exc:
                ok, value = False, f"{type(exc).__name__}: {exc}"
            self.results.put((self.index, generation, ok, value, time.perf_counter() - started))
            if method == "close":
                return

    def exit_code(self) -> int | None:
        return self.proc.exitcode if self.proc is not None else None

    def kill(self) -> None:
        if self.backend == "process" and self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(timeout=5)
            self.conn.close()
        # a hung thread cannot be killed: it is abandoned (daemon) and its results ignored

    def stop(self, timeout: float) -> None:
        if self.backend == "process" and self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(("close", (), {}))
            except OSError:
                pass
            self.proc.join(timeout=timeout)
        elif self.backend == "thread":
            self.inbox.put(("close", (), {}))
        self.kill()


class Pool:
    """What every pool offers: ``submit`` calls, ``wait`` for results, ``close``.

    :class:`EnvPool` (processes or threads) and ``agentgym.ray_pool.RayEnvPool`` implement
    it, and :func:`agentgym.rollout` drives either the same way.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def submit(self, env: int, method: Method, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> None:
        """Start ``env.<method>(*args, **kwargs)`` on env ``env``."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None, min_results: int = 1) -> list[PoolResult]:
        """Results of finished calls, as soon as ``min_results`` are in."""
        raise NotImplementedError

    def busy(self) -> list[int]:
        """The envs with a call in flight."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop every env. Idempotent."""
        raise NotImplementedError

    def call(self, env: int, method: Method, *args: Any, **kwargs: Any) -> Any:
        """Run one call while nothing else is in flight; return its value.

        Raises:
            PoolError: if other calls are in flight (their results would be lost), or if
                the call failed.
        """
        if self.busy():
            raise PoolError(f"call() needs an idle pool; envs {self.busy()} are busy. Use "
                            "submit() and wait() instead.")
        self.submit(env, method, *args, **kwargs)
        (result,) = self.wait()
        if not result.ok:
            raise PoolError(f"Env {env} {method} failed: {result.error}")
        return result.value

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EnvPool(Pool):
    """N copies of an env in workers, called asynchronously.

    Args:
        env: A registered env id, or a picklable factory (called with ``env_kwargs``).
        n: How many envs.
        env_kwargs: Keyword arguments for each env.
        backend: ``"process"`` (default; true parallelism, killable) or ``"thread"`` (for
            envs that wait on I/O or release the GIL; a hung thread is abandoned, not killed).
        timeout: Seconds a call may take before its worker is replaced.
    """

    def __init__(self, env: str | Callable[..., Any], n: int, *,
                 env_kwargs: dict[str, Any] | None = None,
                 backend: Literal["process", "thread"] = "process",
                 timeout: float = 60.0) -> None:
        if n < 1:
            raise PoolError(f"A pool needs at least one env, got n={n}.")
        if backend not in ("process", "thread"):
            raise PoolError(f"backend must be 'process' or 'thread', got {backend!r}.")
        self.timeout = timeout
        self.replaced = 0
        self._results: queue.Queue = queue.Queue()
        self._workers = [_Worker(i, backend, env, dict(env_kwargs or {}), self._results)
                         for i in range(n)]
        for worker in self._workers:
            worker.start()
        self._closed = False
        self._finalizer = weakref.finalize(self, EnvPool._stop_all, self._workers)
        atexit.register(self._finalizer)

    def __len__(self) -> int:
        return len(self._workers)

    def submit(self, env: int, method: Method, *args: Any, timeout: float | None = None,
               **kwargs: Any) -> None:
        """Start ``env.<method>(*args, **kwargs)`` on env ``env``; collect it with :meth:`wait`.

        Raises:
            PoolError: for an unknown index, an env already busy, or a closed pool.
        """
        if self._closed:
            raise PoolError("The pool is closed.")
        if not 0 <= env < len(self._workers):
            raise PoolError(f"No env {env}; the pool has envs 0..{len(self._workers) - 1}.")
        worker = self._workers[env]
        if worker.backend == "process" and not worker.proc.is_alive():
            self._replace(worker)  # died while idle: the call goes to a fresh env
        if worker.pending is not None:
            raise PoolError(f"Env {env} is still busy with {worker.pending.method}; wait for it.")
        now = time.monotonic()
        worker.pending = _Pending(method, now, now + (timeout or self.timeout))
        worker.send(method, args, kwargs)

    def busy(self) -> list[int]:
        """The envs with a call in flight."""
        return [w.index for w in self._workers if w.pending is not None]

    def wait(self, timeout: float | None = None, min_results: int = 1) -> list[PoolResult]:
        """Results of finished calls, as soon as ``min_results`` are in (or ``timeout`` passes).

        Calls past their own deadline come back failed, and their workers are replaced.
        """
        results: list[PoolResult] = []
        give_up = None if timeout is None else time.monotonic() + timeout
        while len(results) < min_results and self.busy():
            deadline = min(w.pending.deadline for w in self._workers if w.pending)
            if give_up is not None:
                deadline = min(deadline, give_up)
            try:
                item = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                results += self._expire()
                if give_up is not None and time.monotonic() >= give_up:
                    break
                continue
            result = self._accept(*item)
            if result is not None:
                results.append(result)
        while True:  # also hand back anything else already finished
            try:
                result = self._accept(*self._results.get_nowait())
            except queue.Empty:
                return results
            if result is not None:
                results.append(result)

    def _accept(self, index: int, generation: int, ok: bool, value: Any, env_seconds: float
                ) -> PoolResult | None:
        worker = self._workers[index]
        if generation != worker.generation or worker.pending is None:
            return None  # from a replaced worker, or an answer we already gave up on
        pending, worker.pending = worker.pending, None
        seconds = time.monotonic() - pending.started
        if ok:
            return PoolResult(index, pending.method, value, seconds=seconds,
                              env_seconds=env_seconds)
        if value == _DIED:
            worker.kill()  # reap it first, so its exit code is known
            code = worker.exit_code()
            self._replace(worker)
            return PoolResult(index, pending.method, ok=False, seconds=seconds,
                              error=f"worker died: exit code {code}; replaced with a new env")
        return PoolResult(index, pending.method, ok=False, error=value, seconds=seconds)

    def _expire(self) -> list[PoolResult]:
        now, expired = time.monotonic(), []
        for worker in self._workers:
            if worker.pending is not None and worker.pending.deadline <= now:
                pending, worker.pending = worker.pending, None
                self._replace(worker)
                expired.append(PoolResult(
                    worker.index, pending.method, ok=False, seconds=now - pending.started,
                    error=f"timeout: {pending.method} took over "
                          f"{pending.deadline - pending.started:.1f} s; replaced with a new env"))
        return expired

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        worker.pending = None
        worker.start()
        self.replaced += 1

    def pids(self) -> list[int]:
        """The worker processes' pids (process backend)."""
        return [w.proc.pid for w in self._workers if w.proc is not None]

    @staticmethod
    def _stop_all(workers: list[_Worker], timeout: float = 5.0) -> None:
        for worker in workers:
            worker.stop(timeout)

    def close(self) -> None:
        """Close every env and stop every worker. Idempotent."""
        if not self._closed:
            self._closed = True
            self._finalizer()
            atexit.unregister(self._finalizer)
