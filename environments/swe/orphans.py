"""What a dead agentgym process leaves behind, and reaping it.

Everything an SWE episode holds on the host (its folder, a quota mount, a cgroup, a
container) carries the pid of the process that made it. A process killed with SIGKILL runs
no cleanup, so the next one to start reaps whatever belongs to pids that no longer run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

ROOT_PREFIX = "agentgym-swe-"
_OWNED = re.compile(rf"^{ROOT_PREFIX}(\d+)-")


def alive(pid: int) -> bool:
    """Whether a process with this pid runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def episode_root() -> Path:
    """A new folder for one env's workspaces, named after this process.

    Mode 0711: the sandbox user reaches its workspace inside, and lists nothing.
    """
    root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
    root.chmod(0o711)
    return root


def reap_episode_roots(parent: Path | None = None) -> list[Path]:
    """Remove the episode folders (and their quota mounts) of processes that are gone."""
    from environments.swe.mounts import unmount

    reaped = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
        owner = _OWNED.match(folder.name)
        if owner and not alive(int(owner[1])) and folder.is_dir():
            try:
                inside = list(folder.iterdir())
            except PermissionError:
                continue  # another user's: theirs to reap
            for inner in inside:
                unmount(inner)
            unmount(folder)  # a folder of warm-container slots is a mount of its own
            shutil.rmtree(folder, ignore_errors=True)
            reaped.append(folder)
    return reaped
