"""SWE tasks synthesized from Python projects with their own tests, and SWE-bench records.

From a project (one of the small libraries shipped here, a local folder, or a PyPI source
distribution that ships its tests) a task set is made the SWE-smith way: inject a bug by an
AST mutation, run the tests in a sandbox, and keep the mutation if it breaks at least one
test while others still pass. FAIL_TO_PASS are the tests it breaks, PASS_TO_PASS the ones
still passing, the problem statement is written from the failing tests' assertion output
(test names only with ``leak_test_names``), and the gold patch is the inverse diff.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from agentgym.cache import cache_root, cached_folder
from agentgym.errors import InvalidOptionError, TaskNotFoundError
from environments.swe import grading
from environments.swe.docker_engine import Engine, engine
from environments.swe.mutations import Mutation, mutations
from environments.swe.sandbox import SANDBOX_UID, Sandbox
from environments.swe.workspace import freeze

LIBRARIES_DIR = Path(__file__).parent / "libraries"
EMBEDDED = tuple(sorted(p.name for p in LIBRARIES_DIR.iterdir() if p.is_dir()))
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.pyc", ".tox",
                                  "build", "dist", "*.egg-info")
SWE_BENCH_FIELDS = ("instance_id", "repo", "base_commit", "problem_statement", "patch",
                    "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")


@dataclass
class SWETask:
    """One task: a buggy repository and how it is judged.

    Attributes:
        instance_id: ``<project>__<mutation>`` for synthesized tasks.
        repo: The project's name.
        problem_statement: What the agent is told.
        patch: The gold patch (a diff from the buggy repository to the fixed one).
        fail_to_pass: Tests the bug breaks; they must pass after the fix.
        pass_to_pass: Tests that pass before and must still pass after.
        test_files: Test files, put back to their original state before grading.
        gold_edit: ``{"path", "old", "new"}``: the patch as one ``str_replace``.
        folder: Where the task lives on disk (``repo/`` is the buggy repository).
        image: A docker image per instance (SWE-bench records), else None.
    """

    instance_id: str
    repo: str
    problem_statement: str
    patch: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    test_files: list[str]
    gold_edit: dict[str, str]
    folder: Path | None = None
    image: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def repo_dir(self) -> Path:
        """The frozen buggy repository every workspace links to."""
        assert self.folder is not None
        return self.folder / "repo"

    def save(self, folder: Path) -> None:
        """Write ``task.json`` into ``folder``."""
        data = {k: v for k, v in asdict(self).items() if k != "folder"}
        (folder / "task.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, folder: Path) -> SWETask:
        """Read a task written by :meth:`save`."""
        return cls(**json.loads((folder / "task.json").read_text()), folder=folder)


# ---------------------------------------------------------------------------- projects
def project_folder(source: str, scratch: Path) -> tuple[str, Path]:
    """``(name, folder)`` of a task source: an embedded library, ``pypi:NAME==VER`` or a path."""
    if source in EMBEDDED:
        return source, LIBRARIES_DIR / source
    if source.startswith("pypi:"):
        return _from_pypi(source.removeprefix("pypi:"), scratch)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise InvalidOptionError(
            f"Unknown SWE task source {source!r}: not an embedded library ({', '.join(EMBEDDED)}),"
            " not 'pypi:NAME==VERSION', and not an existing folder."
        )
    return path.resolve().name, path


def _from_pypi(requirement: str, scratch: Path) -> tuple[str, Path]:
    """Download a source distribution (needs the package index) and unpack it."""
    # pip reads the sdist's metadata with `python`: this interpreter's, first on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "-d", str(scratch / "sdist"), requirement],
        capture_output=True, text=True, env={**os.environ, "PATH": path})
    archives = list((scratch / "sdist").glob("*")) if done.returncode == 0 else []
    if not archives:
        raise TaskNotFoundError(f"Could not download the source of {requirement!r} from PyPI: "
                                f"{done.stderr.strip()[-300:]}")
    unpacked = scratch / "project"
    if archives[0].suffix == ".zip":
        with zipfile.ZipFile(archives[0]) as zipped:
            zipped.extractall(unpacked)
    else:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(unpacked, filter="data")
    (root,) = [p for p in unpacked.iterdir() if p.is_dir()] or [unpacked]
    return requirement.split("==")[0], root


def split_files(project: Path) -> tuple[list[str], list[str]]:
    """``(source files, test files)`` of a project, relative paths, sorted."""
    sources, tests = [], []
    for path in sorted(project.rglob("*.py")):
        rel = path.relative_to(project)
        if any(part.startswith(".") or part in ("build", "dist", "docs") for part in rel.parts):
            continue
        is_test = (rel.parts[0] in ("tests", "test", "testing") or path.name.startswith("test_")
                   or path.name.endswith("_test.py") or path.name == "conftest.py")
        if is_test:
            tests.append(str(rel))
        elif path.name not in ("setup.py", "noxfile.py") and "examples" not in rel.parts:
            sources.append(str(rel))
    return sources, tests


def failure_lines(output: str, limit: int = 12) -> list[str]:
    """The assertion lines (``E   ...``) of the first failures, without test names."""
    found = [line[1:].strip() for line in output.splitlines() if line.startswith("E ")]
    return [line for line in found if line and not line.startswith("Use -v")][:limit]


# ---------------------------------------------------------------------------- synthesis
Runner = Callable[[Path], "SuiteRun"]


@dataclass
class SuiteRun:
    """One run of a project's tests: test id -> passed (from our reporter), and pytest's log."""

    results: dict[str, bool]
    log: str


def sandbox_runner(sandbox: Sandbox, timeout: float = 120) -> Runner:
    """Run a project's tests in ``sandbox`` the way grading runs them, ``folder`` as workspace."""

    def run(folder: Path) -> SuiteRun:
        suite = grading.suite_command(show_log=True)
        sandbox.start(folder)
        try:
            output = sandbox.run(suite.script, timeout=timeout, stdin=suite.stdin,
                                 keep_bytes=grading.REPORT_BYTES).output
        finally:
            sandbox.close()
        return SuiteRun(suite.results(output), suite.log(output))

    return run


