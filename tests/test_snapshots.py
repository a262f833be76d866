"""Snapshots: a restore gives back exactly the state, in every family, here and elsewhere.

The property, for each family: play a random prefix, snapshot, continue with actions X
(transcript T1); restore in the same env, in a fresh one, and from a pickled copy, and
continue with X again: every transcript equals T1, field by field.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

import agentgym
from agentgym.core import AgentEnv, Transition
from agentgym.errors import EpisodeOver, SnapshotError
from agentgym.protocols import ToolCall, command_protocol
from tests.test_contract import GARBAGE, QUICK

SWE_COMMANDS = [
    "echo one >> notes.txt", "mkdir -p a/b && echo x > a/b/c", "rm -rf a", "cat notes.txt",
    "ln -sf notes.txt link", "chmod 600 notes.txt", "rm -f notes.txt", "mkfifo pipe",
    "ls -R", "stat -c '%n %s %a %Y' notes.txt a a/b/c link 2>&1",
]
FAMILIES: dict[str, dict[str, Any]] = {
    "TextWorld-v0": {"preset": "medium"},
    "ALFWorld-v0": QUICK["ALFWorld-v0"],
    "WebShop-v0": QUICK["WebShop-v0"],
    "Search-v0": QUICK["Search-v0"],
    "SWE-v0": {"sandbox": "bwrap", "tasks_per_source": 2},
}
CASES = [*FAMILIES.items(), ("SWE-v0", {"sandbox": "docker", "tasks_per_source": 2})]
IDS = [f"{name}-{kwargs.get('sandbox', '')}".rstrip("-") for name, kwargs in CASES]


def random_action(env: Any, info: dict, rng: random.Random) -> Any:
    """A random admissible command, the expert's, a made-up one or garbage."""
    roll = rng.random()
    if roll < 0.1:
        return GARBAGE
    if env.env_id == "SWE-v0" and roll < 0.6:
        return ToolCall("bash", {"command": rng.choice(SWE_COMMANDS)}).to_text()
    if env.env_id == "Search-v0" and roll < 0.4:
        return ToolCall("search", {"query": rng.choice(["river", "founded", "author"])}
                        ).to_text()
    admissible = info["admissible_actions"]
    if admissible and roll < 0.7:
        return env.protocol.encode(rng.choice(admissible))
    return info["expert_action"] or GARBAGE


def play(env: Any, info: dict, rng: random.Random, steps: int) -> tuple[list, list, dict]:
    """Up to ``steps`` random actions: (transcript, the actions, the last info)."""
    transcript, actions = [], []
    for _ in range(steps):
        action = random_action(env, info, rng)
        result = env.step(action)
        actions.append(action)
        transcript.append(result)
        info = result[-1]
        if result[2] or result[3]:
            break
    return transcript, actions, info


def replay(env: Any, actions: list) -> list:
    return [env.step(action) for action in actions]


@pytest.fixture(params=CASES, ids=IDS)
def family(request):
    name, kwargs = request.param
    made = []

    def make() -> Any:
        made.append(agentgym.make(name, **kwargs))
        return made[-1]

    yield make
    for env in made:
        env.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_restore_gives_back_the_same_transcript(family, seed):
    rng = random.Random(seed)
    env = family()
    _, info = env.reset(seed=seed)
    _, _, info = play(env, info, rng, rng.randint(1, 4))
    snapshot = env.snapshot()
    if env.unwrapped.state.value == "done":  # after the end: restored as over
        for other in (env, family()):
            other.restore(snapshot)
            with pytest.raises(EpisodeOver):
                other.step(GARBAGE)
        return
    first, actions, _ = play(env, info, rng, 4)
    env.restore(snapshot)
    assert replay(env, actions) == first
    fresh = family()
    fresh.restore(snapshot)
    assert replay(fresh, actions) == first
    shipped = family()
    shipped.restore(pickle.loads(pickle.dumps(snapshot)))
    assert replay(shipped, actions) == first


def test_snapshots_are_independent(family):
    rng = random.Random(7)
    env = family()
    _, info = env.reset(seed=2)
    _, _, info = play(env, info, rng, 1)
    early = env.snapshot()
    _, _, info = play(env, info, rng, 2)
    assert env.unwrapped.state.value != "done", "pick a seed whose prefix does not end it"
    late = env.snapshot()
    after_late, actions_late, _ = play(env, info, rng, 2)
    env.restore(early)
    after_early = replay(env, actions_late)
    env.restore(late)  # restoring the early one and stepping on did not change the late one
    assert replay(env, actions_late) == after_late
    env.restore(early)
    assert replay(env, actions_late) == after_early


class Dice(AgentEnv):
    """A deterministic custom env drawing from ``np_random`` on every step (no native
    snapshots: it gets the replay fallback)."""

    env_id = "Dice-v0"
    turn_channels = ("format", "roll")

    def __init__(self) -> None:
        super().__init__(protocol=command_protocol("tags"), max_turns=10)
        self.total = 0

    def _load_task(self, options):
        self.total = int(self.np_random.integers(100))
        return f"start at {self.total}", f"dice/{self.total}"

    def _apply(self, command):
        roll = int(self.np_random.integers(6)) + 1
        self.total += roll if command == "add" else -roll
        return Transition(f"rolled {roll}, total {self.total}", {"roll": float(roll)})

    def _instruction(self):
        return "roll"

    def _state_key(self):
        return str(self.total)

    def _outcome(self):
        return {"success": float(self.total > 100)}


class LoadedDice(Dice):
    """Claims to replay, but its steps read state outside the env (a process-wide counter:
    unlike an unseeded generator, it never repeats a roll by chance)."""

    rolls_so_far = 0

    def _apply(self, command):
        LoadedDice.rolls_so_far += 1
        self.total += LoadedDice.rolls_so_far
        return Transition(f"total {self.total}", {"roll": 0.0})


