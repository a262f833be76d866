"""Episode workspaces: hard-link copies of a task's repository, their diff and fingerprint.

A reset links every file of the task's frozen repository into a fresh folder instead of
copying it, so resetting a 1,000-file repository costs milliseconds. The frozen files are
read-only and the sandbox user does not own them, so an agent cannot write through a link
into the repository; editors (and our tools) replace a file instead, which breaks the link
and leaves the original untouched. When the sandbox runs as the user who owns the frozen
files (not root: no other uid to switch to), a link could be made writable again, so
workspaces are real copies instead. The diff and the fingerprint are read on the host
without following symlinks and without opening anything but regular files, and both are
bounded: the fingerprint re-reads only files that changed since it last looked.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from environments.swe import mounts
from environments.swe.mounts import unmount

MAX_DIFF_FILE = 1_000_000  # bytes; larger changed files are named, not diffed
MAX_DIFF_TOTAL = 4_000_000  # bytes of diff text; the remaining changed files are counted
MAX_HASHED_FILE = 8 << 20  # bytes of a file the fingerprint hashes (then its size stands in)
SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache"})


def freeze(repo: Path) -> None:
    """Make a task repository's files read-only (the source every workspace links to)."""
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(0o444)


def link_copy(repo: Path, dest: Path, owner: int | None = None) -> None:
    """Fill ``dest`` (emptied first) with ``repo``'s files; folders belong to ``owner``.

    Files are hard links when the sandbox runs as another user (``owner``) and ``dest`` is
    on the repository's file system, else copies: a sandbox running as the frozen files'
    owner could ``chmod`` a link and write through it.
    """
    empty(dest)
    link = owner is not None and dest.stat().st_dev == repo.stat().st_dev
    top, into = str(repo), str(dest)
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        target = into + root[len(top):]
        os.makedirs(target, exist_ok=True)
        if owner is not None:
            os.chown(target, owner, owner)
        for name in files:
            source, copy = os.path.join(root, name), os.path.join(target, name)
            if os.path.islink(source):
                os.symlink(os.readlink(source), copy)
            elif link:
                os.link(source, copy)
            else:
                _copy(source, copy)
                info = os.stat(source)  # a copy keeps the repository's times, as a link does
                os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))


def _copy(source: str, copy: str) -> None:
    """A new file ``copy`` (mode 0644) with ``source``'s bytes; small ones in one read."""
    if os.path.getsize(source) > 1 << 20:
        shutil.copyfile(source, copy)
        os.chmod(copy, 0o644)
        return
    with open(source, "rb") as handle:
        data = handle.read()
    made = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(made, "wb") as out:
        out.write(data)


