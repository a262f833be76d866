"""Episode workspaces: hard-link copies of a task's repository, and their diff against it.

A reset links every file of the task's frozen repository into a fresh folder instead of
copying it, so resetting a 1,000-file repository costs milliseconds. The frozen files are
read-only and the sandbox user does not own them, so an agent cannot write through a link
into the repository; editors (and our tools) replace a file instead, which breaks the link
and leaves the original untouched. The diff is read on the host without following symlinks
and without opening anything but regular files.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
from pathlib import Path

MAX_DIFF_FILE = 1_000_000  # bytes; larger changed files are named, not diffed
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
    """Fill ``dest`` with hard links to ``repo``'s files; folders belong to ``owner``."""
    if dest.exists():
        shutil.rmtree(dest)
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        target = dest / Path(root).relative_to(repo)
        target.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(target, owner, owner)
        for name in files:
            source = Path(root) / name
            if source.is_symlink():
                os.symlink(os.readlink(source), target / name)
            else:
                os.link(source, target / name)


def relink(repo: Path, dest: Path, paths: list[str]) -> None:
    """Put ``repo``'s versions of ``paths`` back into ``dest`` (undoing any edits).

    A path the repository lacks is removed from ``dest``.
    """
    for rel in paths:
        target = dest / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        if (repo / rel).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(repo / rel, target)


def diff(repo: Path, workspace: Path) -> str:
    """A unified diff (``a/`` = repository, ``b/`` = workspace) of every changed text file."""
    before, after = _files(repo), _files(workspace)
    chunks = []
    for rel in sorted(set(before) | set(after)):
        old, new = before.get(rel), after.get(rel)
        if old is not None and new is not None and old.st_ino == new.st_ino:
            continue  # still the hard link: unchanged
        chunks.append(_file_diff(rel, repo / rel if old else None,
                                 workspace / rel if new else None))
    return "".join(chunks)


def _files(root: Path) -> dict[str, os.stat_result]:
    found = {}
    for folder, dirs, files in os.walk(root):  # os.walk does not follow symlinked folders
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = path.lstat()
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
