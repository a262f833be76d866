"""The on-disk cache for generated data (games, indexes): built once, safe across processes.

A folder is built in a staging folder next to it and appears by one atomic rename, so a
reader never sees half of it; a lock file serialises two processes building the same one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """``$AGENTGYM_CACHE``, else ``~/.cache/agentgym``."""
    return Path(os.environ.get("AGENTGYM_CACHE") or Path.home() / ".cache" / "agentgym")


def cached_folder(folder: Path, build: Callable[[Path], None]) -> Path:
    """Return ``folder``, first calling ``build(staging_folder)`` if it does not exist yet."""
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same folder
        if not folder.exists():
            staging = Path(tempfile.mkdtemp(prefix=f".build-{folder.name}-", dir=folder.parent))
            try:
                build(staging)
                os.replace(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return folder
