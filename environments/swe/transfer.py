"""Workspaces for engines that cannot see this machine's folders (a remote docker engine).

The container gets the workspace as a tar stream fed to ``tar -x`` inside it, and after
every command the container's workspace is mirrored back into the host folder, so
everything the env reads on the host (the state key, the expert, grading) sees the agent's
changes. Unchanged files are not rewritten: their inodes stay, and the fingerprint does not
hash them again.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

from agentgym.errors import SandboxError
from environments.swe.sandbox import SANDBOX_UID


def pack(workspace: Path) -> bytes:
    """``workspace`` as a tar archive whose entries belong to the sandbox user."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in sorted(workspace.rglob("*")):
            info = tar.gettarinfo(str(entry), arcname=str(entry.relative_to(workspace)))
            info.uid = info.gid = SANDBOX_UID
            info.uname = info.gname = ""
            if info.isfile():
                info.mode &= ~0o222  # as when bound: the sandbox replaces files, never edits
                with entry.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def mirror(archive: bytes, workspace: Path) -> None:
    """Make ``workspace`` hold what ``archive`` holds, rewriting only what changed.

    ``archive`` is ``tar -c .`` of the container's workspace; special files are left out.
    """
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {os.path.normpath(m.name): m for m in tar.getmembers()}
        members.pop(".", None)
        for rel in _stale(workspace, members):
            path = workspace / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for rel, member in sorted(members.items()):
            _place(tar, member, workspace, rel)


def _stale(workspace: Path, members: dict[str, tarfile.TarInfo]) -> list[str]:
    stale = []
    for entry in workspace.rglob("*"):
        rel = str(entry.relative_to(workspace))
        member = members.get(rel)
        if member is None or _kind(entry) != _member_kind(member):
            stale.append(rel)
    return sorted(stale, key=len, reverse=True)


def _place(tar: tarfile.TarFile, member: tarfile.TarInfo, workspace: Path, rel: str) -> None:
    path = workspace / rel
    if not os.path.realpath(path.parent).startswith(os.path.realpath(workspace)):
        raise SandboxError(f"The container's workspace holds an entry outside it: {rel!r}.")
    if member.isdir():
        path.mkdir(exist_ok=True)
    elif member.issym():
        if not path.is_symlink() or os.readlink(path) != member.linkname:
            if path.is_symlink():
                path.unlink()
            os.symlink(member.linkname, path)
    elif member.isfile() or member.islnk():
        data = tar.extractfile(member)
        content = data.read() if data else b""
        if path.is_symlink() or not path.is_file() or path.stat().st_size != len(content) \
                or path.read_bytes() != content:
            if path.is_symlink() or path.exists():
                path.unlink()  # a new file, never a write through a link (dangling ones too)
            made = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(made, "wb") as out:
                out.write(content)


def _kind(path: Path) -> str:
    mode = path.lstat().st_mode
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def _member_kind(member: tarfile.TarInfo) -> str:
    return "link" if member.issym() else "dir" if member.isdir() else "file"  # hard: a file
