"""One rollout engine for every mode: same tasks, same deterministic policy, same transcripts.

The policy below depends only on the messages it is shown, so it can be played as a plain
callable, a batching model, an async policy, or a real OpenAI-compatible HTTP server; the
envs are local, a list, a process pool, or a remote env behind ``agentgym serve``.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import pytest

import agentgym
from agentgym.pool import EnvPool
from tests.test_remote import start_server
from tests.test_rollout import ChatServer

EASY = {"preset": "easy"}
COMMANDS = ["look", "inventory", "go east", "go west", "go north", "go south", "open door",
            "take key", "open chest", "examine room"]


def choose(messages) -> str:
    """A deterministic action from the conversation (the last observation and the turn)."""
    digest = hashlib.sha1(f"{len(messages)}|{messages[-1]['content']}".encode()).digest()
    return f"<action>{COMMANDS[digest[0] % len(COMMANDS)]}</action>"


def plain(conversation):
    return choose(conversation.messages)


@dataclass
class Reply:
    text: str


class Batching:
    def __init__(self):
        self.batch_sizes = []

    def generate(self, conversations):
        self.batch_sizes.append(len(conversations))
        return [Reply(choose(c.messages)) for c in conversations]


class Async:
    async def acall(self, conversation):
        await asyncio.sleep(0.001)
        return choose(conversation.messages)


def transcripts(episodes):
    return [(e.task_id, e.group_id.split(":", 2)[2], e.outcome.total_reward, e.truncated,
             [(t.action, t.observation, t.reward, t.state_key) for t in e.turns],
             e.final_observation) for e in episodes]


def play(env, policy):
    return agentgym.rollout(env, policy, tasks=3, group_size=2, seed=5, progress=False)


def test_every_mode_plays_the_same_transcripts():
    envs = [agentgym.make("TextWorld-v0", **EASY) for _ in range(3)]
    try:
        reference = transcripts(play(envs[0], plain))
        assert len(reference) == 6 and any(len(t[4]) > 3 for t in reference)
        batching = Batching()
        assert transcripts(play(envs, batching)) == reference
        assert max(batching.batch_sizes) > 1  # episodes really were batched
        assert transcripts(play(envs, Async())) == reference
        with EnvPool("TextWorld-v0", n=2, env_kwargs=EASY) as pool:
            assert transcripts(play(pool, plain)) == reference
        with ChatServer(lambda body: (200, choose(body["messages"]))) as server:
            policy = agentgym.OpenAIChatPolicy(base_url=server.url, concurrency=3)
            assert transcripts(play(envs, policy)) == reference
            assert server.peak > 1  # requests were in flight together
    finally:
        for env in envs:
            env.close()
    proc, url = start_server()
    try:
        remote = [agentgym.make(f"remote:{url}/TextWorld-v0") for _ in range(2)]
        remotely = play(remote, plain)
        assert transcripts(remotely) == reference, [e.error for e in remotely]
        for env in remote:
            env.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def crashing_env(crash_on_task: int):
    """A TextWorld env whose step raises on one task (as a crashing engine would)."""
    env = agentgym.make("TextWorld-v0", **EASY)
    step = env.step

    def flaky(action):
        if env.unwrapped.task_id.endswith(f"/{crash_on_task}"):
            raise RuntimeError("the engine fell over")
        return step(action)

    env.step = flaky
    return env


@pytest.mark.parametrize("mode", ["batched", "async", "sequential"])
def test_an_env_exception_fails_only_its_episode(mode):
    envs = [crashing_env(crash_on_task=6) for _ in range(2)]
    policy = {"batched": Batching(), "async": Async(), "sequential": plain}[mode]
    try:
        episodes = agentgym.rollout(envs if mode != "sequential" else envs[0], policy,
                                    tasks=3, seed=5, progress=False)
    finally:
        for env in envs:
            env.close()
    failed = [e for e in episodes if e.error]
    assert [e.task_id for e in failed] == ["easy/train/6"]
    assert failed[0].error == {"type": "EnvError",
                               "message": "RuntimeError: the engine fell over"}
    assert all(e.error is None and e.turns for e in episodes if e not in failed)


def test_requests_beyond_one_client_pool_are_still_in_flight_together():
    # requests are spread over clients of 8 connections each; all 20 must still fly at once
    envs = [agentgym.make("TextWorld-v0", **EASY) for _ in range(20)]
    try:
        with ChatServer(lambda body: (200, choose(body["messages"])), delay=0.2) as server:
            policy = agentgym.OpenAIChatPolicy(base_url=server.url, concurrency=20)
            episodes = agentgym.rollout(envs, policy, tasks=20, progress=False)
    finally:
        for env in envs:
            env.close()
    assert all(e.error is None for e in episodes)
    assert server.peak > 8
