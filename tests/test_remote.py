import dataclasses
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

import agentgym
from agentgym.errors import EpisodeOver, InvalidOptionError, TaskNotFoundError
from agentgym.remote import RemoteEnv, RemoteError


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*extra):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve", "TextWorld-v0",
                             "--port", str(port), "--env-arg", "preset=easy", *extra],
                            env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    return proc, healthy(proc, f"http://127.0.0.1:{port}")


def healthy(proc: subprocess.Popen, url: str) -> str:
    """``url`` once the server there answers ``/health`` (its output if it never does)."""
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stdout.read())


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--max-sessions", "8")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def transcript(env, actions_from, seed):
    obs, info = env.reset(seed=seed)
    lines = [obs, sorted(info.items(), key=str)]
    for _ in range(6):
        obs, reward, term, trunc, info = env.step(actions_from(info))
        lines.append((obs, reward, term, trunc, sorted(info.items(), key=str)))
        if term or trunc:
            break
    return lines


def test_remote_and_local_give_identical_transcripts(server):
    first = lambda info: info["admissible_actions"][0]  # noqa: E731
    with agentgym.make("TextWorld-v0", preset="easy") as local, \
            agentgym.make(f"remote:{server}/TextWorld-v0") as remote:
        assert isinstance(remote, agentgym.AgentEnv)
        assert remote.system_prompt() == local.system_prompt()
        for seed in (0, 3):
            wrap = lambda info: f"<action>{first(info)}</action>"  # noqa: E731
            assert transcript(remote, wrap, seed) == transcript(local, wrap, seed)
        a = agentgym.rollout(local, agentgym.RandomPolicy(), tasks=2, seed=4, progress=False)
        b = agentgym.rollout(remote, agentgym.RandomPolicy(), tasks=2, seed=4, progress=False)
        assert [(t.observation, t.action) for e in a for t in e.turns] == \
            [(t.observation, t.action) for e in b for t in e.turns]


def test_server_errors_come_back_as_our_exceptions(server):
    with RemoteEnv(f"{server}/TextWorld-v0") as env:
        with pytest.raises(TaskNotFoundError, match="preset/split/index"):
            env.reset(options={"task_id": "nope"})
        with pytest.raises(InvalidOptionError, match="'splt'"):
            env.reset(options={"splt": "x"})
        obs, info = env.reset(seed=0)
        while True:
            *_, term, trunc, info = env.step(info["expert_action"])
            if term or trunc:
                break
        with pytest.raises(EpisodeOver):
            env.step("<action>look</action>")
    with pytest.raises(InvalidOptionError, match="serves 'TextWorld-v0', not 'Search-v0'"):
        RemoteEnv(f"{server}/Search-v0")


def test_session_limit_and_unknown_sessions(server):
    envs = [RemoteEnv(f"{server}/TextWorld-v0") for _ in range(8)]
    with pytest.raises(agentgym.AgentGymError, match="maximum of 8 sessions"):
        RemoteEnv(f"{server}/TextWorld-v0")
    for env in envs:
        env.close()
    reply = httpx.post(f"{server}/sessions/nope/step", json={"action": "look"})
    assert reply.status_code == 404 and "No session 'nope'" in reply.json()["message"]


def test_abandoned_sessions_are_reaped_and_memory_returns():
    proc, url = start_server("--max-sessions", "300", "--idle-timeout", "1")
    try:
        def wave(n):
            for i in range(n):
                sid = httpx.post(f"{url}/sessions").json()["session"]
                httpx.post(f"{url}/sessions/{sid}/reset", json={"seed": i % 5})
            # ... and never closed: the clients vanish
            deadline = time.time() + 30
            while httpx.get(f"{url}/metrics").json()["sessions"] and time.time() < deadline:
                time.sleep(0.2)
            return httpx.get(f"{url}/metrics").json()

        baseline = wave(20)  # warm up: imports, game files, allocator pools
        after = wave(200)
        assert after["sessions"] == 0 and after["reaped"] == 220
        assert after["rss_mb"] <= baseline["rss_mb"] + 40, (baseline, after)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_remote_env_keeps_the_gymnasium_contract(server):
    from gymnasium.utils.env_checker import check_env

    with agentgym.make(f"remote:{server}/TextWorld-v0") as remote, \
            agentgym.make("TextWorld-v0", preset="easy") as local:
        check_env(remote)
        remote.reset(seed=2)
        local.reset(seed=2)
        # the server's file paths mean nothing to the client: everything but ``source`` matches
        assert remote.task == dataclasses.replace(local.task, source=None)
        assert remote.task.id.startswith("easy/")


def test_http_api_is_described_by_openapi(server):
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/health", "/sessions", "/sessions/{sid}/reset",
            "/sessions/{sid}/step"} <= set(schema["paths"])
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_connection_errors_name_the_url():
    url = f"http://127.0.0.1:{free_port()}/TextWorld-v0"
    with pytest.raises(RemoteError, match=f"Cannot reach the env server at {url}"):
        RemoteEnv(url, timeout=2)
