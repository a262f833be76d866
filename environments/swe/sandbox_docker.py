"""The docker sandbox: one locked-down container per episode, driven through the Docker SDK.

Each command is an exec in the episode's container, its output streamed back over the
engine's socket (no ``docker`` CLI process per command). With ``warm > 0`` (and root, to
bind the workspace in), started idle containers wait in a :class:`WarmPool` per image; a
reset binds the episode's workspace into a ready one instead of starting one.
"""

from __future__ import annotations

import atexit
import functools
import os
import shlex
import socket
import subprocess
import threading
import time
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agentgym.errors import SandboxError
from environments.swe import orphans, workspace
from environments.swe.docker_engine import Engine, engine
from environments.swe.images import ensure_base_image
from environments.swe.sandbox import SANDBOX_UID, WORKDIR, Limits, RunResult, Sandbox, drain
from environments.swe.warm_pool import WarmPool


@dataclass(frozen=True)
class Container:
    """A started container, and the host folder bound into it (warm ones only)."""

    id: str
    slot: Path | None = None


class DockerSandbox(Sandbox):
    """One container per episode from the locally built base image (see ``images.py``).

    No network, memory/pids/CPU limits, a read-only root with a small ``/tmp``, all
    capabilities dropped, ``no-new-privileges``, user ``nobody``; the workspace is
    bind-mounted. Containers are removed on close, on error and at interpreter exit.

    Args:
        limits: What each command (and the whole container) may use.
        image: The default image (else the base image, built on first use).
        warm: Idle containers kept started per image (0: start one per reset).
        docker_host: The engine (default: ``DOCKER_HOST``).
    """

    kind = "docker"
    takes_images = True
    _live: ClassVar[weakref.WeakSet[DockerSandbox]] = weakref.WeakSet()

    def __init__(self, limits: Limits | None = None, image: str | None = None, warm: int = 0,
                 docker_host: str | None = None) -> None:
        super().__init__(limits)
        self.engine = engine(docker_host)
        self.image = image or ensure_base_image(self.engine)
        self.warm = warm if os.geteuid() == 0 else 0  # binding a workspace in needs root
        self.container: Container | None = None
        self._removing: list[Future[None]] = []
        self._pool: WarmPool[Container] | None = None
        self._pool_key: tuple[str, str] | None = None
        reap_orphaned_containers(self.engine)

    def start(self, workspace: Path, image: str | None = None,
              mount: str = WORKDIR) -> None:
        """Give the episode a container with ``workspace`` seen at ``mount``.

        ``image`` replaces the base image for this episode (a SWE-bench instance's image).
        """
        self.detach()
        super().start(workspace, image, mount)
        image = image or self.image
        DockerSandbox._live.add(self)
        if self.warm:
            ready = self._pool_for(image, mount).take()
            if ready is not None:
                _bind(workspace, ready.slot)
                self.container = ready
                return
        self.container = _create(self.engine, image, mount, self.limits, workspace)

    def _pool_for(self, image: str, mount: str) -> WarmPool[Container]:
        """This sandbox's warm containers for ``image``.

        One image at a time: another image (a SWE-bench instance's, say) replaces the pool.
        """
        if self._pool_key != (image, mount):
            if self._pool is not None:
                self._pool.close()

            def make() -> Container:
                slot = _slots() / uuid.uuid4().hex[:12]
                slot.mkdir(mode=0o755)
                return _create(self.engine, image, mount, self.limits, None, slot)

            self._pool = WarmPool(make, functools.partial(_remove, self.engine), self.warm)
            self._pool_key = (image, mount)
        assert self._pool is not None
        return self._pool

    def _execute(self, script: str, timeout: float, stdin: bytes, limits: Limits) -> RunResult:
        assert self.container is not None
        api = self.engine.api
        with self.engine.failing("running a command in a sandbox container"):
            run = api.exec_create(self.container.id, ["bash", "-c", _contained(script, timeout)],
                                  stdin=True)["Id"]
            stream = api.exec_start(run, socket=True)
        raw: socket.socket = getattr(stream, "_sock", stream)
        try:
            threading.Thread(target=_send, args=(raw, stdin), daemon=True).start()
            output = drain(raw.fileno(), _Frames(raw).read, limits, timeout)
        finally:
            raw.close()
            stream.close()
        if output.timed_out or output.stopped:
            return output.result(-9)
        return output.result(self._exit_code(run))

    def _exit_code(self, run: str) -> int:
        for _ in range(200):  # the stream can end a moment before the engine records the exit
            with self.engine.failing("reading a command's exit code"):
                state = self.engine.api.exec_inspect(run)
            if not state["Running"]:
                return int(state["ExitCode"])
            time.sleep(0.005)
        return -1

    def _after_kill(self) -> None:
        # the command (a fork bomb, say) may still run in the container, where no new process
        # may start; a restart kills everything, keeps the workspace, and clears /tmp
        if self.container:
            with self.engine.failing("restarting a sandbox container"):
                self.engine.api.restart(self.container.id, timeout=0)

    def detach(self) -> None:
        """Take the workspace out of the container at once; remove it in the background."""
        if self.container is not None:
            if self.container.slot is not None:
                _unbind(self.container.slot)
            self._removing.append(_REMOVER.submit(_remove, self.engine, self.container))
            self.container = None

    def close(self) -> None:
        """Remove the container and the idle warm ones, and wait until they are gone."""
        self.detach()
        if self._pool is not None:
            self._pool.close()
            self._pool, self._pool_key = None, None
        for removal in self._removing:
            removal.result()
        self._removing.clear()
        super().close()


