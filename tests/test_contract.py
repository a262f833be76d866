"""The env contract every registered env keeps, the README's example env included.

Parametrized over ``agentgym.list_envs()``: Gymnasium's ``check_env``, ``env.task`` and
``env.env_id``, the scalar reward as the sum of the declared channels, and an invalid action
answered with an observation that leaves the world state as it was.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.errors import ResetNeeded

# small, fast settings where a family has them; any other registered env is made as is
QUICK = {"TextWorld-v0": {"preset": "easy"}, "WebShop-v0": {"catalog_size": 200},
         "ALFWorld-v0": {"source": "generated", "rooms": ["bathroom"]},
         "Search-v0": {"kb_size": 200}}
GARBAGE = "<<< this is not an action \x00 >>>"


@pytest.fixture(params=sorted(agentgym.list_envs()))
def env(request):
    env = agentgym.make(request.param, **QUICK.get(request.param, {}))
    yield env
    env.close()


def test_gymnasium_check_env(env):
    check_env(env)


def test_task_and_env_id(env):
    fresh = agentgym.make(env.env_id, **QUICK.get(env.env_id, {}))
    with fresh, pytest.raises(ResetNeeded, match="reset"):
        fresh.task  # noqa: B018 - the property raises
    assert env.env_id in agentgym.list_envs()
    observation, info = env.reset(seed=3)
    task = env.task
    assert task.id == info["task_id"] and task.instruction == info["instruction"]
    assert task.split is None or task.split in env.splits
    assert task.reference is None or dict(task.reference)
    with pytest.raises(AttributeError):
        task.id = "x"  # read-only
    again, _ = env.reset(options={"task_id": task.id})
    assert env.task.id == task.id and again == observation


def test_reward_is_the_sum_of_the_declared_channels(env):
    _, info = env.reset(seed=1)
    for _ in range(8):
        if info["expert_action"] is None:
            break
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        channels = info["reward_channels"]
        assert set(env.turn_channels) <= set(channels)
        expected = sum(channels[name] for name in env.reward_channels)
        if terminated or truncated:
            expected += env.unwrapped._final_reward(info["outcome_channels"])
            assert set(env.outcome_channels) <= set(info["outcome_channels"])
        assert reward == pytest.approx(expected)
        if terminated or truncated:
            break


def test_an_invalid_action_is_an_observation_and_changes_no_state(env):
    _, info = env.reset(seed=2)
    before = info["state_key"]
    observation, reward, terminated, _, after = env.step(GARBAGE)
    assert isinstance(observation, str) and observation.strip()
    assert not after["action_valid"] and not terminated
    assert after["state_key"] == before
    assert all(value == 0.0 for value in after["reward_channels"].values())


# ------------------------------------------------------------------ the README's example
def readme_block(heading: str, index: int = 0) -> str:
    text = Path("README.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[index]


@pytest.fixture
def my_envs(tmp_path, monkeypatch):
    (tmp_path / "my_envs.py").write_text(readme_block("## Write your own environment"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_envs", None)


def test_readme_example_env_keeps_the_contract(my_envs):
    env = agentgym.make("my_envs:GuessEnv")
    assert env.env_id == "my_envs:GuessEnv"
    check_env(env)
    episodes = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=20, progress=False)
    assert all(e.outcome.success for e in episodes) and max(e.num_turns for e in episodes) <= 5
    assert {e.task_id for e in episodes} == {f"guess/{n}" for n in range(1, 21)}
    _, info = env.reset(options={"task_id": "guess/7"})
    _, reward, *_ , info = env.step("<action>ten</action>")
    assert not info["action_valid"] and "whole number" in _obs(env) and info["state_key"] == \
        "1-20"
    for outside in ("0", "99"):  # an out-of-range guess must not move the bounds (a paid hack)
        _, reward, *_, info = env.step(f"<action>{outside}</action>")
        assert not info["action_valid"] and reward == 0.0 and info["state_key"] == "1-20"
    exec(readme_block("## Write your own environment", 1), {"agentgym": agentgym})
    assert agentgym.make("Guess-v0", max_turns=6).env_id == "Guess-v0"


def _obs(env):
    return env.render() if env.render_mode else env.unwrapped._last_observation


def test_readme_example_env_runs_from_the_cli(my_envs):
    out = subprocess.run([sys.executable, "-m", "agentgym.cli", "rollout", "my_envs:GuessEnv",
                          "--policy", "expert", "--tasks", "3"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": f"{my_envs}:{os.getcwd()}"},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "100.0%" in out.stdout


def test_readme_pool_example_runs_as_a_script(tmp_path):
    script = tmp_path / "pool_example.py"
    script.write_text(readme_block("## Scale: pools, remote envs, Ray"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("32 of 32 episodes won")
