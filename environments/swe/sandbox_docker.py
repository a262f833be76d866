"""The docker sandbox: one locked-down container per episode, driven through the Docker SDK.

Each command goes to the container's command server over its attach stream (an exec per
command where the image has no ``python3``; ``docker_streams.py``), never a ``docker`` CLI
process. With ``warm > 0`` (and root, to
bind the workspace in), started idle containers wait in a :class:`WarmPool` per image; a
reset binds the episode's workspace into a ready one instead of starting one.

An engine on this machine (a ``unix://`` socket) sees the workspace as a bind mount; any
other engine (``tcp://``, another machine) gets it copied in and mirrored back after every
command (``transfer.py``). With several engines (``docker_hosts``), each episode's container
goes to the next one in turn; an engine that fails is set aside and its episode fails with
the engine's error, while the others go on.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shlex
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agentgym.errors import InvalidOptionError, SandboxError
from environments.swe import command_server, mounts, orphans, transfer
from environments.swe.docker_engine import Engine, Engines, engine
from environments.swe.docker_streams import Channel, ServerLost, connect, exec_stream
from environments.swe.images import ensure_base_image
from environments.swe.sandbox import SANDBOX_UID, WORKDIR, Limits, RunResult, Sandbox, drain
from environments.swe.warm_pool import WarmPool


@dataclass(frozen=True)
class Container:
    """A started container, with the host folder bound into it (warm) or a copy (remote).

    ``channel``: the attach stream to its command server (None: commands are execs).
    """

    id: str
    slot: Path | None = None
    copied: bool = False
    channel: Channel | None = None


class DockerSandbox(Sandbox):
    """One container per episode from the locally built base image (see ``images.py``).

    No network, memory/pids/CPU limits, a read-only root with a small ``/tmp``, all
    capabilities dropped, ``no-new-privileges``, user ``nobody``; the workspace is
    bind-mounted. Containers are removed on close, on error and at interpreter exit.

    Args:
        limits: What each command (and the whole container) may use.
        image: The default image (else the base image, built on first use).
        warm: Idle containers kept started per image (0: start one per reset); engines on
            this machine only.
        docker_host: The engine (default: ``DOCKER_HOST``).
        docker_hosts: Several engines to spread episodes over (instead of ``docker_host``).
    """

    kind = "docker"
    takes_images = True
    _live: ClassVar[weakref.WeakSet[DockerSandbox]] = weakref.WeakSet()

    def __init__(self, limits: Limits | None = None, image: str | None = None, warm: int = 2,
                 docker_host: str | None = None,
                 docker_hosts: Sequence[str] | None = None) -> None:
        super().__init__(limits)
        if docker_host is not None and docker_hosts:
            raise InvalidOptionError("Pass docker_host or docker_hosts, not both.")
        self.engines = Engines(list(docker_hosts) if docker_hosts else [docker_host])
        self.engine = self.engines.current
        self._released = False
        self.image = image  # None: the base image, imported into each engine on first use
        self.warm = warm if os.geteuid() == 0 else 0  # binding a workspace in needs root
        self.container: Container | None = None
        self._removing: list[Future[None]] = []
        self._pool: WarmPool[Container] | None = None
        self._pool_key: tuple[str, str, str] | None = None
        self._images: dict[str, str] = {}
        problems = [self._prepare(each) for each in self.engines.engines]
        if all(problems):
            raise SandboxError(" | ".join(problems))

    def _prepare(self, on: Engine) -> str:
        """Reap the engine's orphans and make sure it has the base image; why it cannot."""
        try:
            reap_orphaned_containers(on)
            if self.image is None:
                self._images[on.url] = ensure_base_image(on)
            return ""
        except SandboxError as exc:
            self.engines.failed(on, str(exc))
            return str(exc)

    def start(self, workspace: Path, image: str | None = None,
              mount: str = WORKDIR) -> None:
        """Give the episode a container with ``workspace`` seen at ``mount``.

        ``image`` replaces the base image for this episode (a SWE-bench instance's image).
        """
        self.detach()
        super().start(workspace, image, mount)
        DockerSandbox._live.add(self)
        if self._released:  # started again after close()
            self.engines.rejoin()
            self._released = False
        reasons = []
        for on in self.engines.in_turn():
            try:
                self.container = self._start_on(on, workspace, image, mount)
            except SandboxError as exc:
                self.engines.failed(on, str(exc))
                reasons.append(str(exc))
                continue
            self.engine = on
            self.engines.worked(on)
            return
        raise SandboxError("No docker engine could start the sandbox: " + " | ".join(reasons))

    def _start_on(self, on: Engine, workspace: Path, image: str | None,
                  mount: str) -> Container:
        if image is None:
            if on.url not in self._images and self._prepare(on):
                raise SandboxError(self.engines.down[on.url][1])
            image = self.image or self._images[on.url]
        if not on.url.startswith("unix://"):  # the engine cannot see this machine's folders
            return _start_copied(on, image, mount, self.limits, workspace)
        if self.warm:
            ready = self._pool_for(on, image, mount).take()
            if ready is not None:
                _bind(workspace, ready.slot)
                return ready
        return _create(on, image, mount, self.limits, workspace)

    def _pool_for(self, on: Engine, image: str, mount: str) -> WarmPool[Container]:
        """This sandbox's warm containers for ``image`` on ``on``.

        One pool at a time: another image (a SWE-bench instance's, say) or another engine
        replaces it.
        """
        if self._pool_key != (on.url, image, mount):
            if self._pool is not None:
                self._pool.close()

            def make() -> Container:
                return _create(on, image, mount, self.limits, None, _new_slot())

            self._pool = WarmPool(make, functools.partial(_remove, on), self.warm,
                                  delay=_SETTLE_S)
            self._pool_key = (on.url, image, mount)
        assert self._pool is not None
        return self._pool

    def _execute(self, script: str, timeout: float, stdin: bytes, limits: Limits) -> RunResult:
        assert self.container is not None
        if self.container.channel is not None:
            return self._serve(script, timeout, stdin, limits)
        argv = ["bash", "-c", _contained(script, timeout)]
        with exec_stream(self.engine, self.container.id, argv, stdin,
                         "running a command in a sandbox container") as run:
            output = drain(run.fileno(), run.frames.read, limits, timeout)
            if output.timed_out or output.stopped:
                return output.result(-9)
            code = run.exit_code()
        if self.container.copied:
            self._mirror()
        return output.result(code)

    def _serve(self, script: str, timeout: float, stdin: bytes, limits: Limits) -> RunResult:
        assert self.container is not None and self.container.channel is not None
        try:
            with self.engine.failing("running a command in a sandbox container"):
                result = self.container.channel.run(script, stdin, timeout, limits)
        except ServerLost as exc:  # a restart brings a fresh server (and kills everything)
            self._restart()
            return RunResult(f"[the sandbox stopped answering and was restarted: {exc}]", -9,
                             timed_out=True)
        if self.container.copied:
            self._mirror()
        return result

    def _mirror(self) -> None:
        """Bring the container's workspace back into the host folder (a copied one)."""
        assert self.container is not None and self.workspace is not None
        archive, code = _exec_bytes(self.engine, self.container,
                                    ["tar", "-c", "-C", self.mount, "-f", "-", "."])
        if code != 0:
            raise SandboxError(f"Copying the workspace out of the container on the docker "
                               f"engine at {self.engine.url} failed (tar exit {code}).")
        transfer.mirror(archive, self.workspace)

    def _after_kill(self) -> None:
        # an exec'd command (a fork bomb, say) may still run in the container, where no new
        # process may start; a restart kills everything, keeps the workspace, and clears /tmp
        # (a command server has already killed everything: pid 1 can)
        if self.container and self.container.channel is None:
            self._restart()

    def _restart(self) -> None:
        if self.container:
            channel = self.container.channel
            if channel is not None:
                channel.close()
            with self.engine.failing("restarting a sandbox container"):
                self.engine.api.restart(self.container.id, timeout=0)
            if channel is not None:
                self.container = dataclasses.replace(
                    self.container, channel=connect(self.engine, self.container.id))
            if self.container.copied:  # the restart emptied its workspace: the host's copy
                assert self.workspace is not None  # holds it as of the last whole command
                _copy_in(self.engine, self.container, self.workspace, self.mount)

    def detach(self) -> None:
        """Take the workspace out of the container at once; remove it in the background."""
        if self.container is not None:
            if self.container.slot is not None:
                _unbind(self.container.slot)
            self._removing.append(_remove_soon(self.engine, self.container))
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
        _release_slots(only_if_empty=True)
        if not self._released:
            self.engines.release()
            self._released = True
        super().close()


