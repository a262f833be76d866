"""The docker sandbox's base image, built offline: no registry is reachable here.

``debootstrap --variant=minbase`` assembles a Debian root filesystem (with Python 3 and
pytest) from the host's own apt mirror, and ``docker import`` turns it into an image. It is
built once per docker engine (about a minute) and found again by its tag afterwards.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from agentgym.cache import cache_root, cached_folder
from agentgym.errors import MissingDependencyError
from environments.swe.docker_engine import Engine, engine

PACKAGES = ("python3", "python3-pytest")
_DEFAULT_MIRROR = "http://deb.debian.org/debian"


def base_image_tag() -> str:
    """``agentgym-swe-base:<hash of the recipe>``."""
    recipe = f"{_suite()} {_mirror()} {' '.join(PACKAGES)} minbase"
    return "agentgym-swe-base:" + hashlib.sha1(recipe.encode()).hexdigest()[:10]


def ensure_base_image(on: Engine | None = None) -> str:
    """The base image's tag, imported first if the engine (default: DOCKER_HOST's) lacks it.

    The root file system is built once per machine (``debootstrap``, about a minute) and
    kept in agentgym's cache, so another engine imports it in seconds.
    """
    on = on or engine()
    tag = base_image_tag()
    if on.has_image(tag):
        return tag
    folder = cached_folder(cache_root() / "swe" / "base-rootfs" / tag.partition(":")[2],
                           _build_rootfs)
    repository, _, version = tag.partition(":")
    with on.failing(f"importing the base image {tag}"):
        on.api.import_image_from_file(str(folder / "rootfs.tar"), repository=repository,
                                      tag=version)
    return tag


def _build_rootfs(staging: Path) -> None:
    """``staging/rootfs.tar``: a minimal Debian with bash, python3 and pytest."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise MissingDependencyError(
            "debootstrap, run as root, to build the SWE base image", apt="debootstrap",
            hint="Or pass image= to the docker sandbox with an image that has bash, python3 "
                 "and pytest.")
    from rich.console import Console

    with tempfile.TemporaryDirectory(prefix="agentgym-rootfs-") as tmp, \
            Console(stderr=True).status("Building the SWE base image's root file system "
                                        "(debootstrap, about a minute, once per machine)"):
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                        _suite(), str(rootfs), _mirror()], check=True, capture_output=True)
        with tarfile.open(staging / "rootfs.tar", "w") as tar:
            tar.add(rootfs, arcname=".")


def _suite() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    return match[1] if match else "bookworm"


def _mirror() -> str:
    """The host's Debian mirror (it is the one apt can reach), else deb.debian.org."""
    for source in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if source.exists():
            match = re.search(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b", source.read_text())
            if match:
                return match[1]
    return _DEFAULT_MIRROR
