"""``SWE-v0``: fix a bug in a real Python project with tools, in a sandbox, judged by its tests."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any, ClassVar

from agentgym.core import AgentEnv, Transition
from agentgym.errors import InvalidOptionError, TaskNotFoundError
from agentgym.protocols import ToolCall
from environments.swe import grading, mounts, orphans, patches, workspace
from environments.swe.backends import make_sandbox
from environments.swe.sandbox import WORKDIR, Limits
from environments.swe.tasks import (
    EMBEDDED,
    SWETask,
    ensure_task_set,
    load_instances,
    materialize,
    sandbox_runner,
)
from environments.swe.tools import (
    FILE_TOOL,
    SWEProtocol,
    expert_calls,
    file_tool_stdin,
)
from rewards.patch import patch_similarity

DEFAULT_REWARD: dict[str, Any] = {
    "type": "gated", "high": "resolved", "threshold": 1.0,
    "immediate": {"type": "weighted", "weights": {"format": 0.1, "tool_valid": 0.1}},
}
"""G-RA: the turn rewards count only when the episode resolves the issue."""


class SWEEnv(AgentEnv):
    """Software-engineering tasks: a buggy repository, tools, and the project's own tests.

    Tasks are synthesized from Python projects by AST mutation (the small libraries shipped
    with agentgym by default, or ``sources=["path/to/project", "pypi:NAME==VERSION"]``) and
    cached. Even-numbered tasks form ``train``, odd-numbered ``test``.

    Channels: turn ``tool_valid`` (the tool call ran without an error) and ``format``; outcome
    ``resolved`` (all FAIL_TO_PASS pass and all PASS_TO_PASS still pass), ``tests`` (share of
    FAIL_TO_PASS passing, 0 if a PASS_TO_PASS test broke), ``submitted``, ``modified`` (the
    repository differs from its start) and ``patch_similarity`` (SWE-RL's difflib ratio to the
    gold patch). ``DEFAULT_REWARD`` is the gated-reward paper's G-RA spec. The scalar reward is
    ``resolved``.

    Args:
        sources: Projects to synthesize tasks from (default: every embedded library).
        tasks_per_source: Tasks synthesized per project.
        sandbox: ``"auto"`` (docker if an engine answers, else bwrap), ``"docker"``,
            ``"bwrap"`` or ``"local"``.
        allow_unsandboxed: Required for ``sandbox="local"`` (no isolation).
        limits: Per-command limits (memory, processes, time, output).
        warm_containers: Docker: started, idle containers kept per image so a reset takes
            one instead of starting one (needs root to bind the workspace in; 0: off).
        docker_host: Docker: the engine to use (default: ``DOCKER_HOST``).
        docker_hosts: Docker: several engines; each episode's container goes to the next
            one that answers. Engines not on this machine get the workspace copied in.
        split: ``"train"`` or ``"test"``.
        leak_test_names: Name the failing tests in the problem statement.
        seed: Which mutations are drawn.
        max_turns: The turn budget; when it runs out the tests run as if submitted.
        test_timeout: Seconds the test run at submission may take.
        instances: A SWE-bench / SWE-Gym records file (JSON or JSONL) to play instead of
            synthesized tasks; each instance runs in its own docker image.
        instance_image: The image of an instance, formatted with its record's fields.
        repo_path: Where the repository is inside an instance's image (SWE-bench: /testbed).
        test_python: The interpreter an instance's image runs its tests with.
        test_args: pytest arguments for an instance (the test files it touches follow).
        render_mode: ``None`` or ``"ansi"``.
    """

    env_id = "SWE-v0"
    snapshot_kind = "native"  # commands are not reproducible: the workspace is the state
    description = (
        "You are a software engineer fixing a bug in a Python repository, which is your "
        "working directory. Investigate with the tools (bash, view), fix the code with "
        "str_replace or create, and call submit when you are done; the project's tests then "
        "decide whether the issue is resolved."
    )
    turn_channels = ("tool_valid", "format")
    outcome_channels = ("resolved", "tests", "submitted", "modified", "patch_similarity")
    success_channel = "resolved"
    reset_options: ClassVar[frozenset[str]] = frozenset({"task_id", "split"})

    def __init__(
        self,
        *,
        sources: list[str] | None = None,
        tasks_per_source: int = 8,
        sandbox: str = "auto",
        allow_unsandboxed: bool = False,
        limits: Limits | None = None,
        warm_containers: int = 2,
        docker_host: str | None = None,
        docker_hosts: list[str] | None = None,
        split: str = "train",
        leak_test_names: bool = False,
        seed: int = 0,
        max_turns: int | None = 30,
        test_timeout: float = 120.0,
        instances: str | Path | None = None,
        instance_image: str = "sweb.eval.x86_64.{instance_id}",
        repo_path: str = "/testbed",
        test_python: str = "python",
        test_args: str = "",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(protocol=SWEProtocol(), max_turns=max_turns,
                         render_mode=render_mode)
        if tasks_per_source < 1:
            raise InvalidOptionError(f"tasks_per_source must be >= 1, got {tasks_per_source}.")
        self.split = self.check_split(split)
        if warm_containers < 0:
            raise InvalidOptionError(f"warm_containers must be >= 0, got {warm_containers}.")
        self.sandbox = make_sandbox(sandbox, allow_unsandboxed=allow_unsandboxed, limits=limits,
                                    warm=warm_containers, docker_host=docker_host,
                                    docker_hosts=docker_hosts)
        self.test_timeout, self.docker_host = test_timeout, docker_host
        self.repo_path, self.test_python, self.test_args = repo_path, test_python, test_args
        if instances is not None:
            if self.sandbox.kind != "docker":
                raise InvalidOptionError("SWE-bench instances run in their own docker images; "
                                         f"use sandbox='docker' (got {self.sandbox.kind!r}).")
            self.tasks = load_instances(Path(instances), instance_image)
        else:
            kind, allow = self.sandbox.kind, allow_unsandboxed
            self.tasks = ensure_task_set(
                list(sources or EMBEDDED), tasks_per_source,
                lambda: sandbox_runner(make_sandbox(kind, allow_unsandboxed=allow,
                                                    limits=limits, quiet=True,
                                                    docker_host=docker_host,
                                                    docker_hosts=docker_hosts),
                                       timeout=test_timeout),
                seed=seed, leak_test_names=leak_test_names)
        orphans.reap_episode_roots()
        self._root = orphans.episode_root()
        self._workspace = self._root / "workspace"
        self.quota_problem = ""  # why there is no disk quota, if there is none
        self._task: SWETask | None = None
        self._outcome_cache: dict[str, float] | None = None
        self._submitted = False
        self._dropped = ""
        self._fingerprint: workspace.Fingerprint | None = None

    # ------------------------------------------------------------------ tasks
    def split_tasks(self, split: str) -> list[SWETask]:
        """The tasks of a split (even positions train, odd test)."""
        return self.tasks[self.splits.index(self.check_split(split))::2]

    def task_ids(self, split: str | None = None, count: int = 10) -> list[str]:
        """The first ``count`` task ids of a split."""
        return [t.instance_id for t in self.split_tasks(split or self.split)[:count]]

    def _pick(self, options: dict[str, Any]) -> SWETask:
        if "task_id" in options:
            for task in self.tasks:
                if task.instance_id == options["task_id"]:
                    return task
            raise TaskNotFoundError(f"No SWE task {options['task_id']!r}; ids look like "
                                    f"{self.tasks[0].instance_id!r}.")
        tasks = self.split_tasks(options.get("split", self.split))
        return tasks[self.task_index(len(tasks))]

    # ------------------------------------------------------------------ hooks
    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        self._task = task = self._pick(options)
        self._outcome_cache, self._submitted = None, False
        where = WORKDIR
        if task.image:  # a SWE-bench instance: its own image, its repository where it was
            materialize(task, self.repo_path, self.docker_host)
            where = self.repo_path
        self._fresh_workspace()
        observation = (f"{task.problem_statement}\n\nThe repository is your working "
                       f"directory ({where}). Its tests run with `python3 -m pytest`.")
        return observation, self._task.instance_id

    def _fresh_workspace(self) -> None:
        """A new copy of the task's repository, and a sandbox on it."""
        assert self._task is not None
        self._fresh_folder(self._workspace)
        workspace.link_copy(self._task.repo_dir, self._workspace, self.sandbox.owner())
        self._fingerprinter().adopt(self._workspace)  # a copy: nothing in it needs hashing
        self._start_sandbox(self._workspace)

    def _snapshot(self) -> tuple:
        assert self._task is not None
        changes = workspace.capture(self._fingerprinter(), self._workspace)
        return (self._task.instance_id, changes, self._submitted, self._outcome_cache,
                self._dropped)

    def _restore(self, native: tuple) -> None:
        task_id, changes, self._submitted, outcome, self._dropped = native
        self._outcome_cache = dict(outcome) if outcome is not None else None
        if self._task is None or self._task.instance_id != task_id:
            self._task = self._pick({"task_id": task_id})
            if self._task.image:
                materialize(self._task, self.repo_path, self.docker_host)
            self._fresh_workspace()
        self.sandbox.detach()  # nothing may run in the workspace while it changes
        workspace.restore_changes(self._fingerprinter(), self._workspace, changes,
                                  self.sandbox.owner())
        self._start_sandbox(self._workspace)

    def _fresh_folder(self, folder: Path) -> None:
        """An empty folder for a copy of the task's repository, under a disk quota if we can."""
        assert self._task is not None
        self.sandbox.detach()  # nothing may run in a folder while it is replaced
        size = workspace.tree_mb(self._task.repo_dir) + self.sandbox.limits.disk_mb
        self.quota_problem = workspace.mount_quota(folder, size)

    def _start_sandbox(self, folder: Path) -> None:
        task = self._task
        assert task is not None
        if task.image:  # a SWE-bench instance: its own image, its repository where it was
            self.sandbox.start(folder, image=task.image, mount=self.repo_path)
        else:
            self.sandbox.start(folder)

    def _apply(self, call: Any) -> Transition:
        assert isinstance(call, ToolCall)
        if call.name == "submit":
            self._submitted = True
            outcome = self._outcome()
            verdict = "resolved" if outcome["resolved"] else "not resolved"
            return Transition(observation=f"Submitted; the tests ran: {verdict} "
                                          f"({outcome['tests']:.0%} of the failing tests pass)."
                                          + (f" {self._dropped}" if self._dropped else ""),
                              channels={"tool_valid": 1.0}, terminated=True)
        self._outcome_cache = None  # a grade asked for earlier (outcome_now) is stale now
        if call.name == "bash":
            result = self.sandbox.run(str(call.arguments["command"]))
            ok = not (result.timed_out or result.output_stopped)
        else:
            result = self.sandbox.run(f"python3 -c {shlex.quote(FILE_TOOL)}",
                                      stdin=file_tool_stdin(call))
            ok = result.exit_code == 0
        observation = result.describe() if call.name == "bash" or not ok else result.output
        if workspace.quota_full(self._workspace):
            observation += (f"\nThe workspace is full: the episode may write "
                            f"{self.sandbox.limits.disk_mb} MB beyond the repository. Delete "
                            "files to go on.")
        return Transition(observation=observation, channels={"tool_valid": float(ok)})

    def _instruction(self) -> str:
        assert self._task is not None
        return self._task.problem_statement

    def _state_key(self) -> str:
        return self._fingerprinter()(self._workspace)

    def _fingerprinter(self) -> workspace.Fingerprint:
        assert self._task is not None
        if self._fingerprint is None or self._fingerprint.repo != self._task.repo_dir:
            self._fingerprint = workspace.Fingerprint(self._task.repo_dir)
        return self._fingerprint

    def _outcome(self) -> dict[str, float]:
        if self._outcome_cache is None:
            self._outcome_cache = self._grade()
        return self._outcome_cache

    def _grade(self) -> dict[str, float]:
        """Test the agent's source change in a fresh copy and a fresh sandbox (``grading``)."""
        task = self._task
        assert task is not None
        change = grading.agent_change(task.repo_dir, self._workspace, task.test_files)
        tree = self._root / "graded"
        self._fresh_folder(tree)  # the agent's code runs in the tests: the quota holds there too
        grading.build_tree(task.repo_dir, tree, change, self.sandbox.owner())
        patch = workspace.diff(task.repo_dir, tree)
        python, args = "python3", ""
        if task.image:  # SWE-bench: add the instance's tests, run the files they touch
            for path, text in self._patched(task.extra["test_patch"]).items():
                grading.write_file(tree, path, text.encode())
            python, args = self.test_python, f"{self.test_args} {' '.join(task.test_files)}"
        suite = grading.suite_command(args, python)
        self._start_sandbox(tree)
        results = suite.results(self.sandbox.run(suite.script, timeout=self.test_timeout,
                                                 stdin=suite.stdin,
                                                 keep_bytes=grading.REPORT_BYTES).output)
        self._dropped = change.summary()
        if not self._submitted:  # graded mid-episode (outcome_now): the agent works on
            self._start_sandbox(self._workspace)
        fixed = sum(results.get(t, False) for t in task.fail_to_pass) / len(task.fail_to_pass)
        kept = all(results.get(t, False) for t in task.pass_to_pass)
        return {"resolved": float(fixed == 1.0 and kept), "tests": fixed if kept else 0.0,
                "submitted": float(self._submitted),
                "modified": float(bool(change.files or change.dropped)),
                "patch_similarity": patch_similarity(split_patch(patch), split_patch(task.patch))}

    def _final_reward(self, outcome: dict[str, float]) -> float:
        return outcome["resolved"]

    def _patched(self, diff: str) -> dict[str, str]:
        """The repository's files a diff touches, as the diff leaves them."""
        task = self._task
        assert task is not None
        result = {}
        for file_patch in patches.parse(diff):
            source = task.repo_dir / (file_patch.old_path or file_patch.path)
            text = source.read_text() if file_patch.old_path and source.is_file() else ""
            result[file_patch.path] = patches.apply(text, file_patch)
        return result

    def _expert(self) -> ToolCall | None:
        task = self._task
        assert task is not None
        if not task.gold_edit:  # an instance: write each file of the gold patch, then submit
            for path, text in self._patched(task.patch).items():
                if workspace.read_text(self._workspace / path, self._workspace) != text:
                    return ToolCall("create", {"path": path, "content": text})
            return ToolCall("submit", {})
        fix, submit = expert_calls(task.gold_edit)
        current = workspace.read_text(self._workspace / task.gold_edit["path"], self._workspace)
        return fix if current is not None and task.gold_edit["old"] in current else submit

    def _task_source(self) -> SWETask | None:
        return self._task

    def _task_split(self, task_id: str, options: Any) -> str | None:
        return next((s for s in self.splits if self._task in self.split_tasks(s)), None)

    def _reference(self) -> dict[str, Any] | None:
        return {"patch": self._task.patch, "fail_to_pass": self._task.fail_to_pass} \
            if self._task else None

    def _release(self) -> None:
        self.sandbox.close()
        for folder in (self._workspace, self._root / "graded"):
            mounts.unmount(folder)
        shutil.rmtree(self._root, ignore_errors=True)


def split_patch(diff: str) -> dict[str, str]:
    """A unified diff as ``{path: its hunks}`` (the form SWE-RL's similarity compares)."""
    files: dict[str, str] = {}
    for block in re.split(r"^(?=--- )", diff, flags=re.M):
        match = re.match(r"--- (\S+)\n\+\+\+ (\S+)\n", block)
        if match:
            path = match[2] if match[2] != "/dev/null" else match[1]
            files[path.split("/", 1)[-1]] = block[match.end():]
    return files