def empty(folder: Path) -> None:
    """Make ``folder`` an empty folder (it may be a mount point, which stays)."""
    folder.mkdir(exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ---------------------------------------------------------------------------- disk quota
def mount_quota(folder: Path, size_mb: int) -> str:
    """Mount an empty tmpfs of ``size_mb`` on ``folder``: a hard cap on what is written there.

    Returns ``""``, or why there is no quota (it needs root).
    """
    unmount(folder)
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        return "a disk quota needs root (it is a tmpfs mount)"
    return mounts.mount_tmpfs(folder, f"size={size_mb}m,mode=0711")


def quota_full(folder: Path) -> bool:
    """Whether the quota mounted on ``folder`` is used up (less than 64 KiB left)."""
    if not os.path.ismount(folder):
        return False
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize < 64 << 10


@functools.lru_cache(maxsize=256)
def tree_mb(root: Path) -> int:
    """The space a copy of a frozen folder takes in MB, rounded up; computed once per folder.

    Each file counts a block at least, and a block more for its entry.
    """
    files = _files(root).values()
    used = sum(max(info.st_blocks * 512, 4096) for info in files) + 4096 * len(files)
    return (used >> 20) + 1


def diff(repo: Path, workspace: Path) -> str:
    """A unified diff (``a/`` = repository, ``b/`` = workspace) of every changed text file.

    Past ``MAX_DIFF_TOTAL`` bytes the remaining changed files are only counted.
    """
    chunks, size, left = [], 0, 0
    for rel, old, new in changed_entries(repo, workspace):
        if size > MAX_DIFF_TOTAL:
            left += 1
            continue
        chunk = _file_diff(rel, repo / rel if old else None, workspace / rel if new else None)
        chunks.append(chunk)
        size += len(chunk)
    if left:
        chunks.append(f"[diff stops here: {left} more changed files]\n")
    return "".join(chunks)


def changed_entries(repo: Path, workspace: Path,
                    before: dict[str, os.stat_result] | None = None,
                    ) -> list[tuple[str, os.stat_result | None, os.stat_result | None]]:
    """Every entry that is not a link to the repository's file, sorted.

    Each is ``(path, repository lstat, workspace lstat)``, None where a side lacks it.
    ``before``: the repository's listing, when the caller keeps one (a frozen repository).
    """
    before, after = before if before is not None else _files(repo), _files(workspace)
    return [(rel, before.get(rel), after.get(rel)) for rel in sorted(set(before) | set(after))
            if not _same_inode(before.get(rel), after.get(rel))]


def _same_inode(old: os.stat_result | None, new: os.stat_result | None) -> bool:
    return (old is not None and new is not None and old.st_ino == new.st_ino
            and old.st_dev == new.st_dev)


class Fingerprint:
    """A short hash of a workspace's content changes against its repository.

    Equal content gives equal fingerprints whatever the path to it (so trajectories that
    reach the same workspace share a state). Each file is hashed once per version: digests
    are kept by inode and change time, which no command can set back.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.bytes_hashed = 0  # file content read so far (what the budget is about)
        self._digests: dict[tuple[int, ...], str] = {}
        self._repo_files = _files(repo)  # the repository is frozen: listed once

    def adopt(self, workspace: Path) -> None:
        """Record that ``workspace`` was just copied from the repository, unchanged.

        The copies' digests are then the repository's: the next fingerprint hashes none of
        them (a command that changes a copy changes its change time, so it is hashed anew).
        """
        seen = dict(self._digests)
        for rel, info in _files(workspace).items():
            old = self._repo_files.get(rel)
            if old is not None and old.st_size == info.st_size \
                    and stat.S_IFMT(old.st_mode) == stat.S_IFMT(info.st_mode):
                seen[_version(info)] = self._digest(self.repo, rel, old, seen)
        self._digests = seen

    def __call__(self, workspace: Path) -> str:
        """The fingerprint of ``workspace`` now."""
        total = hashlib.sha1()
        for rel, _, digest in self.changes(workspace):
            total.update(f"{rel}\0{digest}\n".encode("utf-8", "surrogateescape"))
        return total.hexdigest()[:16]

    def changes(self, workspace: Path) -> list[tuple[str, os.stat_result | None, str]]:
        """The entries whose content differs from the repository's, sorted.

        Each is ``(path, workspace lstat or None if deleted, content digest)``.
        """
        seen: dict[tuple[int, ...], str] = {}
        found = []
        for rel, old, new in changed_entries(self.repo, workspace, self._repo_files):
            digest = self._digest(workspace, rel, new, seen) if new else "deleted"
            if old is not None and digest == self._digest(self.repo, rel, old, seen):
                continue  # an equal copy
            found.append((rel, new, digest))
        self._digests = seen  # forget versions that are gone
        return found

    def _digest(self, root: Path, rel: str, info: os.stat_result, seen: dict) -> str:
        key = _version(info)
        if key not in seen:
            seen[key] = self._digests.get(key) or self._hash(root / rel, info)
        return seen[key]

    def _hash(self, path: Path, info: os.stat_result) -> str:
        if stat.S_ISREG(info.st_mode):
            self.bytes_hashed += min(info.st_size, MAX_HASHED_FILE)
        return content_digest(path, info)


def _version(info: os.stat_result) -> tuple[int, ...]:
    """What identifies one version of a file: no command can set its change time back."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
            info.st_mode)


