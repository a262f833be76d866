"""Shared fixtures: one game cache per test run (generated games are reused within a run)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def game_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point AGENTGYM_CACHE at a fresh folder for this run (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("agentgym-cache")
    old = os.environ.get("AGENTGYM_CACHE")
    os.environ["AGENTGYM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("AGENTGYM_CACHE", None)
    else:
        os.environ["AGENTGYM_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def docker_engines_of_the_tests():
    """Stop the docker engines tests started (tests/engines.py) when the run ends."""
    yield
    from tests.engines import stop_all

    stop_all()


@pytest.fixture
def easy_env():
    import agentgym

    env = agentgym.make("TextWorld-v0", preset="easy", max_turns=30)
    yield env
    env.close()


def play_expert(env, seed=0, options=None):
    """Play the expert to the end with nothing but the contract; return the last step."""
    return play_until_done(env, lambda info: info["expert_action"], seed, options)


def play_until_done(env, policy, seed=0, options=None):
    """Play ``policy(info) -> action`` to the end of an episode; return the last step."""
    obs, info = env.reset(seed=seed, options=options)
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(info))
        if terminated or truncated:
            return obs, reward, terminated, truncated, info


def play(env, policy, seed=0, options=None):
    """Like :func:`play_until_done`, returning only ``(reward, info)`` of the last step."""
    *_, reward, _, _, info = play_until_done(env, policy, seed, options)
    return reward, info
