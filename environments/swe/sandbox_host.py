"""Sandboxes whose commands are host processes: bubblewrap, and the unisolated ``local``.

bubblewrap gives each command new namespaces (user, pid, network, ipc, uts), the system's
``/usr`` read-only and the workspace writable; ``local`` is a plain subprocess with resource
limits, for machines with neither docker nor bubblewrap (opt-in only). As root, each sandbox
gets its own cgroup (``cgroups.py``) so its limits count the whole sandbox.
"""

from __future__ import annotations

import os
import re
import resource
import select
import shutil
import signal
import subprocess
import threading
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from agentgym.errors import MissingDependencyError
from environments.swe import cgroups
from environments.swe.sandbox import (
    SAFE_ENV,
    SANDBOX_UID,
    Limits,
    RunResult,
    Sandbox,
    drain,
)


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

    def start(self, workspace: Path, image: str | None = None, mount: str = "/workspace") -> None:
        """Bind to ``workspace``; make the sandbox's cgroup on first use."""
        super().start(workspace, image, mount)
        if self._cgroup is None and not self.cgroup_problem:
            self._cgroup, self.cgroup_problem = cgroups.create(self.limits.memory_mb,
                                                               self.limits.pids)

    def _execute(self, script: str, timeout: float, stdin: bytes, limits: Limits) -> RunResult:
        process = subprocess.Popen(
            self._argv(script, timeout), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.workspace, env=self._env(),
            preexec_fn=self._preexec, start_new_session=True, **self._popen_kwargs(),
        )
        return collect(process, limits, timeout, stdin, kill=self._kill,
                       stop_when=self._over_limit)

    @abstractmethod
    def _argv(self, script: str, timeout: float) -> list[str]:
        """The host command that runs ``script`` inside the sandbox."""

    def _env(self) -> dict[str, str]:
        return dict(SAFE_ENV)

    def _popen_kwargs(self) -> dict:
        return {}

    def _kill(self, process: subprocess.Popen) -> None:
        """Stop a command that ran too long or printed too much."""
        kill_group(process)

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
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits.file_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
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
    ``allow_unsandboxed=True``. Commands run in the workspace's own host path (``HOME``
    too); there is no mount to see it elsewhere.
    """

    kind = "local"

    def _argv(self, script: str, timeout: float) -> list[str]:
        return [*_drop_privileges_argv(), "bash", "-c", script]

    def _env(self) -> dict[str, str]:
        assert self.workspace is not None
        return {**SAFE_ENV, "HOME": str(self.workspace)}


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
                "--bind", str(self.workspace), self.mount, "--chdir", self.mount,
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
        kill_group(process)


def bwrap_available() -> bool:
    """Whether bubblewrap can make its namespaces here."""
    if shutil.which("bwrap") is None:
        return False
    probe = subprocess.run([*_drop_privileges_argv(), "bwrap", "--ro-bind", "/", "/",
                            "--unshare-all", "--die-with-parent", "true"], capture_output=True)
    return probe.returncode == 0


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
    fd = process.stdout.fileno()
    output = drain(fd, lambda: os.read(fd, 65536) or None, limits, timeout, stop_when)
    if output.timed_out or output.stopped or output.over:
        (kill or kill_group)(process)
    code = process.wait()
    process.stdout.close()
    return output.result(code)


def _feed(process: subprocess.Popen, stdin: bytes) -> None:
    def write() -> None:
        assert process.stdin is not None  # started with stdin=PIPE
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=write, daemon=True).start()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a command's whole process group (it was started in a session of its own)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
