"""The Ray pool on a local Ray instance."""

import pytest

import agentgym
from agentgym.ray_pool import RayEnvPool
from tests.fault_envs import make_faulty

EASY = {"preset": "easy", "max_turns": 12}


@pytest.fixture(scope="module")
def pool():
    pool = RayEnvPool(make_faulty, 2, env_kwargs=EASY, timeout=20)
    yield pool
    pool.close()


def test_ray_pool_rollout_matches_local(pool):
    with agentgym.make("TextWorld-v0", **EASY) as env:
        local = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=2, group_size=2, seed=3,
                                 progress=False)
    remote = agentgym.rollout(pool, agentgym.RandomPolicy(), tasks=2, group_size=2, seed=3,
                              progress=False)
    assert [[(t.observation, t.action) for t in e.turns] for e in remote] == \
        [[(t.observation, t.action) for t in e.turns] for e in local]


def test_a_dead_actor_is_replaced(pool):
    pool.call(0, "reset", seed=0)
    pool.kill_actor(0)
    pool.submit(0, "step", "<action>look</action>")
    (result,) = pool.wait()
    assert not result.ok and result.error.startswith("worker died")
    obs, info = pool.call(0, "reset", seed=1)
    assert info["task_id"] == "easy/train/1"


def test_a_hung_call_times_out(pool):
    pool.call(1, "reset", seed=0)
    pool.submit(1, "step", "<action>hang</action>", timeout=2)
    (result,) = pool.wait()
    assert not result.ok and result.error.startswith("timeout: step took over 2.0 s")
    assert pool.call(1, "reset", seed=0)[1]["task_id"] == "easy/train/0"
