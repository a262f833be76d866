"""A stuck engine never stalls a caller: single env, thread pool, and ``agentgym serve``."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

import agentgym
from agentgym.pool import EnvPool
from tests.hang_env import HangEnv
from tests.test_remote import free_port, healthy

META = ["\\help", "\\q", "\\x", "\\s", "\\cepboid Calendar into basket", "take \\n",
        "take " + "é" * 100]


def answered_quickly(step, action):
    started = time.monotonic()
    obs, reward, terminated, truncated, info = step(action)
    assert time.monotonic() - started < 1.0, action
    assert not info["action_valid"] and "Invalid action" in obs, action
    return terminated, truncated


def test_interpreter_meta_commands_are_refused_in_a_single_env():
    with agentgym.make("TextWorld-v0", preset="easy") as env:
        env.reset(seed=0)
        for action in META:
            assert answered_quickly(env.step, f"<action>{action}</action>") == (False, False)
        obs, *_ = env.step("<action>look</action>")
        assert "-=" in obs  # the engine still answers


def test_interpreter_meta_commands_are_refused_in_a_thread_pool():
    with EnvPool("TextWorld-v0", n=2, env_kwargs={"preset": "easy"}, backend="thread",
                 timeout=30) as pool:
        pool.call(0, "reset", seed=0)
        for action in META:
            answered_quickly(lambda a: pool.call(0, "step", a), f"<action>{action}</action>")


def test_a_hung_step_ends_the_episode_and_the_engine_is_replaced():
    env = agentgym.make("Hang-v0", step_timeout=0.5)
    env.reset(seed=0)
    before = HangEnv.engines_started
    started = time.monotonic()
    obs, reward, terminated, truncated, info = env.step("<action>hang</action>")
    assert time.monotonic() - started < 3
    assert truncated and not terminated and info["error"]["type"] == "StepTimeout"
    assert "did not answer within 0.5 s" in obs
    env.reset(seed=0)
    assert HangEnv.engines_started == before + 1
    assert env.step("<action>ok</action>")[0] == "you said ok"
    env.close()


def test_step_timeout_is_checked():
    with pytest.raises(agentgym.errors.InvalidOptionError, match="step_timeout"):
        agentgym.make("Hang-v0", step_timeout=-1)


def serve(env_id, *args):
    port = free_port()
    code = ("import sys, tests.hang_env; from agentgym.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", env_id, "--port", str(port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=os.path.dirname(os.path.dirname(__file__)), text=True)
    return proc, healthy(proc, f"http://127.0.0.1:{port}")


def test_server_answers_meta_commands_reaps_and_stops_with_a_hung_session():
    proc, url = serve("TextWorld-v0", "--env-arg", "preset=easy")
    try:
        sid = httpx.post(f"{url}/sessions").json()["session"]
        httpx.post(f"{url}/sessions/{sid}/reset", json={"seed": 0})
        for action in META:
            answered_quickly(lambda a: _step(url, sid, a), f"<action>{action}</action>")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    proc, url = serve("Hang-v0", "--idle-timeout", "1", "--env-arg", "step_timeout=null")
    try:
        hung = httpx.post(f"{url}/sessions").json()["session"]
        httpx.post(f"{url}/sessions/{hung}/reset", json={})
        pending = concurrent.futures.ThreadPoolExecutor(1).submit(
            httpx.post, f"{url}/sessions/{hung}/step", json={"action": "<action>hang</action>"},
            timeout=60)
        idle = httpx.post(f"{url}/sessions").json()["session"]
        deadline = time.monotonic() + 15
        while httpx.get(f"{url}/metrics").json()["reaped"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        metrics = httpx.get(f"{url}/metrics").json()
        assert metrics["reaped"] == 2 and metrics["sessions"] == 0, metrics  # hung one too
        assert httpx.delete(f"{url}/sessions/{idle}").status_code == 404
        assert not pending.done()
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.monotonic() - started < 15


def _step(url, sid, action):
    body = httpx.post(f"{url}/sessions/{sid}/step", json={"action": action}).json()
    return body["observation"], body["reward"], body["terminated"], body["truncated"], \
        body["info"]


def test_server_session_limit_request_size_client_errors_and_token():
    proc, url = serve("TextWorld-v0", "--env-arg", "preset=easy", "--max-sessions", "1",
                      "--token", "s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    try:
        assert httpx.post(f"{url}/sessions").status_code == 401
        assert httpx.post(f"{url}/sessions", headers={"Authorization": "Bearer no"}
                          ).status_code == 401
        with concurrent.futures.ThreadPoolExecutor(30) as workers:
            codes = list(workers.map(lambda _: httpx.post(f"{url}/sessions", headers=auth,
                                                          timeout=60).status_code, range(30)))
        assert codes.count(200) == 1 and codes.count(429) == 29, codes
        assert httpx.get(f"{url}/metrics", headers=auth).json()["sessions"] == 1

        big = httpx.post(f"{url}/sessions/x/step", headers=auth, content=b"x" * 200_000_000,
                         timeout=120)
        assert big.status_code == 413 and "limited to" in big.json()["message"]

        def chunks():
            for _ in range(200):
                yield b"x" * 1_000_000

        streamed = httpx.post(f"{url}/sessions/x/step", headers=auth, content=chunks(),
                              timeout=120)
        assert streamed.status_code == 413

        with agentgym.make(f"remote:{url}/TextWorld-v0", token="s3cret"):
            pytest.fail("the only session slot is taken; opening another must fail")
    except agentgym.errors.AgentGymError as exc:
        assert "maximum of 1" in str(exc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_server_client_errors_are_4xx():
    proc, url = serve("TextWorld-v0", "--env-arg", "preset=easy")
    try:
        sid = httpx.post(f"{url}/sessions").json()["session"]
        bad_seed = httpx.post(f"{url}/sessions/{sid}/reset", json={"seed": -1})
        assert bad_seed.status_code == 400 and "seed" in bad_seed.json()["message"]
        encoded = httpx.post(f"{url}/sessions/{sid}/encode",
                             json={"command": {"name": "act", "arguments": {"command": "look"}}})
        assert encoded.status_code < 500, encoded.text
        weird = httpx.post(f"{url}/sessions/{sid}/encode", json={"command": [1, {"a": None}]})
        assert 400 <= weird.status_code < 500, weird.text
        httpx.post(f"{url}/sessions/{sid}/reset", json={"seed": 0})
        step = httpx.post(f"{url}/sessions/{sid}/step",
                          json={"action": {"name": ["act"], "arguments": {"command": 3}}})
        assert step.status_code == 200 and not step.json()["info"]["action_valid"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