def synthesize(source: str, count: int, runner: Runner, out: Path, seed: int = 0,
               leak_test_names: bool = False, progress: Callable[[], None] | None = None) -> int:
    """Write up to ``count`` validated tasks from ``source`` into ``out``; how many were made."""
    with tempfile.TemporaryDirectory(prefix="agentgym-swe-") as tmp:
        os.chmod(tmp, 0o711)  # the sandbox user must reach the workspaces inside
        name, project = project_folder(source, Path(tmp))
        clean = Path(tmp) / "clean"
        shutil.copytree(project, clean, ignore=_IGNORED)
        sources, tests = split_files(clean)
        if not tests:
            raise TaskNotFoundError(f"Project {name!r} has no tests (tests/, test_*.py).")
        base = runner(_writable_copy(clean, Path(tmp) / "base")).results
        passing = sorted(t for t, ok in base.items() if ok)
        if not passing:
            raise TaskNotFoundError(f"No test of {name!r} passes before any bug is injected.")
        made = 0
        for file, mutation in _candidates(clean, sources, seed):
            workspace = _writable_copy(clean, Path(tmp) / "try")
            (workspace / file).write_text(mutation.source)
            run = runner(workspace)
            results = run.results
            broken = [t for t in passing if not results.get(t, False)]
            kept = [t for t in passing if results.get(t, False)]
            if broken and kept:
                task = _task(name, clean, file, mutation, run.log, broken, kept, tests,
                             leak_test_names)
                _write(task, clean, file, mutation, out / f"{made:04d}")
                made += 1
                if progress:
                    progress()
            if made >= count:
                break
        return made


def _writable_copy(clean: Path, dest: Path) -> Path:
    """A full copy the sandbox user may write to (validation runs only)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(clean, dest)
    if os.geteuid() == 0:
        for path in [dest, *dest.rglob("*")]:
            os.chown(path, SANDBOX_UID, SANDBOX_UID)
    return dest


def _candidates(clean: Path, sources: list[str], seed: int):
    found = [(file, m) for file in sources for m in mutations((clean / file).read_text())]
    random.Random(seed).shuffle(found)
    return found


def _task(name: str, clean: Path, file: str, mutation: Mutation, output: str,
          broken: list[str], kept: list[str], tests: list[str], leak: bool) -> SWETask:
    original = (clean / file).read_text()
    patch = "".join(difflib.unified_diff(mutation.source.splitlines(keepends=True),
                                         original.splitlines(keepends=True),
                                         f"a/{file}", f"b/{file}"))
    statement = problem_statement(name, failure_lines(output), broken if leak else None)
    digest = hashlib.sha1(mutation.source.encode()).hexdigest()[:6]
    return SWETask(f"{name}__{mutation.name}-{digest}", name, statement, patch, broken, kept,
                   tests, _gold_edit(file, mutation, original))


def problem_statement(name: str, failures: list[str], test_names: list[str] | None) -> str:
    """An issue written from what the failing tests report."""
    shown = "\n".join(f"    {line}" for line in failures) or "    (the tests fail)"
    text = (f"The `{name}` library has a bug: some of its functions return the wrong result "
            f"or raise when they should not. Running its tests reports:\n\n{shown}\n\n"
            "Find the bug in the library's code and fix it. The tests are correct; do not "
            "change them.")
    if test_names:
        text += "\n\nFailing tests: " + ", ".join(test_names)
    return text


def _gold_edit(file: str, mutation: Mutation, original: str) -> dict[str, str]:
    """The fix as one str_replace: the mutated lines (with context until unique) -> original."""
    buggy_lines = mutation.source.splitlines(keepends=True)
    fixed_lines = original.splitlines(keepends=True)
    start, end = mutation.line - 1, mutation.end_line
    tail = len(fixed_lines) - len(buggy_lines)  # the fixed span is longer when a line was dropped
    while True:
        old = "".join(buggy_lines[start:end])
        if mutation.source.count(old) == 1 or start == 0:
            break
        start -= 1
    new = "".join(fixed_lines[start:end + tail])
    return {"path": file, "old": old, "new": new}


def _write(task: SWETask, clean: Path, file: str, mutation: Mutation, folder: Path) -> None:
    repo = folder / "repo"
    shutil.copytree(clean, repo)
    target = repo / file
    target.chmod(0o644)
    target.write_text(mutation.source)
    freeze(repo)
    task.save(folder)


# ---------------------------------------------------------------------------- task sets
def task_set_folder(source: str, count: int, seed: int, leak: bool) -> Path:
    """Where a task set is cached (by source, size, seed and the generator's own code)."""
    code = "".join(p.read_text() for p in sorted(Path(__file__).parent.glob("*.py")))
    libraries = "".join(p.read_text() for p in sorted(LIBRARIES_DIR.rglob("*.py")))
    key = f"{source}|{count}|{seed}|{leak}|{code}|{libraries}"
    safe = re.sub(r"[^\w.=-]+", "_", source)[:40]
    return cache_root() / "swe" / f"{safe}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ensure_task_set(sources: list[str], per_source: int, runner_factory: Callable[[], Runner],
                    seed: int = 0, leak_test_names: bool = False) -> list[SWETask]:
    """The cached task set of each source (built on first use), concatenated."""
    from rich.console import Console
    from rich.progress import Progress

    tasks: list[SWETask] = []
    for source in sources:
        folder = task_set_folder(source, per_source, seed, leak_test_names)

        def build(staging: Path, source: str = source) -> None:
            # on stderr, as progress goes: a script's stdout stays its own
            with Progress(transient=True, console=Console(stderr=True)) as bar:
                job = bar.add_task(f"synthesizing SWE tasks from {source}", total=per_source)
                made = synthesize(source, per_source, runner_factory(), staging, seed,
                                  leak_test_names, progress=lambda: bar.advance(job))
            if made == 0:
                raise TaskNotFoundError(f"No mutation of {source!r} broke a test while others "
                                        "passed; no tasks could be made.")

        cached_folder(folder, build)
        tasks += [SWETask.load(f) for f in sorted(folder.iterdir()) if (f / "task.json").exists()]
    return tasks


