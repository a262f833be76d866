"""Where an agent's commands run: docker containers, bubblewrap, or (opt-in) a plain subprocess.

Every sandbox runs ``bash -c SCRIPT`` with the episode's workspace (a host folder) as its
working directory ``/workspace`` and returns the output with its middle elided above a size
limit, the exit code, and whether the command was stopped. Limits (memory, processes, CPU,
time, output) apply to every command. Docker and bubblewrap see only the workspace and the
system's read-only toolchain, no network, and run as an unprivileged user; ``local`` is a
subprocess with resource limits and no isolation, which is why it needs an explicit opt-in.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agentgym.errors import (
    InvalidOptionError,
    MissingDependencyError,
    SandboxError,
    did_you_mean,
)
from environments.swe import cgroups
from environments.swe.orphans import alive

SANDBOX_UID = 65534  # nobody: owns nothing on the host
WORKDIR = "/workspace"
SANDBOXES = ("auto", "docker", "bwrap", "local")
_SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": WORKDIR,
             "PYTHONDONTWRITEBYTECODE": "1", "TERM": "dumb"}


@dataclass(frozen=True)
class Limits:
    """What one command may use.

    Attributes:
        memory_mb: Memory of the whole sandbox (docker; bwrap and local as root, by cgroup),
            else address space per process.
        pids: Processes the whole sandbox may have at once (docker; bwrap and local as root),
            else per host user.
        cpus: CPU share (docker only).
        timeout_s: Wall-clock time per command, then it is killed.
        output_bytes: Output after which a command is stopped.
        keep_bytes: Output kept for the observation, half from the head and half from the tail.
        file_mb: Largest file a command may write.
        disk_mb: What an episode may write to its workspace beyond the repository (a tmpfs
            quota, as root; the graded copy gets the same).
    """

    memory_mb: int = 1024
    pids: int = 128
    cpus: float = 1.0
    timeout_s: float = 30.0
    output_bytes: int = 4_000_000
    keep_bytes: int = 10_000
    file_mb: int = 64
    disk_mb: int = 512


@dataclass(frozen=True)
class RunResult:
    """A finished command: its (possibly elided) output and how it ended."""

    output: str
    exit_code: int
    timed_out: bool = False
    output_stopped: bool = False
    total_bytes: int = 0
    memory_exceeded_mb: int = 0  # the sandbox's memory limit, when it went over it

    def describe(self) -> str:
        """The output plus a plain-words note on how the command ended."""
        notes = []
        if self.timed_out:
            notes.append("The command ran past its time limit and was killed.")
        if self.output_stopped:
            notes.append(f"The command was stopped after {self.total_bytes:,} bytes of output.")
        elif self.memory_exceeded_mb:
            notes.append(f"The sandbox went over its memory limit of {self.memory_exceeded_mb} "
                         "MB: the command and everything it started were stopped.")
        elif self.exit_code in (137, -9) and not self.timed_out:
            notes.append("The command was killed (exit 137): it probably ran out of memory.")
        notes.append(f"[exit code {self.exit_code}]")
        return (self.output.rstrip("\n") + "\n" if self.output else "") + "\n".join(notes)


class Sandbox(ABC):
    """One episode's place to run commands; ``start(workspace)``, ``run(script)``, ``close()``."""

    kind: ClassVar[str]

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.workspace: Path | None = None

    def start(self, workspace: Path) -> None:
        """Bind the sandbox to a workspace folder (mounted at ``/workspace``)."""
        self.workspace = workspace

    def run(self, script: str, timeout: float | None = None, stdin: bytes = b"",
            keep_bytes: int | None = None) -> RunResult:
        """Run ``bash -c script`` in the workspace and collect its output.

        ``keep_bytes`` overrides how much output is kept (and allowed) for this one command:
        the grader's own report must arrive whole, whatever the agent's limits are.
        """
        if self.workspace is None:
            raise SandboxError(f"{type(self).__name__}.run() before start().")
        timeout = timeout or self.limits.timeout_s
        started = time.monotonic()
        process = subprocess.Popen(
            self._argv(script, timeout), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.workspace, env=self._env(),
            preexec_fn=self._preexec, start_new_session=True, **self._popen_kwargs(),
        )
        limits = self.limits
        if keep_bytes is not None:
            limits = dataclasses.replace(limits, keep_bytes=keep_bytes,
                                         output_bytes=max(keep_bytes, limits.output_bytes))
        result = collect(process, limits, timeout, stdin, kill=self._kill,
                         stop_when=self._over_limit)
        if result.exit_code in (-9, 137) and time.monotonic() - started >= timeout:
            result = dataclasses.replace(result, timed_out=True)  # killed by its own timer
        if result.timed_out or result.output_stopped:
            self._after_kill()
        return result

    def close(self) -> None:
        """Free what the sandbox holds (containers are removed)."""
        self.workspace = None

    def owner(self) -> int | None:
        """The host uid the workspace should belong to (None: leave it to the current user)."""
        return SANDBOX_UID if os.geteuid() == 0 else None

    @abstractmethod
    def _argv(self, script: str, timeout: float) -> list[str]:
        """The host command that runs ``script`` inside the sandbox."""

    def _env(self) -> dict[str, str]:
        return dict(_SAFE_ENV)

    def _popen_kwargs(self) -> dict:
        return {}

    def _preexec(self) -> None:
        limits = self.limits
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _kill(self, process: subprocess.Popen) -> None:
        """Stop a command that ran too long or printed too much."""
        _kill_group(process)

    def _over_limit(self) -> bool:
        """Whether the running command went over a limit that stops it (checked as it runs)."""
        return False

    def _after_kill(self) -> None:  # noqa: B027 - a hook; process-group sandboxes need none
        """Clean up after a command was killed."""


