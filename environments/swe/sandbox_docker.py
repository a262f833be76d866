"""The docker sandbox: one locked-down container per episode from the base image."""

from __future__ import annotations

import atexit
import os
import shlex
import uuid
import weakref
from pathlib import Path
from typing import ClassVar

from environments.swe.docker_engine import docker
from environments.swe.images import ensure_base_image
from environments.swe.orphans import alive
from environments.swe.sandbox import SANDBOX_UID, WORKDIR, Limits, Sandbox


class DockerSandbox(Sandbox):
    """One container per episode from the locally built base image (see ``images.py``).

    ``--network none``, memory/pids/CPU limits, a read-only root with a small ``/tmp``, all
    capabilities dropped, ``no-new-privileges``, user ``nobody``; the workspace is
    bind-mounted. Containers are removed on close, on error and at interpreter exit.
    """

    kind = "docker"
    takes_images = True
    _live: ClassVar[weakref.WeakSet[DockerSandbox]] = weakref.WeakSet()

    def __init__(self, limits: Limits | None = None, image: str | None = None) -> None:
        super().__init__(limits)
        self.image = image or ensure_base_image()
        self.container: str | None = None
        reap_orphaned_containers()

    def start(self, workspace: Path, image: str | None = None,
              mount: str = WORKDIR) -> None:
        """Start a fresh container with ``workspace`` mounted at ``mount``.

        ``image`` replaces the base image for this episode (a SWE-bench instance's image).
        """
        self._remove()
        super().start(workspace, image, mount)
        image = image or self.image
        limits = self.limits
        name = f"agentgym-swe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.container = name
        DockerSandbox._live.add(self)
        docker("run", "-d", "--name", name, "--network", "none",
               "--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m",
               "--pids-limit", str(limits.pids), "--cpus", str(limits.cpus),
               "--user", f"{SANDBOX_UID}:{SANDBOX_UID}", "--read-only",
               "--tmpfs", "/tmp:rw,size=64m", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--ulimit",
               f"fsize={limits.file_mb << 20}", "--label", "agentgym.swe=1",
               "--label", f"agentgym.owner={os.getpid()}", "-e", "HOME=" + mount,
               "-v", f"{workspace}:{mount}", "-w", mount, image, "bash", "-c", _KEEPER)

    def _argv(self, script: str, timeout: float) -> list[str]:
        assert self.container is not None
        # nothing a command starts outlives it (as in bwrap, whose namespace dies with it):
        # kill(-1) reaches every process of the sandbox user but pid 1 and the caller
        # (repeated until none is left: a fork bomb forks while it is being killed)
        wrapper = (f"timeout -s KILL {timeout:.0f} bash -c {shlex.quote(script)}; code=$?; "
                   "for ((i = 0; i < 200; i++)); do kill -9 -1 2>/dev/null || break; done; "
                   "exit $code")
        return ["docker", "exec", "-i", self.container, "bash", "-c", wrapper]

    def _env(self) -> dict[str, str]:
        return dict(os.environ)  # the docker client needs DOCKER_HOST and friends

    def _preexec(self) -> None:
        pass  # the limits live in the container

    def _after_kill(self) -> None:
        # killing the docker client leaves the command (a fork bomb, say) running in the
        # container, where no new process may start; a restart kills everything, keeps the
        # workspace, and clears /tmp
        if self.container:
            docker("restart", "--time", "0", self.container, check=False)

    def close(self) -> None:
        """Remove the container."""
        self._remove()
        super().close()

    def _remove(self) -> None:
        if self.container:
            docker("rm", "-f", self.container, check=False)
            self.container = None


# pid 1 of a container: bash reaps the orphans commands leave (their zombies would hold pids)
# and, being pid 1, survives the kill(-1) that ends each command's leftovers
_KEEPER = "while :; do sleep 3600 & wait $!; done"


def reap_orphaned_containers() -> list[str]:
    """Remove sandbox containers whose owning process is gone (a SIGKILLed trainer, say)."""
    listed = docker("ps", "-a", "--filter", "label=agentgym.swe", "--format",
                    '{{.ID}} {{.Label "agentgym.owner"}}', check=False)
    orphans = []
    for line in listed.splitlines():
        container, _, owner = line.partition(" ")
        if owner.isdigit() and not alive(int(owner)):
            orphans.append(container)
    if orphans:
        docker("rm", "-f", *orphans, check=False)
    return orphans


@atexit.register
def _remove_live_containers() -> None:
    for sandbox in list(DockerSandbox._live):
        sandbox._remove()