# pid 1 of a container: bash reaps the orphans commands leave (their zombies would hold pids)
# and, being pid 1, survives the kill(-1) that ends each command's leftovers
_KEEPER = "while :; do sleep 3600 & wait $!; done"
_REMOVER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="agentgym-docker-rm")


def _contained(script: str, timeout: float) -> str:
    # nothing a command starts outlives it (as in bwrap, whose namespace dies with it):
    # kill(-1) reaches every process of the sandbox user but pid 1 and the caller
    # (repeated until none is left: a fork bomb forks while it is being killed)
    return (f"timeout -s KILL {timeout:.0f} bash -c {shlex.quote(script)} 2>&1; code=$?; "
            "for ((i = 0; i < 200; i++)); do kill -9 -1 2>/dev/null || break; done; "
            "exit $code")


def _send(raw: socket.socket, data: bytes) -> None:
    try:
        if data:
            raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)  # the engine closes the command's stdin
    except OSError:
        pass  # the command ended (or was stopped) before reading it all


class _Frames:
    """The engine's multiplexed exec stream as plain bytes (8-byte header, then payload)."""

    def __init__(self, raw: socket.socket) -> None:
        self.raw, self.header, self.left = raw, b"", 0

    def read(self) -> bytes | None:
        """The payload in what the socket has now; ``None`` at the end of the stream."""
        try:
            chunk = self.raw.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        payload = bytearray()
        while chunk:
            if self.left == 0:
                need = 8 - len(self.header)
                self.header, chunk = self.header + chunk[:need], chunk[need:]
                if len(self.header) == 8:
                    self.left, self.header = int.from_bytes(self.header[4:], "big"), b""
                continue
            payload += chunk[:self.left]
            chunk, self.left = chunk[self.left:], self.left - len(chunk[:self.left])
        return bytes(payload)


def _create(engine: Engine, image: str, mount: str, limits: Limits, workspace: Path | None,
            slot: Path | None = None) -> Container:
    """Start a container with ``workspace`` (or an empty ``slot``) bound at ``mount``.

    A slot is bound ``rslave``: what the host later mounts on it appears in the container.
    """
    import docker

    source = slot if slot is not None else workspace
    bind = docker.types.Mount(mount, str(source), type="bind",
                              propagation="rslave" if slot is not None else None)
    api = engine.api
    with engine.failing(f"starting a sandbox container from {image}"):
        host = api.create_host_config(
            network_mode="none", mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m", pids_limit=limits.pids,
            nano_cpus=int(limits.cpus * 1e9), read_only=True,
            tmpfs={"/tmp": "rw,size=64m"}, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], mounts=[bind],
            ulimits=[docker.types.Ulimit(name="fsize", soft=limits.file_mb << 20,
                                         hard=limits.file_mb << 20)])
        created = api.create_container(
            image, ["bash", "-c", _KEEPER], name=f"agentgym-swe-{os.getpid()}-"
            f"{uuid.uuid4().hex[:8]}", user=f"{SANDBOX_UID}:{SANDBOX_UID}", working_dir=mount,
            environment={"HOME": mount}, host_config=host,
            labels={"agentgym.swe": "1", "agentgym.owner": str(os.getpid())})
        try:
            api.start(created["Id"])
        except Exception:
            api.remove_container(created["Id"], force=True)
            raise
    return Container(created["Id"], slot)


def _remove(engine: Engine, container: Container) -> None:
    try:
        engine.api.remove_container(container.id, force=True)
    except Exception:  # gone already, or the engine is: the orphan reaper gets it later
        pass
    if container.slot is not None:
        _unbind(container.slot)
        try:
            container.slot.rmdir()  # never rmtree: a slot still bound would be a workspace
        except OSError:
            pass  # the orphan reaper removes it with this process's slot folder


# ---------------------------------------------------------------- warm containers
@functools.cache
def _slots() -> Path:
    """This process's folder of slots, a shared mount (so binds into a slot propagate)."""
    base = orphans.episode_root()
    subprocess.run(["mount", "--bind", str(base), str(base)], check=True, capture_output=True)
    subprocess.run(["mount", "--make-rshared", str(base)], check=True, capture_output=True)
    return base


def _bind(workspace: Path, slot: Path | None) -> None:
    assert slot is not None
    done = subprocess.run(["mount", "--bind", str(workspace), str(slot)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SandboxError(f"Could not bind the workspace into a warm container: "
                           f"{done.stderr.strip()}")


def _unbind(slot: Path) -> None:
    workspace.unmount(slot)


def reap_orphaned_containers(on: Engine | None = None) -> list[str]:
    """Remove sandbox containers whose owning process is gone (a SIGKILLed trainer, say)."""
    on = on or engine()
    with on.failing("listing sandbox containers"):
        listed = on.api.containers(all=True, filters={"label": "agentgym.swe"})
    owners = {c["Id"]: c["Labels"].get("agentgym.owner", "") for c in listed}
    gone = [c for c, owner in owners.items() if owner.isdigit() and not orphans.alive(int(owner))]
    for container in gone:
        _remove(on, Container(container))
    return gone


@atexit.register
def _remove_live_containers() -> None:
    for sandbox in list(DockerSandbox._live):
        sandbox.close()
    _REMOVER.shutdown(wait=True)
    if _slots.cache_info().currsize:
        _unbind(_slots())
        _slots().rmdir()