def content_digest(path: Path, info: os.stat_result) -> str:
    """A hash of an entry's content.

    A link's target, a regular file's size and bytes (the first ``MAX_HASHED_FILE``), or
    else its type.
    """
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.fsencode(os.readlink(path)).hex()
    if not stat.S_ISREG(info.st_mode):
        return f"type:{stat.S_IFMT(info.st_mode)}"
    digest = hashlib.sha1(str(info.st_size).encode())
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    with os.fdopen(descriptor, "rb") as handle:
        left = MAX_HASHED_FILE
        while left > 0 and (block := handle.read(min(left, 1 << 20))):
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def _files(root: Path) -> dict[str, os.stat_result]:
    """Every file, link and special file under ``root`` (linked folders listed, not entered)."""
    found = {}
    top = str(root)
    skip = len(top) + 1
    for folder, dirs, files in os.walk(top):
        linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d not in linked]
        for name in files + linked:
            path = os.path.join(folder, name)
            found[path[skip:]] = os.lstat(path)
    return found


def _read(path: Path | None) -> list[str] | None:
    """The lines of a regular file; never follows a symlink or opens a fifo or device."""
    if path is None:
        return []
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return [f"<symlink to {os.readlink(path)}>\n"]
    if not stat.S_ISREG(info.st_mode):
        return ["<not a regular file>\n"]
    if info.st_size > MAX_DIFF_FILE:
        return None
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(MAX_DIFF_FILE + 1)
    if b"\0" in data:
        return None
    return data.decode("utf-8", "replace").splitlines(keepends=True)


