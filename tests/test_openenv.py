"""agentgym envs served to OpenEnv's own clients (openenv-core), two families."""

import contextlib
import socket
import subprocess
import sys
import time

import httpx
import pytest
from openenv.core.generic_client import GenericEnvClient

import agentgym
from agentgym.openenv_client import AgentGymClient
from agentgym.openenv_server import AgentGymAction

FAMILIES = {"TextWorld-v0": {"preset": "easy", "max_turns": 6, "num_tasks": 8},
            "Search-v0": {"max_turns": 8}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(env_id, kwargs):
    """``agentgym serve env_id --protocol openenv`` in a subprocess; its URL once healthy."""
    port = free_port()
    args = [f"--env-arg={k}={v}" for k, v in kwargs.items()]
    server = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "serve", env_id,
                               "--protocol", "openenv", "--port", str(port), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(params=list(FAMILIES))
def served(request):
    env_id, kwargs = request.param, FAMILIES[request.param]
    with serving(env_id, kwargs) as url:
        yield env_id, kwargs, url


def local_transcript(env_id, kwargs, seed, steps):
    """The expert's episode on a local env: actions, observations, rewards, done."""
    env = agentgym.make(env_id, **kwargs)
    observation, info = env.reset(seed=seed)
    actions, rows = [], [(observation, None, False)]
    for _ in range(steps):
        action = env.protocol.encode(env.unwrapped._expert())
        observation, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rows.append((observation, reward, terminated or truncated))
        if terminated or truncated:
            break
    env.close()
    return actions, rows, info


def test_a_typed_openenv_client_plays_the_same_episode_as_a_local_env(served):
    env_id, kwargs, url = served
    actions, rows, last_info = local_transcript(env_id, kwargs, seed=3, steps=6)
    with AgentGymClient(base_url=url).sync() as env:
        first = env.reset(seed=3)
        assert first.observation.text == rows[0][0] and first.observation.system_prompt
        assert first.observation.task_id
        for action, (observation, reward, done) in zip(actions, rows[1:]):
            result = env.step(AgentGymAction(text=action))
            assert result.observation.text == observation
            assert result.reward == pytest.approx(reward) and result.done == done
            assert set(result.observation.channels) >= set(last_info["reward_channels"])
        assert result.done and result.observation.info["success"] == last_info["success"]
        assert env.state().step_count == len(actions)


def test_the_generic_client_gets_malformed_actions_as_observations(served):
    env_id, kwargs, url = served
    with GenericEnvClient(base_url=url).sync() as env:
        first = env.reset(seed=1)
        assert first.observation["text"] and not first.done
        assert "expert_action" not in first.observation["info"]  # no answer for the agent
        result = env.step({"text": "this is not an action at all"})
        assert result.observation["info"]["action_valid"] is False
        assert not result.done and result.observation["text"]  # said what was wrong


def test_a_bare_command_is_encoded_by_the_served_envs_protocol():
    """For clients that do not know a text env's protocol (a TRL tool call). The outcome
    comes only when the episode ends, by the env or by `stop`: never mid-episode, where it
    would tell an agent how it is doing against the grader."""
    env_id = "TextWorld-v0"
    kwargs = FAMILIES[env_id]
    actions, rows, last_info = local_transcript(env_id, kwargs, seed=3, steps=6)
    with serving(env_id, kwargs) as url, AgentGymClient(base_url=url).sync() as env:
        first = env.reset(seed=3)
        assert first.observation.outcome == {}
        for n, (action, (observation, _, _)) in enumerate(zip(actions, rows[1:])):
            result = env.step(AgentGymAction(command=env_command(env_id, action)))
            assert result.observation.text == observation
            if n < len(actions) - 1:
                assert result.observation.outcome == {}
        assert result.observation.outcome["success"] == float(last_info["success"]) == 1.0
        env.reset(seed=3)
        env.step(AgentGymAction(command=env_command(env_id, actions[0])))
        stopped = env.step(AgentGymAction(stop=True))
        assert stopped.done and stopped.observation.truncated
        assert stopped.observation.outcome["success"] == 0.0
        after = env.step(AgentGymAction(command=env_command(env_id, actions[1])))
        assert after.done and "over" in after.observation.text  # the env is not stepped
        assert env.state().step_count == 1


def env_command(env_id, encoded):
    """The bare command an encoded action carries (the text between the protocol's tags)."""
    with agentgym.make(env_id, **FAMILIES[env_id]) as env:
        return env.protocol.parse(encoded).value
