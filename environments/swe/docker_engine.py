"""Talking to docker engines through the Docker SDK for Python (the ``docker`` package).

An :class:`Engine` is one engine: the one ``DOCKER_HOST`` names (the SDK's own defaults
otherwise), or any ``base_url`` (``unix://...``, ``tcp://host:2376`` with TLS settings).
Whatever the SDK raises comes out as a :class:`SandboxError` that names the engine and
what was being done, so a dead engine reads "starting a container on the docker engine at
tcp://10.0.0.5:2376 failed: ...", not a urllib3 traceback.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from agentgym.errors import InvalidOptionError, MissingDependencyError, SandboxError, require

DEFAULT_URL = "unix:///var/run/docker.sock"


def _sdk() -> Any:
    return require("docker", "swe", "docker (the Docker SDK for Python)")


class Engine:
    """One docker engine and a client for it.

    Args:
        base_url: Where the engine listens (default: ``DOCKER_HOST``, else the local socket).
        tls: TLS settings for a ``tcp://`` engine: ``True`` (verify with the system's CAs) or
            a ``docker.tls.TLSConfig`` (default: from ``DOCKER_TLS_VERIFY`` and
            ``DOCKER_CERT_PATH``, as the docker CLI reads them).
        timeout: Seconds per API call.
    """

    def __init__(self, base_url: str | None = None, tls: Any = None,
                 timeout: float = 120) -> None:
        self.url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
        with self.failing("connecting"):
            if tls is None and self.url.startswith("tcp://"):  # DOCKER_TLS_VERIFY and
                tls = _sdk().utils.kwargs_from_env().get("tls")  # DOCKER_CERT_PATH apply
            # a pinned API version: the SDK would otherwise ask the engine first, and a dead
            # engine would fail inside the constructor with a less helpful message
            self.client = _sdk().DockerClient(base_url=self.url, tls=tls or False,
                                              timeout=int(timeout), version="1.41",
                                              max_pool_size=64)
        self.api = self.client.api

    def __repr__(self) -> str:
        return f"Engine({self.url!r})"

    @contextmanager
    def failing(self, doing: str) -> Iterator[None]:
        """Turn the SDK's errors while ``doing`` into a SandboxError naming this engine."""
        docker = _sdk()
        import requests

        try:
            yield
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            detail = getattr(exc, "explanation", None) or str(exc)
            raise SandboxError(f"{doing} failed on the docker engine at {self.url}: "
                               f"{detail}") from None

    def answers(self) -> bool:
        """Whether the engine answers a ping."""
        try:
            with self.failing("ping"):
                return bool(self.api.ping())
        except SandboxError:
            return False

    def has_image(self, tag: str) -> bool:
        """Whether the engine holds the image ``tag``."""
        try:
            with self.failing(f"inspecting image {tag}"):
                self.api.inspect_image(tag)
                return True
        except SandboxError as exc:
            if "No such image" in str(exc) or "404" in str(exc):
                return False
            raise


def engine(base_url: str | None = None) -> Engine:
    """The (shared) :class:`Engine` for ``base_url`` (``None``: ``DOCKER_HOST``)."""
    return _shared(base_url or os.environ.get("DOCKER_HOST") or DEFAULT_URL)


@functools.cache
def _shared(url: str) -> Engine:
    return Engine(url)


def docker_available(base_url: str | None = None) -> bool:
    """Whether the docker SDK is installed and an engine answers there."""
    try:
        return Engine(base_url, timeout=10).answers()
    except (SandboxError, MissingDependencyError):
        return False


class Engines:
    """Several engines to spread sandboxes over; one that fails is set aside with why.

    A sandbox stays on its engine (``current``: the one with the fewest sandboxes of this
    process when it was made, so the envs of a run spread evenly) while that engine works.
    ``in_turn()`` gives the engines to try for the next container: the current one, then the
    others by load; engines that failed come last, and are tried again after ``retry_s``.
    """

    _load: ClassVar[Counter[str]] = Counter()  # sandboxes of this process per engine

    def __init__(self, urls: Sequence[str | None] | Sequence[str],
                 retry_s: float = 30.0) -> None:
        if not urls:
            raise InvalidOptionError("docker_hosts needs at least one engine URL.")
        self.engines = [engine(url) for url in urls]
        self.retry_s = retry_s
        self.down: dict[str, tuple[float, str]] = {}  # url -> (when, why)
        self.current = min(self.engines, key=lambda e: Engines._load[e.url])
        Engines._load[self.current.url] += 1

    def __repr__(self) -> str:
        return f"Engines({[e.url for e in self.engines]!r}, down={sorted(self.down)!r})"

    def in_turn(self) -> list[Engine]:
        """The engines in the order to try them for the next container."""
        others = sorted((e for e in self.engines if e is not self.current),
                        key=lambda e: Engines._load[e.url])
        order = [self.current, *others]
        now = time.monotonic()
        up = [e for e in order if now - self.down.get(e.url, (-1e9, ""))[0] > self.retry_s]
        return up + [e for e in order if e not in up]

    def failed(self, engine_: Engine, why: str) -> None:
        """Set ``engine_`` aside for a while."""
        self.down[engine_.url] = (time.monotonic(), why)

    def worked(self, engine_: Engine) -> None:
        """``engine_`` started a container: it is up, and the sandbox's engine from now."""
        self.down.pop(engine_.url, None)
        if engine_ is not self.current:
            Engines._load[self.current.url] -= 1
            Engines._load[engine_.url] += 1
            self.current = engine_

    def release(self) -> None:
        """The sandbox is closed: it no longer counts on its engine."""
        Engines._load[self.current.url] -= 1

    def rejoin(self) -> None:
        """The sandbox is in use again after :meth:`release`."""
        Engines._load[self.current.url] += 1
