"""One control group per sandbox: memory and process limits that count the whole sandbox.

Per-process limits (``RLIMIT_AS``) let six 800 MB processes use 4 GB under a 1 GB limit, and
``RLIMIT_NPROC`` counts every sandbox of the same host user together. A cgroup counts what
one sandbox's processes use together, whatever they fork. Creating one needs root and a
writable cgroup hierarchy: cgroup v1 (the ``memory`` and ``pids`` controllers) or v2 (the
unified hierarchy, with those controllers delegated below its root). Where neither is
available, :func:`create` says why and sandboxes fall back to per-process limits.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from environments.swe.orphans import alive

ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    """A sandbox's cgroup: join it (in the child before exec), read its OOM kills, remove it."""

    def __init__(self, folders: list[Path], events: Path, event: str) -> None:
        self.folders = folders
        self._events, self._event = events, event

    def __repr__(self) -> str:
        return f"Cgroup({', '.join(map(str, self.folders))})"

    def join(self) -> None:
        """Move the calling process (and so all it starts) into the cgroup."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the memory limit so far."""
        try:
            for line in self._events.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == self._event:
                    return int(value)
        except OSError:
            pass
        return 0

    def kill_all(self) -> None:
        """SIGKILL every process still in the cgroup (repeated: a fork bomb keeps forking)."""
        for _ in range(100):
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and delete the cgroup."""
        self.kill_all()
        for folder in self.folders:
            for _ in range(50):  # the kernel frees a cgroup once its last process is reaped
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

    def _pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.folders[0] / "cgroup.procs").read_text().split()]
        except OSError:
            return []


def create(memory_mb: int, pids: int) -> tuple[Cgroup | None, str]:
    """A new cgroup with these limits, or ``(None, why not)``."""
    if os.geteuid() != 0:
        return None, "cgroups need root"
    name = f"agentgym-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if (ROOT / "cgroup.controllers").exists():
            return _create_v2(name, memory_mb, pids), ""
        return _create_v1(name, memory_mb, pids), ""
    except OSError as exc:
        return None, f"cannot create a cgroup under {ROOT}: {exc}"


def _create_v1(name: str, memory_mb: int, pids: int) -> Cgroup:
    memory, processes = ROOT / "memory" / name, ROOT / "pids" / name
    for folder in (memory, processes):
        folder.mkdir()
    limit = str(memory_mb << 20)
    (memory / "memory.limit_in_bytes").write_text(limit)
    swap = memory / "memory.memsw.limit_in_bytes"  # present when swap accounting is on
    if swap.exists():
        swap.write_text(limit)
    (processes / "pids.max").write_text(str(pids))
    return Cgroup([memory, processes], memory / "memory.oom_control", "oom_kill")


def _create_v2(name: str, memory_mb: int, pids: int) -> Cgroup:
    parent = ROOT / "agentgym"  # a child of the root, which may hold processes and delegate
    parent.mkdir(exist_ok=True)
    for level in (ROOT, parent):
        (level / "cgroup.subtree_control").write_text("+memory +pids")
    folder = parent / name
    folder.mkdir()
    (folder / "memory.max").write_text(str(memory_mb << 20))
    (folder / "memory.swap.max").write_text("0")
    (folder / "pids.max").write_text(str(pids))
    return Cgroup([folder], folder / "memory.events", "oom_kill")


def reap_orphans() -> int:
    """Remove cgroups left by agentgym processes that no longer run; how many."""
    removed = 0
    if os.geteuid() != 0:
        return removed
    for parent in (ROOT / "memory", ROOT / "pids", ROOT / "agentgym"):
        for folder in parent.glob("agentgym-*") if parent.is_dir() else []:
            pid = folder.name.split("-")[1]
            if pid.isdigit() and not alive(int(pid)):
                Cgroup([folder], folder, "").remove()
                removed += 1
    return removed