# ---------------------------------------------------------------------------- SWE-bench
def materialize(task: SWETask, repo_path: str = "/testbed",
                docker_host: str | None = None) -> SWETask:
    """Export an instance's repository from its image once (cached), so workspaces can link it."""
    safe = re.sub(r"[^\w.-]+", "_", task.instance_id)
    digest = hashlib.sha1(f"{task.image}|{repo_path}".encode()).hexdigest()[:8]
    folder = cache_root() / "swe" / "instances" / f"{safe}-{digest}"

    def build(staging: Path) -> None:
        export_folder(engine(docker_host), str(task.image), repo_path, staging / "repo")
        freeze(staging / "repo")
        task.save(staging)

    cached_folder(folder, build)
    task.folder = folder
    return task



def export_folder(on: Engine, image: str, path: str, target: Path) -> None:
    """Copy the folder ``path`` out of ``image`` to ``target`` (through a created container)."""
    with on.failing(f"exporting {path} from the image {image}"):
        created = on.api.create_container(image, ["true"])["Id"]
        try:
            archive = target.parent / f"{target.name}.tar"
            with archive.open("wb") as out:
                for chunk in on.api.get_archive(created, path)[0]:
                    out.write(chunk)
        finally:
            on.api.remove_container(created, force=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target.parent, filter="tar")
    (target.parent / PurePosixPath(path).name).rename(target)
    archive.unlink()


def load_instances(path: Path, image: str = "sweb.eval.x86_64.{instance_id}") -> list[SWETask]:
    """SWE-bench / SWE-Gym instance records (JSON list or JSONL) as tasks.

    Each instance runs in the docker image ``image.format(**record)`` that the user built or
    pulled (its repository at ``/testbed``, as SWE-bench's images have it).
    """
    text = Path(path).read_text()
    records = json.loads(text) if text.lstrip().startswith("[") else [
        json.loads(line) for line in text.splitlines() if line.strip()]
    tasks = []
    for number, record in enumerate(records, 1):
        missing = [f for f in SWE_BENCH_FIELDS if f not in record]
        if missing:
            raise InvalidOptionError(f"{path}: record {number} lacks {', '.join(missing)}; "
                                     f"SWE-bench records have {', '.join(SWE_BENCH_FIELDS)}.")
        lists = {k: json.loads(record[k]) if isinstance(record[k], str) else record[k]
                 for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}
        tests = sorted(set(re.findall(r"^\+\+\+ b/(\S+)", record["test_patch"], re.M)))
        tasks.append(SWETask(record["instance_id"], record["repo"], record["problem_statement"],
                             record["patch"], lists["FAIL_TO_PASS"], lists["PASS_TO_PASS"],
                             tests, {}, image=image.format(**record),
                             extra={"base_commit": record["base_commit"],
                                    "test_patch": record["test_patch"]}))
    return tasks
