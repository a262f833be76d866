"""Grading that trusts nothing the agent wrote except its source change.

At submission the agent's change is read from its workspace (on the host, never following a
link), and every change the tests could be steered by is dropped: test files, anything that
configures or extends the test runner or the interpreter, bytecode, links, and new modules
that shadow the standard library or the test runner. What is left is written into a fresh
copy of the frozen repository, which is tested in a fresh sandbox (no process of the episode
is alive) with plugin autoloading and bytecode off and an isolated interpreter. The results
come from a report our own pytest plugin writes, not from what the tests print.

What this cannot stop: the agent's source code runs inside the test process, so a source
change may tamper with pytest from within. Added lines that name the test machinery are
dropped for that reason (:data:`TAMPERING`); a determined agent could still hide such code,
which is why ``agentgym probe`` keeps trying.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from environments.swe.patches import PatchError
from environments.swe.workspace import (
    MAX_DIFF_FILE,
    changed_entries,
    content_digest,
    link_copy,
)

RUNNER_CONFIG = frozenset({
    "conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "setup.py",
    "noxfile.py", "sitecustomize.py", "usercustomize.py", ".coveragerc",
})
"""File names that configure or extend the test runner or the interpreter."""
TEST_DIRS = frozenset({"tests", "test", "testing"})
RUNNER_MODULES = frozenset({"pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging",
                            "unittest", "nose", "hypothesis", "xdist", "coverage"})
SHADOWED = RUNNER_MODULES | frozenset(sys.stdlib_module_names)
"""Top-level module names a new file may not take."""
TAMPERING = re.compile(
    r"\b(_?pytest|pluggy|conftest|junit|sys\.modules|builtins|__builtins__|settrace|"
    r"setprofile|atexit|os\._exit|faulthandler|__main__|argv|gc|_getframe|currentframe|"
    r"tb_frame|f_back|f_locals|f_globals|inspect|__import__|importlib|getpid|kill|killpg|"
    r"signal|stdin)\b|/proc\b")
"""Names an added source line may not mention: the test machinery, the runner's process
(its arguments, frames, memory, standard input, signals) and process exits."""


@dataclass
class Change:
    """The agent's change, split into what grading applies and what it drops (with why)."""

    files: dict[str, bytes | None] = field(default_factory=dict)  # None: deleted
    dropped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line naming the dropped paths, for the submission's observation."""
        if not self.dropped:
            return ""
        shown = ", ".join(f"{path} ({why})" for path, why in list(self.dropped.items())[:6])
        more = len(self.dropped) - 6
        return f"Not graded: {shown}" + (f" and {more} more" if more > 0 else "") + "."


def agent_change(repo: Path, workspace: Path, test_files: list[str]) -> Change:
    """Every path the workspace changed against the frozen repository, sorted into kept/dropped."""
    change = Change()
    for rel, old, new in changed_entries(repo, workspace):
        if old is not None and new is not None and stat.S_ISREG(new.st_mode) \
                and content_digest(workspace / rel, new) == content_digest(repo / rel, old):
            continue  # an equal copy (workspaces are copies when the sandbox is not root's)
        why = _protected(rel, existed=old is not None, test_files=test_files)
        if why is None and new is not None:
            why = _not_source(new)
        if why is None and new is not None:
            content = _read_regular(workspace / rel)
            why = "too large" if content is None else _tampers(content, repo / rel, old)
            if why is None:
                change.files[rel] = content
        elif why is None:
            change.files[rel] = None
        if why is not None:
            change.dropped[_display(rel)] = why
    return change


def _protected(rel: str, existed: bool, test_files: list[str]) -> str | None:
    """Why a path may not be changed by the agent, or None."""
    parts = Path(rel).parts
    name = parts[-1]
    if rel in test_files or parts[0] in TEST_DIRS or name.startswith("test_") \
            or name.endswith("_test.py"):
        return "a test file"
    if name in RUNNER_CONFIG or name.endswith(".pth"):
        return "configures the test runner or interpreter"
    if "__pycache__" in parts or name.endswith((".pyc", ".pyo")):
        return "bytecode"
    if not existed and Path(parts[0]).stem in SHADOWED:
        return f"shadows the module {Path(parts[0]).stem!r}"
    return None