class HostProcessSandbox(Sandbox):
    """A sandbox whose commands are host processes (bubblewrap, local).

    As root, each sandbox gets its own cgroup (``cgroups.py``): memory and processes count
    the whole sandbox, and a sandbox over its memory limit is stopped with a clear note.
    Elsewhere the limits are per process (``RLIMIT_AS``) and per host user
    (``RLIMIT_NPROC``), which ``cgroup_problem`` explains.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._cgroup: cgroups.Cgroup | None = None
        self._oom_before = 0
        self.cgroup_problem = ""
        cgroups.reap_orphans()

    def start(self, workspace: Path) -> None:
        """Bind to ``workspace``; make the sandbox's cgroup on first use."""
        super().start(workspace)
        if self._cgroup is None and not self.cgroup_problem:
            self._cgroup, self.cgroup_problem = cgroups.create(self.limits.memory_mb,
                                                               self.limits.pids)

    def run(self, script: str, timeout: float | None = None, stdin: bytes = b"",
            keep_bytes: int | None = None) -> RunResult:
        """Run ``bash -c script``; nothing it starts outlives it."""
        self._oom_before = self._cgroup.oom_kills() if self._cgroup else 0
        try:
            return super().run(script, timeout, stdin, keep_bytes)
        finally:
            if self._cgroup:
                self._cgroup.kill_all()

    def close(self) -> None:
        """Unbind, and remove the sandbox's cgroup."""
        super().close()
        if self._cgroup:
            self._cgroup.remove()
            self._cgroup = None

    def _preexec(self) -> None:
        super()._preexec()
        if self._cgroup:
            self._cgroup.join()
        else:
            _process_limits(self.limits)

    def _over_limit(self) -> bool:
        return self._cgroup is not None and self._cgroup.oom_kills() > self._oom_before


def _drop_privileges_argv() -> list[str]:
    """``setpriv`` to the sandbox user when we are root (so process limits apply)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
            "--"]


def _process_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids,) * 2)


class LocalSandbox(HostProcessSandbox):
    """A plain subprocess with resource limits: **not isolated**.

    For machines with neither docker nor bubblewrap; it runs only with
    ``allow_unsandboxed=True``.
    """

    kind = "local"

    def _argv(self, script: str, timeout: float) -> list[str]:
        return [*_drop_privileges_argv(), "bash", "-c", script]

    def _env(self) -> dict[str, str]:
        assert self.workspace is not None
        return {**_SAFE_ENV, "HOME": str(self.workspace)}


class BwrapSandbox(HostProcessSandbox):
    """bubblewrap: the system's ``/usr`` read-only, the workspace writable, nothing else.

    New user, pid, network, ipc and uts namespaces; runs as ``nobody`` on the host (when we
    are root) so the process limit holds; dies with its parent.
    """

    kind = "bwrap"

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        if shutil.which("bwrap") is None:
            raise MissingDependencyError("bwrap", apt="bubblewrap")

    def _argv(self, script: str, timeout: float) -> list[str]:
        assert self.workspace is not None
        system = ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "sbin"):
            path = Path("/") / name
            if path.is_symlink():
                system += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                system += ["--ro-bind", str(path), str(path)]
        for etc in ("/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime"):
            system += ["--ro-bind-try", etc, etc]
        return [*_drop_privileges_argv(), "bwrap", *self._info_args(), *system,
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--bind", str(self.workspace), WORKDIR, "--chdir", WORKDIR,
                "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox",
                "--", "bash", "-c", script]

    def run(self, script: str, timeout: float | None = None, stdin: bytes = b"",
            keep_bytes: int | None = None) -> RunResult:
        """Run ``bash -c script``; bwrap reports its namespace's first pid on a pipe."""
        self._info_read, self._info_write = os.pipe()
        try:
            return super().run(script, timeout, stdin, keep_bytes)
        finally:
            os.close(self._info_read)
            if self._info_write >= 0:
                os.close(self._info_write)

    def _popen_kwargs(self) -> dict:
        return {"pass_fds": (self._info_write,)}

    def _info_args(self) -> list[str]:
        return ["--info-fd", str(self._info_write)]

    def _kill(self, process: subprocess.Popen) -> None:
        # kill the namespace's pid 1 (and with it every process inside), so that bwrap
        # itself exits and is reaped normally instead of leaving orphaned zombies
        os.close(self._info_write)
        self._info_write = -1
        info = os.read(self._info_read, 4096).decode() if select.select(
            [self._info_read], [], [], 0)[0] else ""
        match = re.search(r'"child-pid"\s*:\s*(\d+)', info)
        if match:
            try:
                os.kill(int(match[1]), signal.SIGKILL)
                return
            except ProcessLookupError:
                pass
        _kill_group(process)