# pid 1 of a container: bash reaps the orphans commands leave (their zombies would hold pids)
# and, being pid 1, survives the kill(-1) that ends each command's leftovers
_KEEPER = "while :; do sleep 3600 & wait $!; done"
_SETTLE_S = 0.3  # background container work waits this long after a reset begins
_REMOVER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="agentgym-docker-rm")


def _contained(script: str, timeout: float) -> str:
    # nothing a command starts outlives it (as in bwrap, whose namespace dies with it):
    # kill(-1) reaches every process of the sandbox user but pid 1 and the caller
    # (repeated until none is left: a fork bomb forks while it is being killed)
    return (f"timeout -s KILL {timeout:.0f} bash -c {shlex.quote(script)} 2>&1; code=$?; "
            "for ((i = 0; i < 200; i++)); do kill -9 -1 2>/dev/null || break; done; "
            "exit $code")


def _create(engine: Engine, image: str, mount: str, limits: Limits, workspace: Path | None,
            slot: Path | None = None, tmpfs_mb: int = 0) -> Container:
    """Start a container with ``workspace`` (or an empty ``slot``) bound at ``mount``.

    Given ``tmpfs_mb``, ``mount`` is an empty tmpfs of that size instead (for a copy). A
    slot is bound ``rslave``: what the host later mounts on it appears in the container.
    """
    import docker

    tmpfs = {"/tmp": "rw,size=64m"}
    mounts = []
    if tmpfs_mb:
        tmpfs[mount] = f"rw,size={tmpfs_mb}m,uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0755"
    else:
        source = slot if slot is not None else workspace
        mounts.append(docker.types.Mount(mount, str(source), type="bind",
                                         propagation="rslave" if slot is not None else None))
    api = engine.api
    with engine.failing(f"starting a sandbox container from {image}"):
        host = api.create_host_config(
            network_mode="none", mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m", pids_limit=limits.pids,
            nano_cpus=int(limits.cpus * 1e9), read_only=True,
            tmpfs=tmpfs, cap_drop=["ALL"], security_opt=["no-new-privileges"], mounts=mounts,
            ulimits=[docker.types.Ulimit(name="fsize", soft=limits.file_mb << 20,
                                         hard=limits.file_mb << 20)])
        serve = (engine.url, image) not in _NO_SERVER
        command = ["python3", "-c", command_server.SERVER] if serve else ["bash", "-c", _KEEPER]
        created = api.create_container(
            image, command, stdin_open=serve, name=f"agentgym-swe-{os.getpid()}-"
            f"{uuid.uuid4().hex[:8]}", user=f"{SANDBOX_UID}:{SANDBOX_UID}", working_dir=mount,
            environment={"HOME": mount}, host_config=host,
            labels={"agentgym.swe": "1", "agentgym.owner": str(os.getpid())})
        try:
            api.start(created["Id"])
        except Exception:
            api.remove_container(created["Id"], force=True)
            raise
    if not serve:
        return Container(created["Id"], slot)
    try:
        return Container(created["Id"], slot, channel=connect(engine, created["Id"]))
    except ServerLost:
        if _running(engine, created["Id"]):  # slow to answer (a loaded machine): once more
            try:
                return Container(created["Id"], slot, channel=connect(engine, created["Id"]))
            except ServerLost:
                return Container(created["Id"], slot)  # this container's commands: execs
        _NO_SERVER.add((engine.url, image))  # it exited: no python3 in this image
        _remove(engine, Container(created["Id"]))
        return _create(engine, image, mount, limits, workspace, slot, tmpfs_mb)