def _file_diff(rel: str, old_path: Path | None, new_path: Path | None) -> str:
    old, new = _read(old_path), _read(new_path)
    if old is None or new is None:
        return f"Binary or large file {rel} differs\n"
    if old == new:
        return ""
    lines = difflib.unified_diff(old, new, f"a/{rel}" if old_path else "/dev/null",
                                 f"b/{rel}" if new_path else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def read_text(path: Path, root: Path) -> str | None:
    """A workspace file's text, or None if it is missing, outside ``root`` or not a plain file."""
    try:
        inside = path.resolve().is_relative_to(root.resolve())
        regular = stat.S_ISREG(path.lstat().st_mode)
    except (FileNotFoundError, RuntimeError):
        return None
    lines = _read(path) if inside and regular else None
    return None if lines is None else "".join(lines)


# ---------------------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class Changes:
    """What a workspace holds beyond its repository: a snapshot's part of an SWE episode.

    ``files``: ``(path, mode, bytes, mtime)`` for each changed regular file, link (its
    target) and fifo; ``deleted``: the repository's entries it lacks; ``folders``: every
    folder's modification time (``ls -l`` shows them), the workspace's own as ``""``.
    """

    files: tuple[tuple[str, int, bytes, int], ...]
    deleted: tuple[str, ...]
    folders: tuple[tuple[str, int], ...]


def capture(fingerprint: Fingerprint, workspace: Path) -> Changes:
    """The workspace's :class:`Changes` against ``fingerprint``'s repository."""
    files, deleted = [], []
    for rel, info, _ in fingerprint.changes(workspace):
        if info is None:
            deleted.append(rel)
            continue
        mode, data = info.st_mode, b""
        if stat.S_ISLNK(mode):
            data = os.fsencode(os.readlink(workspace / rel))
        elif stat.S_ISREG(mode):
            data = _read_bytes(workspace / rel)
        elif not stat.S_ISFIFO(mode):
            continue  # a device or socket: nothing the sandbox user can make again
        files.append((rel, mode, data, info.st_mtime_ns))
    folders = {rel: (workspace / rel).lstat().st_mtime_ns for rel in ["", *_folders(workspace)]}
    return Changes(tuple(files), tuple(deleted), tuple(sorted(folders.items())))


def restore_changes(fingerprint: Fingerprint, workspace: Path, changes: Changes,
                    owner: int | None) -> None:
    """Make ``workspace`` its repository plus ``changes``, touching only what differs now.

    Nothing is followed: the snapshot's folders are made real folders first (a link the
    agent put in a folder's place is removed), and no entry is touched below a link.
    """
    repo, folders = fingerprint.repo, dict(changes.folders)
    now = {rel for rel, _, _ in fingerprint.changes(workspace)}
    for folder in sorted(_folders(workspace) - set(folders), reverse=True):
        _remove(workspace / folder)
    for folder in sorted(folders):
        made = _below_folders(workspace, folder)
        if made is not None and not stat.S_ISDIR(_mode(made)):
            _remove(made)
            made.mkdir()
            if owner is not None:
                os.chown(made, owner, owner)
    wanted = {rel for rel, *_ in changes.files} | set(changes.deleted) | set(folders)
    for rel in sorted(now - wanted):  # back to the repository's version
        if (path := _below_folders(workspace, rel)) is not None:
            _remove(path)
            if (repo / rel).exists() or (repo / rel).is_symlink():
                _copy_entry(repo / rel, path, owner)
    for rel in changes.deleted:
        if (path := _below_folders(workspace, rel)) is not None:
            _remove(path)
    for rel, mode, data, mtime in changes.files:
        path = _below_folders(workspace, rel)
        assert path is not None  # its folder is one of the snapshot's, made real above
        _write_entry(path, mode, data, owner)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    for folder, mtime in sorted(folders.items(), reverse=True):  # what is inside goes first
        os.utime(workspace / folder, ns=(mtime, mtime), follow_symlinks=False)


def _below_folders(workspace: Path, rel: str) -> Path | None:
    """``workspace / rel`` if every folder on the way is a real folder (no link), else None."""
    here = workspace
    for part in Path(rel).parts[:-1]:
        here = here / part
        if not stat.S_ISDIR(_mode(here)):
            return None
    return workspace / rel


def _mode(path: Path) -> int:
    """``lstat`` mode, 0 when nothing is there."""
    try:
        return path.lstat().st_mode
    except FileNotFoundError:
        return 0


def _read_bytes(path: Path) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def _folders(root: Path) -> set[str]:
    """Every folder under ``root`` (relative; linked folders are entries, not folders)."""
    found: set[str] = set()
    top = str(root)
    for folder, dirs, _ in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS
                   and not os.path.islink(os.path.join(folder, d))]
        found.update(os.path.join(folder, d)[len(top) + 1:] for d in dirs)
    return found


def _remove(path: Path) -> None:
    """Remove whatever is at ``path`` (a folder with what it holds), never following links."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _copy_entry(source: Path, dest: Path, owner: int | None) -> None:
    """The repository's entry ``source`` at ``dest``, as ``link_copy`` makes it."""
    if source.is_symlink():
        os.symlink(os.readlink(source), dest)
    elif owner is not None and dest.parent.stat().st_dev == source.stat().st_dev:
        os.link(source, dest)
    else:
        _copy(str(source), str(dest))
        os.utime(dest, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))


def _write_entry(path: Path, mode: int, data: bytes, owner: int | None) -> None:
    _remove(path)
    if stat.S_ISLNK(mode):
        os.symlink(os.fsdecode(data), path)
        if owner is not None:
            os.lchown(path, owner, owner)
        return
    if stat.S_ISFIFO(mode):
        os.mkfifo(path, stat.S_IMODE(mode))
    else:
        made = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(made, "wb") as out:
            out.write(data)
    os.chmod(path, stat.S_IMODE(mode))
    if owner is not None:
        os.chown(path, owner, owner)