def test_a_deterministic_custom_env_restores_by_replay():
    env, twin = Dice(), Dice()
    env.reset()  # no seed: the task and the rolls come from the generator's own state
    for command in ("add", "sub", "add"):
        env.step(f"<action>{command}</action>")
    snapshot = env.snapshot()
    assert snapshot.kind == "replay" and snapshot.native is None
    later = [env.step("<action>add</action>") for _ in range(3)]
    twin.restore(pickle.loads(pickle.dumps(snapshot)))
    assert [twin.step("<action>add</action>") for _ in range(3)] == later


def test_what_cannot_be_snapshotted_says_why():
    loaded = LoadedDice()
    loaded.reset(seed=0)
    loaded.step("<action>add</action>")
    snapshot = loaded.snapshot()
    with pytest.raises(SnapshotError, match="not reproducible"):
        LoadedDice().restore(snapshot)  # the replay ends elsewhere: said, not hidden
    LoadedDice.snapshot_kind = None
    try:
        with pytest.raises(SnapshotError, match="cannot be snapshotted"):
            loaded.snapshot()
    finally:
        del LoadedDice.snapshot_kind
    with pytest.raises(SnapshotError, match="Dice-v0.*cannot restore into 'TextWorld-v0'"):
        agentgym.make("TextWorld-v0", preset="easy").restore(snapshot)
    with pytest.raises(SnapshotError, match="takes a Snapshot"):
        Dice().restore({"turn": 3})


def continue_in(pool: Any, env: int, snapshot: Any, actions: list) -> list:
    pool.call(env, "restore", snapshot)
    return [pool.call(env, "step", action) for action in actions]


@pytest.mark.parametrize("env_id", ["TextWorld-v0", "Search-v0"])
def test_a_snapshot_taken_in_one_pool_worker_restores_in_another(env_id):
    """TextWorld's native snapshot stays in its process (elsewhere it replays); Search's
    travels."""
    kwargs = {"TextWorld-v0": {"preset": "easy"}}.get(env_id, QUICK[env_id])
    rng = random.Random(3)
    with agentgym.make(env_id, **kwargs) as local, \
            agentgym.EnvPool(env_id, 2, env_kwargs=kwargs) as pool:
        _, info = pool.call(0, "reset", seed=4)
        for _ in range(2):
            info = pool.call(0, "step", random_action(local, info, rng))[-1]
        snapshot = pool.call(0, "snapshot")
        actions = [random_action(local, info, rng) for _ in range(3)]
        first = [pool.call(0, "step", action) for action in actions]
        assert continue_in(pool, 1, snapshot, actions) == first
        assert continue_in(pool, 0, snapshot, actions) == first


def test_a_snapshot_restores_across_ray_actors():
    from agentgym.ray_pool import RayEnvPool

    kwargs = QUICK["WebShop-v0"]
    with RayEnvPool("WebShop-v0", 2, env_kwargs=kwargs, timeout=120) as pool:
        _, info = pool.call(0, "reset", seed=1)
        info = pool.call(0, "step", info["expert_action"])[-1]
        snapshot = pool.call(0, "snapshot")
        actions = [info["expert_action"], "<<garbage>>"]
        first = [pool.call(0, "step", action) for action in actions]
        assert continue_in(pool, 1, snapshot, actions) == first


def test_a_served_env_snapshot_restores_in_another_session():
    from agentgym.remote import RemoteEnv
    from tests.test_remote import start_server

    proc, url = start_server()
    try:
        one, two = RemoteEnv(f"{url}/TextWorld-v0"), RemoteEnv(f"{url}/TextWorld-v0")
        _, info = one.reset(seed=5)
        info = one.step(info["expert_action"])[-1]
        snapshot = one.snapshot()
        assert pickle.loads(pickle.dumps(snapshot)) == snapshot  # an id: it travels
        actions = ["<action>look</action>", info["expert_action"]]
        first = [one.step(action) for action in actions]
        two.restore(snapshot)
        assert two.task_id == one.task_id and two.turn == 1
        assert [two.step(action) for action in actions] == first
        bogus = agentgym.RemoteSnapshot(snapshot.server, "0" * 32, 1)
        with pytest.raises(SnapshotError, match="No snapshot"):
            two.restore(bogus)
        one.close()
        two.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_restore_never_writes_or_deletes_through_a_link_the_agent_made(tmp_path):
    """After the snapshot the agent swaps real folders for links to a host folder; the
    restore puts real folders back and touches nothing on the other side of the links."""
    outside = tmp_path / "host"
    outside.mkdir(mode=0o777)
    (outside / "precious.txt").write_text("keep me")
    env = agentgym.make("SWE-v0", sandbox="bwrap", tasks_per_source=2)
    try:
        env.reset(seed=1)
        workspace = env.unwrapped._workspace
        tests = sorted(p.name for p in (workspace / "tests").iterdir())
        for name in tests + ["f"]:
            (outside / name).write_text("host")
        env.step(ToolCall("bash", {"command": "mkdir d && echo mine > d/f"}).to_text())
        snapshot = env.snapshot()
        env.step(ToolCall("bash", {"command": f"rm -rf d tests && ln -s {outside} d && "
                                              f"ln -s {outside} tests"}).to_text())
        env.restore(snapshot)
        assert (workspace / "d" / "f").read_text() == "mine\n"
        assert not (workspace / "tests").is_symlink()
        assert sorted(p.name for p in (workspace / "tests").iterdir()) == tests
        assert all((outside / name).read_text() == "host" for name in tests + ["f"])
        assert (outside / "precious.txt").read_text() == "keep me"
    finally:
        env.close()
