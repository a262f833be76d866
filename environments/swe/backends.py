"""The sandbox backends, and choosing one: docker, bubblewrap, or (opt-in) ``local``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from agentgym.errors import InvalidOptionError, MissingDependencyError, did_you_mean
from environments.swe.docker_engine import docker_available
from environments.swe.sandbox import Limits, Sandbox
from environments.swe.sandbox_host import BwrapSandbox, LocalSandbox, bwrap_available

SANDBOXES = ("auto", "docker", "bwrap", "local")


def make_sandbox(kind: str = "auto", *, allow_unsandboxed: bool = False,
                 limits: Limits | None = None, quiet: bool = False, warm: int = 2,
                 docker_host: str | None = None,
                 docker_hosts: Sequence[str] | None = None) -> Sandbox:
    """The sandbox ``kind`` names; ``auto`` takes docker, else bwrap, and says which.

    ``warm``, ``docker_host`` and ``docker_hosts`` configure the docker sandbox (see
    ``DockerSandbox``).
    """
    if kind not in SANDBOXES:
        raise InvalidOptionError(f"Unknown sandbox {kind!r}. Sandboxes: {', '.join(SANDBOXES)}."
                                 f"{did_you_mean(kind, SANDBOXES)}")
    if kind == "auto":
        engines: list[str | None] = list(docker_hosts) if docker_hosts else [docker_host]
        kind = "docker" if any(docker_available(url) for url in engines) \
            else "bwrap" if bwrap_available() else ""
        if not kind:
            raise MissingDependencyError(
                "a sandbox (a running docker engine or bubblewrap)", apt="bubblewrap",
                hint="Or start a docker engine, or pass sandbox='local', "
                     "allow_unsandboxed=True to run commands unisolated.")
        if not quiet:
            warnings.warn(f"SWE sandbox: using {kind}.", stacklevel=3)
    if kind == "local":
        if not allow_unsandboxed:
            raise InvalidOptionError(
                "sandbox='local' runs the agent's commands on this machine without isolation; "
                "pass allow_unsandboxed=True if that is really what you want."
            )
        warnings.warn("SWE sandbox 'local' is NOT isolated: the agent's commands run on this "
                      "machine as a plain subprocess with resource limits only.", stacklevel=3)
        return LocalSandbox(limits)
    if kind == "docker":
        from environments.swe.sandbox_docker import DockerSandbox  # builds images: on demand

        return DockerSandbox(limits, warm=warm, docker_host=docker_host,
                             docker_hosts=docker_hosts)
    return BwrapSandbox(limits)