def _running(engine: Engine, container: str) -> bool:
    with engine.failing("inspecting a sandbox container"):
        return bool(engine.api.inspect_container(container)["State"]["Running"])


_NO_SERVER: set[tuple[str, str]] = set()  # (engine, image) whose containers cannot serve


def _start_copied(on: Engine, image: str, mount: str, limits: Limits,
                  workspace: Path) -> Container:
    """A container whose workspace is a copy of ``workspace`` on a tmpfs of its own."""
    size_mb = (sum(f.stat().st_size for f in workspace.rglob("*") if f.is_file()) >> 20) \
        + limits.disk_mb + 1
    started = _create(on, image, mount, limits, None, tmpfs_mb=size_mb)
    try:
        _copy_in(on, started, workspace, mount)
    except SandboxError:
        _remove(on, started)
        raise
    return dataclasses.replace(started, copied=True)


def _copy_in(on: Engine, container: Container, workspace: Path, mount: str) -> None:
    output, code = _exec_bytes(on, container, ["tar", "-x", "-C", mount, "-f", "-"],
                               transfer.pack(workspace))
    if code != 0:
        raise SandboxError(f"Copying the workspace into a container on the docker engine at "
                           f"{on.url} failed (tar exit {code}): {output[-500:]!r}")


def _exec_bytes(on: Engine, container: Container, argv: list[str],
                stdin: bytes = b"") -> tuple[bytes, int]:
    """All the stdout and the exit code of ``argv`` run in ``container`` on ``stdin``.

    For our own tools (tar): no limits, no wrapper.
    """
    if container.channel is not None:
        with on.failing("copying a workspace"):
            try:
                return container.channel.collect(shlex.join(argv), stdin)
            except ServerLost as exc:  # the episode's workspace is lost with it
                raise SandboxError(f"Copying a workspace failed on the docker engine at "
                                   f"{on.url}: {exc}") from None
    with exec_stream(on, container.id, argv, stdin, "copying a workspace",
                     stderr=False) as run:
        return run.frames.read_all(), run.exit_code()


