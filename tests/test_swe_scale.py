"""SWE-v0 at scale: the docker sandbox through the SDK, warm containers, parallel episodes."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import agentgym
from agentgym.errors import SandboxError
from agentgym.protocols import ToolCall
from environments.swe.docker_engine import docker_available
from environments.swe.mounts import is_mount_point
from environments.swe.orphans import ROOT_PREFIX, episode_root
from environments.swe.sandbox_docker import DockerSandbox
from environments.swe.warm_pool import WarmPool
from tests.engines import STARTED, DockerEngine, wait_until
from tests.test_swe import containers


def bash(env, command: str):
    return env.step(ToolCall("bash", {"command": command}).to_text())


def test_warm_pool_keeps_its_size_and_discards_on_close():
    made, discarded = [], []

    def make():
        made.append(len(made))
        return made[-1]

    pool = WarmPool(make, discarded.append, size=2)
    assert pool.take() is None  # nothing started yet: the caller makes its own
    wait_until(lambda: pool.ready == 2)
    first = pool.take()
    wait_until(lambda: pool.ready == 2)
    assert first == 0 and made == [0, 1, 2]
    pool.close()
    assert sorted(discarded) == [1, 2] and pool.ready == 0


def test_a_warm_pool_whose_maker_fails_says_why_and_retries():
    calls = []

    def make():
        calls.append(1)
        raise SandboxError("engine gone")

    pool = WarmPool(make, lambda item: None, size=2)
    assert pool.take() is None
    wait_until(lambda: "engine gone" in pool.problem)
    assert pool.take() is None
    wait_until(lambda: len(calls) >= 2)
    pool.close()


def test_engine_errors_name_the_engine():
    url = "unix:///nonexistent/docker.sock"
    assert not docker_available(url)
    with pytest.raises(SandboxError, match=f"docker engine at {url}"):
        DockerSandbox(docker_host=url)


@pytest.mark.parametrize("server", [True, False], ids=["command-server", "exec"])
def test_commands_run_through_the_sdk_without_a_cli_process(monkeypatch, server):
    from environments.swe import sandbox_docker

    root = episode_root()
    workspace = root / "ws"
    workspace.mkdir(mode=0o777)
    sandbox = DockerSandbox()
    if not server:  # as for an image without python3: every command an exec
        monkeypatch.setattr(sandbox_docker, "_NO_SERVER",
                            {(sandbox.engine.url, sandbox.image or sandbox._images[
                                sandbox.engine.url])})
    try:
        sandbox.start(workspace)
        assert (sandbox.container.channel is not None) == server
        spawned = []
        real = subprocess.Popen.__init__

        def spy(self, args, *rest, **kwargs):
            spawned.append(args)
            real(self, args, *rest, **kwargs)

        monkeypatch.setattr(subprocess.Popen, "__init__", spy)
        result = sandbox.run("cat; echo err >&2; exit 3", stdin=b"from stdin\n")
        assert (result.output, result.exit_code) == ("from stdin\nerr\n", 3)
        assert sandbox.run("sleep 5", timeout=1).timed_out
        assert sandbox.run("echo still here").output == "still here\n"
        held = sandbox.run("sleep 30 & echo left running", timeout=20)
        assert held.output == "left running\n" and not held.timed_out  # not waited for
        assert "Permission denied" in sandbox.run("ls /proc/1/fd").output or not server
        assert spawned == []  # no `docker` process per command (nor any other)
    finally:
        monkeypatch.undo()
        sandbox.close()
        subprocess.run(["rm", "-rf", str(root)])


def test_a_command_server_slow_to_start_is_waited_for():
    from environments.swe import command_server
    from environments.swe.docker_streams import connect

    sandbox = DockerSandbox(warm=0)
    api, image = sandbox.engine.api, sandbox.image or sandbox._images[sandbox.engine.url]
    late = api.create_container(  # the real server, 3 s late (as on a loaded machine)
        image, ["sh", "-c", 'sleep 3; exec python3 -c "$0"', command_server.SERVER],
        stdin_open=True, labels={"agentgym.swe": "1"},
        host_config=api.create_host_config(network_mode="none"))["Id"]
    try:
        api.start(late)
        channel = connect(sandbox.engine, late)
        assert channel.run("echo served", b"", 20, sandbox.limits).output == "served\n"
        channel.close()
    finally:
        api.remove_container(late, force=True)
        sandbox.close()


def test_an_earlier_attachs_unread_ping_answer_does_not_put_commands_out_of_step():
    from environments.swe.docker_streams import Channel

    root = episode_root()
    workspace = root / "ws"
    workspace.mkdir(mode=0o777)
    sandbox = DockerSandbox(warm=0)
    try:
        sandbox.start(workspace)
        container = sandbox.container.id
        late = Channel(sandbox.engine, container)  # attached while another pings and leaves
        gave_up = Channel(sandbox.engine, container)
        assert gave_up.ready()
        gave_up.close()
        assert late.ready()  # the other ping's answer reached it too, and is passed over
        assert late.run("echo mine", b"", 20, sandbox.limits).output == "mine\n"
        assert late.run("echo next", b"", 20, sandbox.limits).output == "next\n"
        late.close()
    finally:
        sandbox.close()
        subprocess.run(["rm", "-rf", str(root)])


def test_resets_take_warm_containers_with_the_episodes_own_workspace():
    with agentgym.make("SWE-v0", sandbox="docker", tasks_per_source=2,
                       warm_containers=2) as env:
        sandbox = env.unwrapped.sandbox
        env.reset(seed=0)
        wait_until(lambda: sandbox._pool.ready == 2)
        seen, slots = set(), set()
        for seed in range(3):
            env.reset(seed=seed)
            container = sandbox.container
            assert container.slot is not None and is_mount_point(container.slot)  # warm
            seen.add(container.id)
            slots.add(container.slot)
            obs, *_ = bash(env, f"ls; ls marker-* 2>&1; touch marker-{seed} && echo wrote")
            # the episode's own fresh workspace, writable, and what is written reaches the host
            assert "tests" in obs and "No such file" in obs and "wrote" in obs, obs
            assert [p.name for p in env.unwrapped._workspace.glob("marker-*")] == [f"marker-{seed}"]
            wait_until(lambda: sandbox._pool.ready == 2)
        assert len(seen) == 3
        _, info = env.reset(seed=0)
        while True:  # an expert episode on a warm container is graded as on a cold one
            _, reward, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                break
        assert info["outcome_channels"]["resolved"] == 1.0
    assert containers() == []
    assert not any(is_mount_point(slot) or slot.exists() for slot in slots)
    assert not any(slot.parent.exists() for slot in slots)  # the last close unmounts it


def test_parallel_episodes_keep_to_their_own_containers():
    envs = [agentgym.make("SWE-v0", sandbox="docker", tasks_per_source=2) for _ in range(8)]
    barrier = threading.Barrier(len(envs))

    def episode(index):
        env = envs[index]
        _, info = env.reset(seed=index)
        token = uuid.uuid4().hex
        bash(env, f"echo {token} > mine.txt")
        barrier.wait()  # every episode has written before any looks
        obs, *_ = bash(env, "cat mine.txt")
        while True:
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                return token, obs, info["outcome_channels"]["resolved"]

    try:
        with ThreadPoolExecutor(len(envs)) as pool:
            results = list(pool.map(episode, range(len(envs))))
    finally:
        for env in envs:
            env.close()
    for token, obs, resolved in results:
        assert obs.split()[0] == token, obs  # its own workspace, no other's
        assert resolved == 1.0
    assert containers() == []


def episode_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"))


@pytest.mark.parametrize("pool_kind", ["ray", "envpool"])
def test_swe_episodes_in_a_pool_through_the_rollout_engine_leave_nothing(pool_kind):
    """Envs in Ray actors (or worker processes), warm containers on: every episode is
    resolved, and closing the pool leaves no container, folder or mount behind."""
    from agentgym.pool import EnvPool
    from agentgym.ray_pool import RayEnvPool

    before = episode_folders()
    kwargs = {"sandbox": "docker", "tasks_per_source": 2}
    pool = (RayEnvPool("SWE-v0", 3, env_kwargs=kwargs, timeout=300, num_cpus=0.5)
            if pool_kind == "ray" else EnvPool("SWE-v0", 3, env_kwargs=kwargs, timeout=300))
    with pool:
        episodes = agentgym.rollout(pool, agentgym.ExpertPolicy(), tasks=6, progress=False)
    assert [e.error for e in episodes] == [None] * 6
    assert all(e.outcome.success for e in episodes)
    assert containers() == []
    assert episode_folders() <= before
    assert ROOT_PREFIX.encode() not in Path("/proc/self/mountinfo").read_bytes()


@pytest.fixture
def two_engines():
    engines = [DockerEngine(tcp=False), DockerEngine(tcp=True)]
    yield engines
    for engine in engines:
        engine.stop()


def test_episodes_spread_over_two_engines_and_survive_one_dying(two_engines):
    local, remote = two_engines
    urls = [local.url, remote.url]
    envs = [agentgym.make("SWE-v0", sandbox="docker", tasks_per_source=2, docker_hosts=urls,
                          warm_containers=0) for _ in range(2)]
    try:
        used = set()
        for seed, env in enumerate(envs * 2):  # the envs spread: one engine each
            _, info = env.reset(seed=seed)
            used.add(env.unwrapped.sandbox.engine.url)
            obs, *_ = bash(env, "echo edited > notes.txt && cat notes.txt")
            assert "edited" in obs
            assert (env.unwrapped._workspace / "notes.txt").read_text() == "edited\n"  # mirrored
            while True:
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                if terminated or truncated:
                    break
            assert info["outcome_channels"]["resolved"] == 1.0
        assert used == set(urls)

        def on_remote(hostname: str) -> bool:
            return any(env.unwrapped.sandbox.engine.url == remote.url
                       and env.unwrapped.sandbox.container.id.startswith(hostname)
                       for env in envs if env.unwrapped.sandbox.container)

        def look_then_expert(conversation):
            if conversation.turn == 0:  # which container is this episode's?
                return ToolCall("bash", {"command": "cat /etc/hostname"}).to_text()
            hostname = conversation.observation.split()[0]
            if conversation.turn == 1 and remote in STARTED and on_remote(hostname):
                remote.stop()  # mid-episode on the TCP engine: its next step must fail
            return conversation.info["expert_action"]

        episodes = agentgym.rollout(envs, look_then_expert, tasks=6, progress=False)
    finally:
        for env in envs:
            env.close()
    failed = [e for e in episodes if e.error]
    assert len(episodes) == 6 and failed and len(failed) < 6, [e.error for e in episodes]
    for episode in failed:
        assert remote.url in episode.error["message"], episode.error
    assert all(e.outcome.success for e in episodes if not e.error)
    assert docker_available(local.url) and not docker_available(remote.url)


def test_mirroring_never_writes_through_a_link(tmp_path):
    """A link the workspace holds (dangling or not) is replaced, never written through."""
    import io
    import tarfile

    from environments.swe import transfer

    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "dangling.py").symlink_to(outside / "planted.py")
    (outside / "real.txt").write_text("host data")
    (workspace / "linked.txt").symlink_to(outside / "real.txt")
    def archive(*names):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
        return buffer.getvalue()

    with pytest.raises(SandboxError, match="outside it"):
        transfer.mirror(archive("../escape.py"), workspace)
    transfer.mirror(archive("dangling.py", "linked.txt"), workspace)
    assert not (outside / "planted.py").exists() and not (tmp_path / "escape.py").exists()
    assert (outside / "real.txt").read_text() == "host data"
    assert not (workspace / "dangling.py").is_symlink()
    assert (workspace / "dangling.py").read_bytes() == b"evil"
