"""Where an agent's commands run: the sandbox contract and its limits.

Every sandbox runs ``bash -c SCRIPT`` with the episode's workspace (a host folder) as its
working directory (``/workspace`` unless told otherwise) and returns the output with its
middle elided above a size limit, the exit code, and whether the command was stopped. Limits
(memory, processes, CPU, time, output) apply to every command. The backends live in modules
of their own, ``sandbox_docker`` (a container per episode) and ``sandbox_host`` (bubblewrap,
and the opt-in, unisolated ``local``); ``backends.make_sandbox`` chooses one. Docker and
bubblewrap see only the workspace and the system's read-only toolchain, no network, and run
as an unprivileged user; ``local`` is a subprocess with resource limits and no isolation,
which is why it needs an explicit opt-in.
"""

from __future__ import annotations

import dataclasses
import os
import select
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agentgym.errors import (
    InvalidOptionError,
    SandboxError,
)

SANDBOX_UID = 65534  # nobody: owns nothing on the host
WORKDIR = "/workspace"
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": WORKDIR,
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
        self.mount = WORKDIR

    takes_images: ClassVar[bool] = False
    """Whether ``start`` can run an episode in an image of its own (SWE-bench instances)."""

    def start(self, workspace: Path, image: str | None = None, mount: str = WORKDIR) -> None:
        """Bind the sandbox to a workspace folder, seen inside at ``mount``.

        ``image``: the image this episode runs in, for backends that take images.
        """
        if image is not None and not self.takes_images:
            raise InvalidOptionError(f"The {self.kind} sandbox cannot run the image {image!r}; "
                                     "SWE-bench instances need sandbox='docker'.")
        self.workspace, self.mount = workspace, mount

    def run(self, script: str, timeout: float | None = None, stdin: bytes = b"",
            keep_bytes: int | None = None) -> RunResult:
        """Run ``bash -c script`` in the workspace and collect its output.

        ``keep_bytes`` overrides how much output is kept (and allowed) for this one command:
        the grader's own report must arrive whole, whatever the agent's limits are.
        """
        if self.workspace is None:
            raise SandboxError(f"{type(self).__name__}.run() before start().")
        timeout = timeout or self.limits.timeout_s
        limits = self.limits
        if keep_bytes is not None:
            limits = dataclasses.replace(limits, keep_bytes=keep_bytes,
                                         output_bytes=max(keep_bytes, limits.output_bytes))
        started = time.monotonic()
        result = self._execute(script, timeout, stdin, limits)
        if result.exit_code in (-9, 137) and time.monotonic() - started >= timeout:
            result = dataclasses.replace(result, timed_out=True)  # killed by its own timer
        if result.timed_out or result.output_stopped:
            self._after_kill()
        return result

    def detach(self) -> None:
        """Stop using the workspace: nothing runs in it after this; ``start`` may follow.

        Backends that can free what they hold in the background (docker) do so here.
        """
        self.close()

    def close(self) -> None:
        """Free what the sandbox holds (containers are removed)."""
        self.workspace = None

    def owner(self) -> int | None:
        """The host uid the workspace should belong to (None: leave it to the current user)."""
        return SANDBOX_UID if os.geteuid() == 0 else None

    @abstractmethod
    def _execute(self, script: str, timeout: float, stdin: bytes, limits: Limits) -> RunResult:
        """Run ``script`` under ``limits`` (see :func:`drain` for reading its output)."""

    def _after_kill(self) -> None:  # noqa: B027 - a hook; process-group sandboxes need none
        """Clean up after a command was killed."""


@dataclass
class Output:
    """What :func:`drain` read: the kept text, and why it stopped reading."""

    text: str
    total: int
    memory_mb: int
    timed_out: bool = False
    stopped: bool = False
    over: bool = False

    def result(self, exit_code: int) -> RunResult:
        """The finished command's :class:`RunResult`."""
        return RunResult(self.text, exit_code, self.timed_out, self.stopped, self.total,
                         self.memory_mb if self.over else 0)


def drain(fd: int, read: Callable[[], bytes | None], limits: Limits, timeout: float,
          stop_when: Callable[[], bool] | None = None,
          done: Callable[[], bool] | None = None) -> Output:
    """Call ``read()`` whenever ``fd`` is readable, until the end of the output.

    The end is ``read()`` returning ``None``, or ``done()`` saying so. Keeps
    ``limits.keep_bytes`` (half head, half tail) whatever arrives, and stops early at the
    time limit (plus a grace the sandbox's own timer uses first), past
    ``limits.output_bytes``, or when ``stop_when()`` says so; the caller then kills.
    """
    keep = limits.keep_bytes // 2
    head, tail = bytearray(), bytearray()
    total, timed_out, stopped, over = 0, False, False, False
    deadline = time.monotonic() + timeout + 2.0  # the sandbox's own timer goes first
    while done is None or not done():
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
        chunk = read()
        if chunk is None:
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
    return Output(_join(bytes(head), bytes(tail[-keep:]), total), total, limits.memory_mb,
                  timed_out, stopped, over)


def _join(head: bytes, tail: bytes, total: int) -> str:
    text = head.decode("utf-8", "replace")
    if total > len(head) + len(tail):
        text += f"\n[... {total - len(head) - len(tail):,} bytes of output elided ...]\n"
    return text + tail.decode("utf-8", "replace")
