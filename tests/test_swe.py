"""SWE-v0 on real sandboxes: docker (an engine started by ./run), bubblewrap, local."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import agentgym
from agentgym.errors import InvalidOptionError
from agentgym.protocols import ToolCall
from environments.swe.backends import make_sandbox
from environments.swe.docker_engine import docker_available
from environments.swe.mounts import is_mount_point
from environments.swe.orphans import episode_root, reap_episode_roots
from environments.swe.sandbox import SANDBOX_UID, Limits
from environments.swe.sandbox_host import bwrap_available
from environments.swe.tasks import load_instances
from tests.engines import STARTED, remote_url

ISOLATED = ("docker", "bwrap")
CONTAINED = (*ISOLATED, "docker-remote")  # remote: a TCP engine the tests start, copy mode
LIMITS = Limits(timeout_s=5, memory_mb=512, pids=64, output_bytes=2_000_000)


def test_the_sandboxes_this_suite_needs_are_here():
    # ./run installs docker.io and bubblewrap and starts dockerd; a missing one is a failure
    assert docker_available(), "no docker engine answers (DOCKER_HOST?)"
    assert bwrap_available()


def make(sandbox: str, **kwargs):
    if sandbox == "docker-remote":
        sandbox, kwargs = "docker", {"docker_host": remote_url(), **kwargs}
    return agentgym.make("SWE-v0", sandbox=sandbox, tasks_per_source=2,
                         allow_unsandboxed=sandbox == "local", **kwargs)


def call(name: str, **arguments) -> str:
    return ToolCall(name, arguments).to_text()


def bash(env, command: str):
    return env.step(call("bash", command=command))


@pytest.mark.parametrize("sandbox", ["docker", "bwrap", "local"])
def test_expert_resolves_every_task_and_submitting_at_once_resolves_none(sandbox):
    with make(sandbox) as env:
        ids = env.task_ids("train") + env.task_ids("test")
        assert len(ids) == 6 and len(set(ids)) == 6
        for task_id in ids:
            obs, info = env.reset(options={"task_id": task_id})
            assert "bug" in obs and info["tools"]
            while True:
                obs, reward, terminated, truncated, info = env.step(info["expert_action"])
                if terminated or truncated:
                    break
            assert info["outcome_channels"]["resolved"] == 1.0 and reward == 1.0, task_id
            assert info["outcome_channels"]["patch_similarity"] == 1.0
            env.reset(options={"task_id": task_id})
            *_, info = env.step(call("submit"))
            assert info["outcome_channels"] == {"resolved": 0.0, "tests": 0.0, "submitted": 1.0,
                                                "modified": 0.0, "patch_similarity": 0.0}


@pytest.fixture
def secret():
    path = Path.home() / f"agentgym-secret-{uuid.uuid4().hex}"
    path.write_text("TOP-SECRET-" + uuid.uuid4().hex)
    path.chmod(0o600)
    yield path
    path.unlink()


def sandbox_processes(grace: float = 5.0) -> list[str]:
    """Processes of the sandbox user still alive after ``grace`` seconds (killed processes
    whose parent died are reaped by the host's init a moment later)."""
    deadline = time.monotonic() + grace
    while True:
        found = subprocess.run(["pgrep", "-u", str(SANDBOX_UID), "-a"], capture_output=True,
                               text=True).stdout
        alive = [line for line in found.splitlines() if line.strip()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def containers() -> list[str]:
    """Sandbox containers on the default engine and on every engine the tests started."""
    from environments.swe.docker_engine import engine

    urls = [None, *(started.url for started in STARTED)]
    return [c["Id"] for url in urls
            for c in engine(url).api.containers(all=True, filters={"label": "agentgym.swe"})]


@pytest.mark.parametrize("sandbox", CONTAINED)
def test_containment(sandbox, secret):
    marker = f"agentgym-escape-{uuid.uuid4().hex}"
    with make(sandbox, limits=LIMITS) as env:
        env.reset(seed=0)
        repo = env.task.source.repo_dir
        frozen = {p: p.read_bytes() for p in repo.rglob("*.py")}

        # writing outside the workspace
        obs, _, _, _, info = bash(env, f"echo x > /usr/{marker}; echo x > /{marker}; "
                                       f"echo x > /etc/{marker}; echo x > {repo}/{marker}")
        assert not Path(f"/usr/{marker}").exists() and not Path(f"/{marker}").exists()
        assert not Path(f"/etc/{marker}").exists() and not (repo / marker).exists()

        # reading a secret in the host user's home
        obs, *_ = bash(env, f"cat {secret}; ls {secret.parent}")
        assert secret.read_text() not in obs

        # writing through a workspace file into the frozen repository
        first = sorted(frozen)[0].relative_to(repo)
        obs, *_ = bash(env, f"echo CORRUPT >> {first}")
        assert "Permission denied" in obs or "Read-only" in obs

        # a fork bomb: stopped by the process limit and the timer
        obs, _, terminated, _, info = bash(env, ":(){ :|:& };:")
        assert not terminated and "[exit code" in obs

        # a memory bomb
        obs, *_ = bash(env, "python3 -c 'x = b\"a\" * (3 * 1024 ** 3); print(len(x))'")
        assert "3221225472" not in obs and "[exit code 0]" not in obs

        # an infinite loop
        obs, _, _, _, info = bash(env, "while true; do :; done")
        assert "time limit" in obs and info["reward_channels"]["tool_valid"] == 0.0

        # the network
        obs, *_ = bash(env, "python3 -c \"import socket; socket.create_connection(("
                            "'1.1.1.1', 80), timeout=3); print('CONNECTED')\"")
        assert "CONNECTED" not in obs and "[exit code 0]" not in obs

        # 100 MB of output: stopped, and the observation stays small
        obs, *_ = bash(env, "head -c 100000000 /dev/zero | tr '\\0' a")
        assert "stopped after" in obs and len(obs) < 3 * LIMITS.keep_bytes

        # rm -rf /: the workspace may go, nothing else does
        obs, _, terminated, truncated, info = bash(env, "rm -rf --no-preserve-root / 2>&1 | "
                                                         "tail -2; echo done")
        assert not (terminated or truncated) and ("done" in obs or "time limit" in obs)
        assert Path("/usr/bin/python3").exists() and secret.exists()
        assert {p: p.read_bytes() for p in repo.rglob("*.py")} == frozen

        # the episode goes on, and grading still works
        *_, info = env.step(call("submit"))
        assert info["outcome_channels"]["resolved"] == 0.0
    assert sandbox_processes() == []
    assert containers() == []


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_hundred_episodes_leave_nothing_behind(sandbox):
    with make(sandbox) as env:
        for episode in range(100):
            env.reset(seed=episode)
            obs, *_ = bash(env, "sleep 30 > /dev/null 2>&1 & echo started")
            assert "started" in obs
    assert sandbox_processes() == []
    assert containers() == []


def test_tool_errors_are_observations_and_edits_break_links():
    with make("bwrap") as env:
        _, info = env.reset(seed=0)
        task = env.task.source
        path = task.gold_edit["path"]
        obs, _, _, _, info = env.step(call("str_replace", path=path, old="", new="x"))
        assert "must occur exactly once" in obs and info["reward_channels"]["tool_valid"] == 0.0
        obs, *_ = env.step(call("view", path="../../etc/passwd"))
        assert "outside the repository" in obs
        obs, *_ = env.step(call("view", path="no/such.py"))
        assert "no file" in obs
        obs, _, _, _, info = env.step('<tool_call>{"name": "bash"}</tool_call>')
        assert "needs the argument(s) command" in obs
        assert info["reward_channels"]["format"] == 0.0
        obs, *_ = env.step(call("view", path=path, start=1, end=3))
        assert obs.splitlines()[0].strip().startswith("1")
        start_key = info["state_key"]
        edit = dict(task.gold_edit)
        _, _, _, _, by_tool = env.step(call("str_replace", path=path, old=edit["old"],
                                            new=edit["new"]))
        assert by_tool["state_key"] != start_key
        assert (task.repo_dir / path).read_text().count(edit["old"]) == 1  # repo untouched
        env.reset(seed=0)
        fixed = (env.unwrapped._workspace / path).read_text().replace(edit["old"], edit["new"])
        _, _, _, _, by_create = env.step(call("create", path=path, content=fixed))
        assert by_create["state_key"] == by_tool["state_key"]  # same code, same key


def test_edited_tests_are_put_back_before_grading():
    with make("bwrap") as env:
        env.reset(seed=0)
        task = env.task.source
        for test_file in task.test_files:
            env.step(call("create", path=test_file, content="def test_ok():\n    pass\n"))
        *_, info = env.step(call("submit"))
        assert info["outcome_channels"]["resolved"] == 0.0
        assert info["outcome_channels"]["modified"] == 1.0


def test_synthesized_tasks_are_consistent():
    with make("bwrap") as env:
        for task in env.unwrapped.tasks:
            assert task.fail_to_pass and task.pass_to_pass
            assert not set(task.fail_to_pass) & set(task.pass_to_pass)
            assert not any(t.split("::")[-1] in task.problem_statement
                           for t in task.fail_to_pass)
            assert task.patch.startswith(f"--- a/{task.gold_edit['path']}")
            buggy = (task.repo_dir / task.gold_edit["path"]).read_text()
            assert buggy.count(task.gold_edit["old"]) == 1
    with make("bwrap", leak_test_names=True) as leaky:
        task = leaky.unwrapped.tasks[0]
        assert task.fail_to_pass[0] in task.problem_statement


def test_choosing_a_sandbox():
    with pytest.warns(UserWarning, match="using docker"):
        assert make_sandbox("auto").kind == "docker"
    with pytest.raises(InvalidOptionError, match="allow_unsandboxed=True"):
        make_sandbox("local")
    with pytest.raises(InvalidOptionError, match="Sandboxes: auto, docker, bwrap, local"):
        make_sandbox("vm")
    env = dict(os.environ, PATH="/nonexistent", DOCKER_HOST="unix:///nonexistent/docker.sock")
    script = ("from environments.swe.backends import make_sandbox\n"
              "try:\n    make_sandbox('auto')\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([os.sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, cwd=Path(__file__).parent.parent).stdout
    assert "docker" in out and "bubblewrap" in out and "allow_unsandboxed" in out


def test_every_backend_takes_the_same_start():
    """One contract: start(workspace, image=None, mount=...); an image only where it can run."""
    root = episode_root()  # reachable by the sandbox user, as the env's workspaces are
    workspace = root / "ws"
    workspace.mkdir(mode=0o755)
    (workspace / "marker").write_text("here")
    bwrap = make_sandbox("bwrap")
    try:
        bwrap.start(workspace, mount="/testbed")
        result = bwrap.run("pwd; cat marker")
        assert result.output.split() == ["/testbed", "here"], result.output
        with pytest.raises(InvalidOptionError, match="sandbox='docker'"):
            bwrap.start(workspace, image="swebench/sweb.eval.x86_64.octo__lib-1")
    finally:
        bwrap.close()
        shutil.rmtree(root)
    images = ast.parse((Path(__file__).parent.parent / "environments/swe/images.py").read_text())
    imported = {node.module for node in ast.walk(images) if isinstance(node, ast.ImportFrom)}
    assert not any("sandbox" in (name or "") for name in imported), imported  # no circle


def test_swe_bench_records_load(tmp_path):
    record = {"instance_id": "octo__lib-1", "repo": "octo/lib", "base_commit": "abc",
              "problem_statement": "It breaks.", "patch": "--- a/x.py\n+++ b/x.py\n",
              "test_patch": "--- a/tests/test_x.py\n+++ b/tests/test_x.py\n",
              "FAIL_TO_PASS": json.dumps(["tests/test_x.py::test_a"]), "PASS_TO_PASS": "[]"}
    path = tmp_path / "instances.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (task,) = load_instances(path)
    assert task.image == "sweb.eval.x86_64.octo__lib-1"
    assert task.fail_to_pass == ["tests/test_x.py::test_a"]
    assert task.test_files == ["tests/test_x.py"]
    del record["patch"]
    path.write_text(json.dumps(record))
    with pytest.raises(InvalidOptionError, match="lacks patch"):
        load_instances(path)


def test_stats_report_the_gated_reward_papers_rates(tmp_path):
    from agentgym.summary import rates
    from environments.swe import DEFAULT_REWARD
    from rewards import from_dict

    with make("bwrap") as env:
        episodes = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=2, progress=False,
                                    out=tmp_path / "swe.jsonl")
        episodes += agentgym.rollout(env, lambda conversation: call("submit"), tasks=2,
                                     progress=False, out=tmp_path / "swe.jsonl")
    assert rates(episodes) == {"success_rate": 0.5, "completion_rate": 1.0,
                               "modification_rate": 0.5, "resolution_rate": 0.5}
    printed = subprocess.run([os.sys.executable, "-m", "agentgym.cli", "stats",
                              str(tmp_path / "swe.jsonl")], capture_output=True, text=True)
    assert "resolution_rate" in printed.stdout
    spec = from_dict(DEFAULT_REWARD)
    assert sum(spec(episodes[0])) > 0 and sum(spec(episodes[-1])) == 0.0


def test_tasks_from_a_local_project_and_from_pypi(tmp_path):
    import shutil

    from environments.swe.tasks import LIBRARIES_DIR

    project = tmp_path / "myproject"
    shutil.copytree(LIBRARIES_DIR / "textstats", project)
    listed = subprocess.run([os.sys.executable, "-m", "agentgym.cli", "swe-tasks",
                             str(project), "pypi:six==1.16.0", "--tasks", "2",
                             "--sandbox", "bwrap"], capture_output=True, text=True,
                            timeout=900)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "4 SWE tasks" in listed.stdout
    with make("bwrap", sources=[str(project), "pypi:six==1.16.0"]) as env:
        ids = env.task_ids("train") + env.task_ids("test")
        assert {i.split("__")[0] for i in ids} == {"myproject", "six"}
        for task_id in ids:
            *_, info = expert_episode(env, task_id)
            assert info["outcome_channels"]["resolved"] == 1.0, task_id


def expert_episode(env, task_id):
    _, info = env.reset(options={"task_id": task_id})
    while True:
        step = env.step(info["expert_action"])
        info = step[-1]
        if step[2] or step[3]:
            return step


def test_swe_bench_instances_run_in_their_own_image(tmp_path):
    """A stand-in for a SWE-bench image: the base image with a buggy project at /testbed."""
    from environments.swe.docker_engine import engine
    from environments.swe.images import ensure_base_image

    with make("bwrap") as synthesized:
        task = synthesized.unwrapped.tasks[0]
    context = tmp_path / "image"
    (context / "testbed").mkdir(parents=True)
    subprocess.run(["cp", "-r", f"{task.repo_dir}/.", str(context / "testbed")], check=True)
    (context / "Dockerfile").write_text(f"FROM {ensure_base_image()}\nCOPY testbed /testbed\n")
    image = f"agentgym-test-instance:{uuid.uuid4().hex[:8]}"
    engine().client.images.build(path=str(context), tag=image, rm=True)
    added = "tests/test_added.py"
    test_patch = (f"--- /dev/null\n+++ b/{added}\n@@ -0,0 +1,2 @@\n+def test_added():\n"
                  "+    assert True\n")
    record = {"instance_id": "local__demo-1", "repo": "local/demo", "base_commit": "0" * 40,
              "problem_statement": task.problem_statement, "patch": task.patch,
              "test_patch": test_patch, "FAIL_TO_PASS": task.fail_to_pass,
              "PASS_TO_PASS": [*task.pass_to_pass, f"{added}::test_added"]}
    instances = tmp_path / "instances.jsonl"
    instances.write_text(json.dumps(record) + "\n")
    try:
        with agentgym.make("SWE-v0", sandbox="docker", instances=instances,
                           instance_image=image, test_python="python3",
                           test_args="tests") as env:
            obs, info = env.reset(options={"task_id": "local__demo-1"})
            assert "/testbed" in obs
            obs, *_ = bash(env, "pwd; ls")
            assert "/testbed" in obs and "tests" in obs
            *_, info = expert_episode(env, "local__demo-1")
            assert info["outcome_channels"]["resolved"] == 1.0
            env.reset(options={"task_id": "local__demo-1"})
            *_, info = env.step(call("submit"))
            assert info["outcome_channels"]["resolved"] == 0.0
    finally:
        engine().client.images.remove(image, force=True)
    assert containers() == []


def test_containers_of_a_killed_process_are_reaped():
    script = ("import os, signal, agentgym\n"
              "env = agentgym.make('SWE-v0', sandbox='docker', tasks_per_source=2, "
              "warm_containers=2)\n"
              "env.reset(seed=0)\n"
              "time.sleep(2)  # the warm pool starts its containers\n"
              "print(os.getpid(), env.unwrapped.sandbox.container.id, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([os.sys.executable, "-c", f"import time\n{script}"],
                            capture_output=True, text=True, cwd=Path(__file__).parent.parent,
                            timeout=300)
    assert killed.returncode == -9
    pid, container = killed.stdout.split()[-2:]
    assert container in containers() and len(containers()) >= 2  # the warm ones too
    left = list(Path(tempfile.gettempdir()).glob(f"agentgym-swe-{pid}-*"))
    assert left and any(is_mount_point(f) for f in left)  # the warm containers' slots
    from environments.swe.sandbox_docker import reap_orphaned_containers

    assert container in reap_orphaned_containers()
    assert containers() == []
    reap_episode_roots()
    assert not any(f.exists() for f in left)


def test_each_mutation_operator_rewrites_one_site():
    import ast
    import difflib

    from environments.swe.mutations import OPERATORS, mutations

    source = ("def f(items, limit=3):\n"
              "    total = 0\n"
              "    for item in items:\n"
              "        if item < limit:\n"
              "            total += item * 2\n"
              "    print(total, limit)\n"
              "    return total > 0 and True\n")
    found = list(mutations(source))
    assert {m.operator for m in found} == set(OPERATORS)
    for mutation in found:
        ast.parse(mutation.source)
        changed = [line for line in difflib.ndiff(source.splitlines(), mutation.source.splitlines())
                   if line.startswith("- ")]
        assert len(changed) == 1, mutation.name  # one line touched: a one-hunk gold patch
        assert changed[0][2:] == source.splitlines()[mutation.line - 1]


@pytest.mark.parametrize("sandbox", CONTAINED)
def test_a_grade_asked_for_mid_episode_does_not_stick(sandbox):
    """outcome_now grades the workspace as it stands, in its own tree; the agent goes on in
    its workspace and the work after it is graded again."""
    with make(sandbox) as env:
        _, info = env.reset(options={"task_id": env.task_ids("train")[0]})
        assert env.unwrapped.outcome_now()["resolved"] == 0.0  # nothing fixed yet
        while True:
            *_, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                break
        assert info["outcome_channels"]["resolved"] == 1.0
