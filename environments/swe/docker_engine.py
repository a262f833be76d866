"""Talking to the docker engine: one ``docker`` CLI call, and whether an engine answers."""

from __future__ import annotations

import shutil
import subprocess

from agentgym.errors import SandboxError


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run the docker CLI; its stdout."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def docker_available() -> bool:
    """Whether a docker engine answers."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False