def _not_source(info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return None


def _read_regular(path: Path) -> bytes | None:
    """A regular file's bytes, opened without following links; None above the size limit."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(MAX_DIFF_FILE + 1)
    return None if len(data) > MAX_DIFF_FILE else data


def _tampers(content: bytes, original: Path, existed: os.stat_result | None) -> str | None:
    """Whether lines the agent added name the test machinery (see :data:`TAMPERING`)."""
    old = set(original.read_bytes().splitlines()) if existed is not None else set()
    for line in content.splitlines():
        if line not in old and TAMPERING.search(line.decode("utf-8", "replace")):
            return "its added lines reach into the test runner"
    return None


def _display(rel: str) -> str:
    """A path as printable text, whatever bytes its name holds."""
    return os.fsencode(rel).decode("utf-8", "replace")


def build_tree(repo: Path, dest: Path, change: Change, owner: int | None) -> None:
    """A fresh copy of the frozen repository with the kept change written into it."""
    link_copy(repo, dest, owner)
    for rel, content in change.files.items():
        write_file(dest, rel, content)


def write_file(root: Path, rel: str, content: bytes | None) -> None:
    """Write (or delete, for None) ``root/rel`` from the host without following any link.

    Every folder on the way must be a real folder under ``root``; the file is replaced (a new
    inode), never written through.
    """
    parts = Path(rel).parts
    if not parts or ".." in parts or Path(rel).is_absolute():
        raise PatchError(f"not a relative path inside the tree: {rel!r}")
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        try:
            info = folder.lstat()
        except FileNotFoundError:
            folder.mkdir()
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise PatchError(f"{folder} is not a real folder")
    target = folder / parts[-1]
    try:
        if not stat.S_ISDIR(target.lstat().st_mode):
            target.unlink()
    except FileNotFoundError:
        pass
    if content is not None:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)


# pytest runs with our reporter as a plugin object. The report goes to fd 3 (the only way
# out: the tests' own stdout and stderr are discarded) once pytest.main returns, signed with
# a token the runner read from stdin before any project code ran, and the process then ends
# at once: a report forged by the project's code (which runs in this process) lacks the
# token, and a process killed before the real report has none
_RUNNER = """
import json, os, sys
def run(token=sys.stdin.readline().strip()):
    import pytest
    results = {}
    class Report:
        def pytest_runtest_logreport(self, report):
            if report.failed:
                results[report.nodeid] = False
            elif report.when == "call" and report.nodeid not in results:
                results[report.nodeid] = bool(report.passed)
    sys.path.insert(0, "")
    try:
        pytest.main(sys.argv[1:], plugins=[Report()])
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        line = "\\nagentgym-report:" + json.dumps({"token": token, "results": results})
        os.write(3, (line + "\\n").encode())
        os._exit(0)
run()
"""
REPORT_BYTES = 32 << 20  # output kept whole when the tests run: room for any report
_REPORT = "agentgym-report:"


@dataclass(frozen=True)
class SuiteCommand:
    """How to run a project's tests so that only our reporter's verdict counts.

    Run ``script`` with ``stdin`` as its standard input; :meth:`results` reads the verdict
    from the output, :meth:`log` the rest (pytest's log with ``show_log``).
    """

    script: str
    token: str

    @property
    def stdin(self) -> bytes:
        """The token, read by the runner before any project code runs."""
        return (self.token + "\n").encode()

    def results(self, output: str) -> dict[str, bool]:
        """Test id -> passed, from the one report carrying the token (empty if none)."""
        import json

        for line in output.splitlines():
            if not line.startswith(_REPORT):
                continue  # ours starts a line; anything else is the tests' text
            try:
                report = json.loads(line[len(_REPORT):])
            except ValueError:
                continue
            if isinstance(report, dict) and report.get("token") == self.token \
                    and isinstance(report.get("results"), dict):
                return {str(k): v is True for k, v in report["results"].items()}
        return {}

    def log(self, output: str) -> str:
        """The output without report lines."""
        return "\n".join(ln for ln in output.splitlines() if not ln.startswith(_REPORT))


def suite_command(test_args: str = "", python: str = "python3", show_log: bool = False
                  ) -> SuiteCommand:
    """The command that runs the tests, with a fresh token.

    Plugin autoloading and bytecode are off, the interpreter is isolated (``-I``: no
    environment variables, no user site), the working folder goes on the path only after
    pytest is imported, and pytest's own log is kept only with ``show_log`` (task synthesis
    reads the failures from it).
    """
    runner = _RUNNER.replace("'", "'\\''")
    extra, output = ("--tb=short", "2>&1") if show_log else ("", ">/dev/null 2>&1")
    script = (f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {python} -I -B -c '{runner}' "
              f"-p no:cacheprovider -q {extra} {test_args} 3>&1 {output}")
    return SuiteCommand(script, secrets.token_hex(16))
