"""Sandbox limits count the whole sandbox, and the frozen repository stays frozen.

Real bubblewrap sandboxes with real cgroups (the tests run as root, as CI does); the last
test runs agentgym as an ordinary user, where the sandbox shares that user's uid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import agentgym
from agentgym.protocols import ToolCall
from environments.swe.sandbox import Limits
from environments.swe.sandbox_host import BwrapSandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="CI runs as root; cgroups need it")

HOG = ("python3 -c 'b = bytearray(800 << 20); b[::4096] = bytes(len(b[::4096])); "
       "import time; time.sleep(20)'")


def started(limits: Limits) -> BwrapSandbox:
    workspace = Path(tempfile.mkdtemp(prefix="agentgym-test-"))
    workspace.chmod(0o777)
    sandbox = BwrapSandbox(limits)
    sandbox.start(workspace)
    assert sandbox.cgroup_problem == ""
    return sandbox


def test_six_800_mb_processes_under_1_gb_are_stopped_with_a_clear_note():
    sandbox = started(Limits(memory_mb=1024, timeout_s=30))
    try:
        result = sandbox.run(" & ".join([HOG] * 6) + " & wait; echo all done")
        assert not result.timed_out
        assert result.memory_exceeded_mb == 1024
        assert "went over its memory limit of 1024 MB" in result.describe()
        assert "all done" not in result.output
        assert sandbox.run("echo fine").output.strip() == "fine"  # the sandbox lives on
    finally:
        sandbox.close()


def test_one_sandbox_out_of_processes_leaves_another_working():
    greedy, other = started(Limits(pids=32, timeout_s=20)), started(Limits(pids=32))
    results = {}
    spawner = threading.Thread(target=lambda: results.setdefault("greedy", greedy.run(
        "for i in $(seq 100); do sleep 4 & done 2>&1 | tail -1; wait")))
    try:
        spawner.start()
        time.sleep(1.5)  # the greedy sandbox now holds all its 32 processes
        calm = other.run("for i in $(seq 20); do sleep 0.2 & done; wait; echo ok")
        spawner.join()
        assert calm.exit_code == 0 and calm.output.strip() == "ok", calm.describe()
        assert "fork:" in results["greedy"].output  # it did run out of processes
    finally:
        greedy.close()
        other.close()


def test_a_non_root_sandbox_cannot_write_through_into_the_frozen_repository():
    """As an ordinary user the sandbox runs as the frozen files' owner: workspaces are copies."""
    home = Path(tempfile.mkdtemp(prefix="agentgym-nonroot-"))  # pytest's tmp_path is root's
    os.chown(home, 4242, 4242)
    try:
        run = run_as_user(4242, home)
    finally:
        shutil.rmtree(home)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "frozen poisoned: False" in run.stdout
    assert "next episode poisoned: False" in run.stdout


def run_as_user(uid: int, home: Path) -> subprocess.CompletedProcess:
    script = (
        "import agentgym\n"
        "from agentgym.protocols import ToolCall\n"
        "env = agentgym.make('SWE-v0', sandbox='bwrap', sources=['textstats'], "
        "tasks_per_source=1)\n"
        "_, info = env.reset(seed=0)\n"
        "task = env.task.source\n"
        "path = task.gold_edit['path']\n"
        "command = f'chmod u+w {path} && echo POISON >> {path} && tail -1 {path}'\n"
        "obs = env.step(ToolCall('bash', {'command': command}).to_text())[0]\n"
        "assert 'POISON' in obs, obs\n"
        "frozen = (task.repo_dir / path).read_text()\n"
        "print('frozen poisoned:', 'POISON' in frozen)\n"
        "env.reset(seed=0)\n"
        "workspace = env.unwrapped._workspace\n"
        "print('next episode poisoned:', 'POISON' in (workspace / path).read_text())\n"
        "env.close()\n")
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
         script], capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "AGENTGYM_CACHE": str(home / "c"),
             "OMP_NUM_THREADS": "1"})


def bash(env, command: str):
    return env.step(ToolCall("bash", {"command": command}).to_text())


def test_a_workspace_over_its_disk_quota_is_told_so_and_grading_still_works():
    with agentgym.make("SWE-v0", sandbox="bwrap", sources=["textstats"], tasks_per_source=1,
                       limits=Limits(disk_mb=8)) as env:
        env.reset(seed=0)
        assert env.unwrapped.quota_problem == ""
        observation = bash(env, "cat /dev/zero > big; ls -s big")[0]
        assert "No space left on device" in observation
        assert "The workspace is full: the episode may write 8 MB beyond" in observation
        created = env.step(ToolCall("create", {"path": "new.py", "content": "x = 1\n" * 2000}
                                    ).to_text())[0]
        assert "could not write new.py" in created
        listing = bash(env, "ls -A")[0]
        assert "tmp" not in listing  # the failed write left no temp file
        observation = bash(env, "rm big; echo freed")[0]
        assert "freed" in observation and "workspace is full" not in observation
        _, _, terminated, _, info = env.step(ToolCall("submit", {}).to_text())
        assert terminated and info["outcome_channels"]["resolved"] == 0.0


def test_what_a_killed_process_left_behind_is_reaped():
    script = ("import agentgym, sys\n"
              "env = agentgym.make('SWE-v0', sandbox='bwrap', sources=['textstats'], "
              "tasks_per_source=1)\n"
              "env.reset(seed=0)\n"
              "env.step('<tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"}}"
              "</tool_call>')\n"
              "print(env.unwrapped._root, env.unwrapped.sandbox._cgroup.folders[0], flush=True)\n"
              "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parent.parent)
    line = child.stdout.readline()
    assert line, child.stderr.read()[-3000:]
    root, cgroup = (Path(p) for p in line.split())
    assert root.is_dir() and os.path.ismount(root / "workspace") and cgroup.is_dir()
    child.kill()
    child.wait()
    with agentgym.make("SWE-v0", sandbox="bwrap", sources=["textstats"], tasks_per_source=1
                       ) as env:
        env.reset(seed=0)  # a new env reaps what dead processes left
    assert not root.exists()
    assert not cgroup.exists()


def test_state_keys_hash_each_written_file_once():
    """300 files of 1 MB: the step that wrote them hashes them; later steps hash nothing."""
    with agentgym.make("SWE-v0", sandbox="bwrap", sources=["textstats"], tasks_per_source=1,
                       limits=Limits(disk_mb=400)) as env:
        env.reset(seed=0)
        fingerprint = lambda: env.unwrapped._fingerprint  # noqa: E731
        first = bash(env, "for i in $(seq 300); do head -c 1000000 /dev/urandom > f$i; done")
        hashed = fingerprint().bytes_hashed
        assert 300_000_000 <= hashed < 310_000_000
        keys = {bash(env, "true")[4]["state_key"] for _ in range(3)}
        assert fingerprint().bytes_hashed == hashed and keys == {first[4]["state_key"]}
        changed = bash(env, "echo more >> f7")[4]["state_key"]
        assert changed != first[4]["state_key"]
        assert fingerprint().bytes_hashed - hashed < 1_100_000  # only f7, again
        undone = bash(env, "rm f*")[4]["state_key"]
        assert undone == env.reset(seed=0)[1]["state_key"]  # same content, same key
