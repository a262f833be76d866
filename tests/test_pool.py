import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import agentgym
from agentgym.pool import EnvPool, PoolError
from tests.fault_envs import make_faulty

EASY = {"preset": "easy", "max_turns": 12}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split()[2] != "Z"


@pytest.fixture
def pool():
    with EnvPool(make_faulty, 2, env_kwargs=EASY, timeout=10) as pool:
        yield pool


def test_a_worker_killed_mid_episode_is_replaced(pool):
    for env in (0, 1):
        pool.submit(env, "reset", seed=env)
    assert all(r.ok for r in pool.wait(min_results=2))
    victim = pool.pids()[0]
    pool.submit(0, "step", "<action>look</action>")
    os.kill(victim, signal.SIGKILL)
    (result,) = pool.wait()
    assert not result.ok and result.env == 0
    assert result.error.startswith("worker died: exit code -9")
    assert pool.replaced == 1 and not alive(victim)
    assert pool.call(1, "step", "<action>look</action>")[0]  # the other env went on
    obs, info = pool.call(0, "reset", seed=0)                 # the new env works
    assert info["task_id"] == "easy/train/0"


def test_an_env_that_exits_is_reported(pool):
    pool.call(0, "reset", seed=0)
    pool.submit(0, "step", "<action>crash</action>")
    (result,) = pool.wait()
    assert not result.ok and "exit code 3" in result.error


def test_a_hung_step_times_out_and_the_worker_is_replaced(pool):
    pool.call(0, "reset", seed=0)
    pool.call(1, "reset", seed=1)
    hung = pool.pids()[0]
    pool.submit(0, "step", "<action>hang</action>", timeout=1.5)
    pool.submit(1, "step", "<action>look</action>")
    results = {r.env: r for r in pool.wait(min_results=2)}
    assert results[1].ok
    assert not results[0].ok and results[0].error.startswith("timeout: step took over 1.5 s")
    assert not alive(hung)


def test_env_errors_come_back_as_data(pool):
    pool.submit(0, "step", "<action>look</action>")  # no reset yet
    (result,) = pool.wait()
    assert not result.ok and result.error.startswith("ResetNeeded")
    with pytest.raises(PoolError, match="No env 5; the pool has envs 0..1"):
        pool.submit(5, "reset")
    pool.submit(1, "reset", seed=0)
    with pytest.raises(PoolError, match="still busy with reset"):
        pool.submit(1, "reset", seed=0)
    pool.wait()


def transcripts(episodes):
    return [(e.task_id, e.group_id.replace(e.metadata["run_id"], "run"),
             [(t.observation, t.action) for t in e.turns],
             e.final_observation) for e in episodes]


def test_pooled_rollout_matches_the_sequential_one():
    policy = agentgym.RandomPolicy()
    with agentgym.make("TextWorld-v0", **EASY) as env:
        sequential = agentgym.rollout(env, policy, tasks=3, group_size=2, seed=5, progress=False)
    with EnvPool("TextWorld-v0", 2, env_kwargs=EASY) as pool:
        pooled = agentgym.rollout(pool, policy, tasks=3, group_size=2, seed=5, progress=False)
    assert transcripts(pooled) == transcripts(sequential)


def test_pooled_rollout_marks_the_failed_episode_and_goes_on():
    def policy(conversation):
        if conversation.turn == 1 and "train/1" in str(conversation.info.get("task_id")):
            return "<action>crash</action>"
        return conversation.info["expert_action"]

    with EnvPool(make_faulty, 2, env_kwargs=EASY) as pool:
        episodes = agentgym.rollout(pool, policy, tasks=4, progress=False)
    failed = [e for e in episodes if e.error]
    assert len(episodes) == 4 and len(failed) == 1
    assert failed[0].task_id == "easy/train/1"
    assert failed[0].error["type"] == "EnvError" and "worker died" in failed[0].error["message"]
    assert all(e.outcome.success for e in episodes if not e.error)


def test_thread_backend():
    with EnvPool("TextWorld-v0", 2, env_kwargs=EASY, backend="thread") as pool:
        episodes = agentgym.rollout(pool, agentgym.ExpertPolicy(), tasks=2, progress=False)
    assert all(e.outcome.success for e in episodes)


ORPHAN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from agentgym.pool import EnvPool
    if __name__ == "__main__":
        pool = EnvPool("TextWorld-v0", 2, env_kwargs={"preset": "easy"})
        pool.call(0, "reset", seed=0)
        pool.call(1, "reset", seed=1)
        if sys.argv[1] == "exit":
            print(*pool.pids(), flush=True)
            sys.exit(0)          # no close(): the atexit handler must stop the workers
        with pool:
            print(*pool.pids(), flush=True)  # the signal comes while the pool is in use
            time.sleep(60)       # Ctrl-C closes the pool on the way out; SIGKILL can't, and
                                 # the workers die with their parent instead
""")


@pytest.mark.parametrize("how", ["exit", "sigint", "sigkill"])
def test_no_orphan_workers(tmp_path, how):
    script = tmp_path / "pool_script.py"
    script.write_text(ORPHAN_SCRIPT)
    # a terminal's Ctrl-C reaches a process whose SIGINT is at its default; one inherited as
    # ignored (from whatever the test process ran before) would never raise KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    if how == "sigkill":
        proc.kill()
    if how == "sigint":
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_close_stops_every_worker():
    pool = EnvPool("TextWorld-v0", 2, env_kwargs=EASY)
    pids = pool.pids()
    pool.close()
    pool.close()
    assert not any(alive(p) for p in pids)
    with pytest.raises(PoolError, match="closed"):
        pool.submit(0, "reset")