def _remove_soon(engine: Engine, container: Container) -> Future[None]:
    """Remove ``container`` in the background once a reset's own work is done (at exit: now)."""
    try:
        return _REMOVER.submit(_remove, engine, container, _SETTLE_S)
    except RuntimeError:  # the interpreter is exiting: its executors take no new work
        done: Future[None] = Future()
        _remove(engine, container)
        done.set_result(None)
        return done


def _remove(engine: Engine, container: Container, after_s: float = 0.0) -> None:
    time.sleep(after_s)  # a reset's own work goes first
    if container.channel is not None:
        container.channel.close()
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
    problem = mounts.make_shared(base)
    if problem:
        raise SandboxError(f"Warm containers need a shared mount: {problem}")
    return base


_SLOTS_LOCK = threading.Lock()  # a slot is never made in a slot folder being released


def _new_slot() -> Path:
    with _SLOTS_LOCK:
        slot = _slots() / uuid.uuid4().hex[:12]
        slot.mkdir(mode=0o755)
    return slot


def _release_slots(only_if_empty: bool = False) -> None:
    """Unmount and remove this process's slot folder (if it has one, and no slot is left)."""
    with _SLOTS_LOCK:
        if not _slots.cache_info().currsize:
            return
        if only_if_empty and any(_slots().iterdir()):
            return
        _unbind(_slots())
        _slots().rmdir()
        _slots.cache_clear()


def _bind(workspace: Path, slot: Path | None) -> None:
    assert slot is not None
    problem = mounts.bind(workspace, slot)
    if problem:
        raise SandboxError(f"Could not bind the workspace into a warm container: {problem}")


def _unbind(slot: Path) -> None:
    mounts.unmount(slot)


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
    _release_slots()