class DockerSandbox(Sandbox):
    """One container per episode from the locally built base image (see ``images.py``).

    ``--network none``, memory/pids/CPU limits, a read-only root with a small ``/tmp``, all
    capabilities dropped, ``no-new-privileges``, user ``nobody``; the workspace is
    bind-mounted. Containers are removed on close, on error and at interpreter exit.
    """

    kind = "docker"
    _live: ClassVar[weakref.WeakSet[DockerSandbox]] = weakref.WeakSet()

    def __init__(self, limits: Limits | None = None, image: str | None = None) -> None:
        super().__init__(limits)
        from environments.swe.images import ensure_base_image

        self.image = image or ensure_base_image()
        self.container: str | None = None
        reap_orphaned_containers()

    def start(self, workspace: Path, image: str | None = None,
              mount: str = WORKDIR) -> None:
        """Start a fresh container with ``workspace`` mounted at ``mount``.

        ``image`` replaces the base image for this episode (a SWE-bench instance's image).
        """
        self._remove()
        super().start(workspace)
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


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run the docker CLI; its stdout."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


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


def docker_available() -> bool:
    """Whether a docker engine answers."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def bwrap_available() -> bool:
    """Whether bubblewrap can make its namespaces here."""
    if shutil.which("bwrap") is None:
        return False
    probe = subprocess.run([*_drop_privileges_argv(), "bwrap", "--ro-bind", "/", "/",
                            "--unshare-all", "--die-with-parent", "true"], capture_output=True)
    return probe.returncode == 0


def make_sandbox(kind: str = "auto", *, allow_unsandboxed: bool = False,
                 limits: Limits | None = None, quiet: bool = False) -> Sandbox:
    """The sandbox ``kind`` names; ``auto`` takes docker, else bwrap, and says which."""
    if kind not in SANDBOXES:
        raise InvalidOptionError(f"Unknown sandbox {kind!r}. Sandboxes: {', '.join(SANDBOXES)}."
                                 f"{did_you_mean(kind, SANDBOXES)}")
    if kind == "auto":
        kind = "docker" if docker_available() else "bwrap" if bwrap_available() else ""
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
    return DockerSandbox(limits) if kind == "docker" else BwrapSandbox(limits)


def collect(process: subprocess.Popen, limits: Limits, timeout: float, stdin: bytes = b"",
            kill: Callable[[subprocess.Popen], None] | None = None,
            stop_when: Callable[[], bool] | None = None) -> RunResult:
    """Read a command's output until it exits, keeping the head and the tail.

    Stops (kills the process group) at the time limit, when the output passes
    ``limits.output_bytes``, or when ``stop_when()`` (polled as it runs) says so; memory
    stays bounded whatever the command prints.
    """
    assert process.stdout is not None and process.stdin is not None
    _feed(process, stdin)
    keep = limits.keep_bytes // 2
    head, tail = bytearray(), bytearray()
    total, timed_out, stopped, over = 0, False, False, False
    deadline = time.monotonic() + timeout + 2.0  # the sandbox's own timer goes first
    fd = process.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([fd], [], [], min(left, 0.25))
        if stop_when is not None and stop_when():
            over = True
            break
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        total += len(chunk)
        room = max(keep - len(head), 0)
        head += chunk[:room]
        tail += chunk[room:]
        if len(tail) > 2 * keep:
            del tail[:-keep]
        if total > limits.output_bytes:
            stopped = True
            break
    if timed_out or stopped or over:
        (kill or _kill_group)(process)
    code = process.wait()
    process.stdout.close()
    return RunResult(_join(bytes(head), bytes(tail[-keep:]), total), code, timed_out, stopped,
                     total, limits.memory_mb if over else 0)


def _feed(process: subprocess.Popen, stdin: bytes) -> None:
    def write() -> None:
        assert process.stdin is not None  # started with stdin=PIPE
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=write, daemon=True).start()


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _join(head: bytes, tail: bytes, total: int) -> str:
    text = head.decode("utf-8", "replace")
    if total > len(head) + len(tail):
        text += f"\n[... {total - len(head) - len(tail):,} bytes of output elided ...]\n"
    return text + tail.decode("utf-8", "replace")


@atexit.register
def _remove_live_containers() -> None:
    for sandbox in list(DockerSandbox._live):
        sandbox._remove()
