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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentgym.errors import MissingDependencyError, SandboxError, require

DEFAULT_URL = "unix:///var/run/docker.sock"


def _sdk() -> Any:
    return require("docker", "swe", "docker (the Docker SDK for Python)")


class Engine:
    """One docker engine and a client for it.

    Args:
        base_url: Where the engine listens (default: ``DOCKER_HOST``, else the local socket).
        tls: TLS settings for a ``tcp://`` engine: ``True`` (verify with the system's CAs) or
            a ``docker.tls.TLSConfig``.
        timeout: Seconds per API call.
    """

    def __init__(self, base_url: str | None = None, tls: Any = None,
                 timeout: float = 120) -> None:
        self.url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
        with self.failing("connecting"):
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
