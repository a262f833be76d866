import json
import os
import subprocess
import sys
import textwrap

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.errors import (
    EpisodeOver,
    InvalidOptionError,
    ResetNeeded,
    TaskNotFoundError,
)
from environments.textworld.games import PRESETS, SPLITS, ensure_game, game_seed
from tests.conftest import play_expert

PYTHON = sys.executable


def test_check_env_passes(easy_env):
    check_env(easy_env, skip_render_check=False)


def test_check_env_passes_under_gymnasium_make():
    env = gymnasium.make("agentgym/TextWorld-v0", preset="easy", render_mode="ansi")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=1)
    assert info["expert_action"].startswith("<action>")
    env.close()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_expert_wins_every_generated_game(preset):
    with agentgym.make("TextWorld-v0", preset=preset) as env:
        for seed in range(3):
            *_, terminated, truncated, info = play_expert(env, seed=seed)
            assert terminated and not truncated
            assert info["success"] and info["outcome_channels"]["success"] == 1.0


def test_random_policy_wins_clearly_fewer():
    env = agentgym.make("TextWorld-v0", preset="easy", max_turns=20)
    expert = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=6, group_size=2,
                              progress=False)
    random = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=6, group_size=2,
                              progress=False)
    env.close()
    expert_rate = sum(e.outcome.success for e in expert) / len(expert)
    random_rate = sum(e.outcome.success for e in random) / len(random)
    assert expert_rate == 1.0
    assert random_rate <= 0.6, random_rate


def test_expert_replays_under_the_tool_protocol():
    with agentgym.make("TextWorld-v0", preset="easy", protocol="tools") as env:
        obs, info = env.reset(seed=2)
        assert info["tools"][0]["function"]["name"] == "act"
        assert info["expert_action"].startswith("<tool_call>")
        *_, info = play_expert(env, seed=2)
        assert info["success"]


TRANSCRIPT_SCRIPT = textwrap.dedent("""
    import json, agentgym
    env = agentgym.make("TextWorld-v0", preset="medium", max_turns=15)
    eps = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=2, group_size=2, seed=5,
                           progress=False)
    print(json.dumps([[e.task_id, [(t.observation, t.action, t.state_key) for t in e.turns],
                       e.final_observation] for e in eps]))
""")


def test_same_seed_same_game_same_transcript_in_fresh_processes():
    runs = [subprocess.run([PYTHON, "-c", TRANSCRIPT_SCRIPT], capture_output=True, text=True,
                           check=True, env=os.environ).stdout for _ in range(2)]
    assert runs[0] == runs[1]
    transcripts = json.loads(runs[0])
    assert len({t[0] for t in transcripts}) == 2  # two tasks
    assert transcripts[0][1] != transcripts[1][1]  # group members sample differently


def test_same_seed_same_game_and_task_ids():
    with agentgym.make("TextWorld-v0", preset="easy") as env:
        first = env.reset(seed=3)
        again = env.reset(seed=3)
        other = env.reset(seed=4)
        replay = env.reset(options={"task_id": first[1]["task_id"]})
    assert first == again == replay
    assert other[1]["task_id"] != first[1]["task_id"]


def test_train_and_test_splits_never_share_a_game():
    train = {game_seed("train", i) for i in range(5000)}
    test = {game_seed("test", i) for i in range(5000)}
    assert not train & test
    with agentgym.make("TextWorld-v0", preset="easy") as env:
        _, a = env.reset(seed=0, options={"split": "train"})
        _, b = env.reset(seed=0, options={"split": "test"})
    assert a["task_id"] == "easy/train/0" and b["task_id"] == "easy/test/0"
    assert a["state_key"] != b["state_key"]
    assert SPLITS == ("train", "test")


def test_state_key_follows_world_state_not_text(easy_env):
    for seed in range(10):
        obs, info = easy_env.reset(seed=seed)
        toggles = [c for c in info["admissible_actions"] if c.startswith(("open ", "close "))]
        if toggles:
            break
    else:
        pytest.fail("no game with an open/close command among 10 seeds")
    start = info["state_key"]
    command = toggles[0]
    undo = ("close " if command.startswith("open ") else "open ") + command.split(" ", 1)[1]
    _, _, _, _, info = easy_env.step(f"<action>{command}</action>")
    assert info["state_key"] != start
    _, _, _, _, info = easy_env.step(f"<action>{undo}</action>")
    assert info["state_key"] == start  # a different path back to the same state
    _, _, _, _, info = easy_env.step("<action>look</action>")
    assert info["state_key"] == start  # different text, same state


def test_cache_builds_each_game_once(game_cache):
    path = ensure_game(PRESETS["easy"], 0)
    stamp = path.stat().st_mtime_ns
    assert ensure_game(PRESETS["easy"], 0) == path
    assert path.stat().st_mtime_ns == stamp


def test_two_processes_filling_the_cache_at_once(tmp_path):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from environments.textworld.games import PRESETS, ensure_game
        print(ensure_game(PRESETS["easy"], 4242, Path({str(tmp_path)!r})))
    """)
    procs = [subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    leftovers = [p.name for p in next(tmp_path.iterdir()).iterdir() if p.name.startswith(".build")]
    assert leftovers == []
    with agentgym.make("TextWorld-v0", games=[outs[0]]) as env:
        *_, info = play_expert(env)
        assert info["success"]


BAD_ACTIONS = [
    "take the key please",                       # no tags
    "",                                          # empty
    "<action>" + "x" * 1_048_576 + "</action>",  # 1 MB
    "<action>go\x00 north\x1b</action>",          # control characters (cleaned, still valid)
    b"<action>\xff\xfe</action>",                 # non-UTF-8 bytes
    "<action>",                                  # unclosed
]


def test_bad_actions_get_an_answer_and_lose_nothing(easy_env):
    obs, info = easy_env.reset(seed=0)
    for action in BAD_ACTIONS:
        key = info["state_key"]
        obs, reward, terminated, truncated, info = easy_env.step(action)
        assert isinstance(obs, str) and obs
        assert not terminated and not truncated
        assert reward == 0.0
        if not info["action_valid"]:
            assert obs.startswith("Invalid action:") and "<action>look</action>" in obs
            assert info["reward_channels"] == {"progress": 0.0, "format": 0.0}
            assert info["state_key"] == key
    valid = [a for a in BAD_ACTIONS if easy_env.protocol.parse(a).ok]
    assert len(valid) == 2  # control chars stripped; bytes decoded to U+FFFD
    # the episode goes on: the expert still wins from here
    while True:
        obs, reward, terminated, truncated, info = easy_env.step(info["expert_action"])
        if terminated or truncated:
            break
    assert info["success"]


def test_consecutive_invalid_actions_truncate_when_asked():
    with agentgym.make("TextWorld-v0", preset="easy", max_invalid_actions=3) as env:
        env.reset(seed=0)
        results = [env.step("nonsense") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert results[-1][4]["success"] is False


def test_lifecycle_errors(easy_env):
    with pytest.raises(ResetNeeded, match="before reset"):
        easy_env.step("<action>look</action>")
    play_expert(easy_env)
    with pytest.raises(EpisodeOver, match="call reset"):
        easy_env.step("<action>look</action>")
    easy_env.close()
    easy_env.close()  # idempotent
    with pytest.raises(agentgym.EnvClosed):
        easy_env.reset()


def test_bad_options_are_named(easy_env):
    with pytest.raises(InvalidOptionError, match="'splt'.*Allowed: 'split', 'task_id'.*split"):
        easy_env.reset(options={"splt": "test"})
    with pytest.raises(InvalidOptionError, match="Unknown split 'dev'"):
        easy_env.reset(options={"split": "dev"})
    with pytest.raises(TaskNotFoundError, match="preset/split/index"):
        easy_env.reset(options={"task_id": "nope"})
    with pytest.raises(InvalidOptionError, match="Unknown TextWorld preset 'esy'.*easy"):
        agentgym.make("TextWorld-v0", preset="esy")
    with pytest.raises(InvalidOptionError, match="'max_turn'.*Did you mean `max_turns`"):
        agentgym.make("TextWorld-v0", max_turn=3)
    with pytest.raises(InvalidOptionError, match="Unknown protocol 'json'"):
        agentgym.make("TextWorld-v0", protocol="json")


def test_render_ansi_shows_the_last_action_and_observation():
    with agentgym.make("TextWorld-v0", preset="easy", render_mode="ansi") as env:
        _, info = env.reset(seed=0)
        env.step(info["expert_action"])
        text = env.render()
    assert text.startswith("> take ")


def test_admissible_commands_can_be_shown():
    with agentgym.make("TextWorld-v0", preset="easy", show_admissible=True) as env:
        obs, info = env.reset(seed=0)
        assert obs.endswith("Admissible commands: " + ", ".join(info["admissible_actions"]))


SESSION_COMMANDS = ["save", "SAVE", "look. save", "look then script", "restore", "restart",
                    "quit", "q", "undo", "transcript", "look,then restart",
                    "transcriptxyz"]  # the parser reads only a word's first 9 letters


def test_session_commands_are_refused_and_write_nothing(tmp_path, monkeypatch):
    # unrefused, 'save' and 'script' write game.qzl and a transcript into the working
    # directory, 'restore' loads another episode's save and 'restart' + 'yes' starts over
    monkeypatch.chdir(tmp_path)
    with agentgym.make("TextWorld-v0", preset="easy") as env:
        obs, info = env.reset(seed=0)
        obs, _, _, _, info = env.step(info["expert_action"])
        moved = info["state_key"]
        for command in SESSION_COMMANDS:
            obs, reward, terminated, truncated, info = env.step(f"<action>{command}</action>")
            assert not info["action_valid"], command
            assert obs.startswith("Invalid action:") and "acts on the play session" in obs
            assert (reward, terminated, truncated) == (0.0, False, False)
            obs, *_, info = env.step("<action>yes</action>")  # would confirm a restart
            assert info["state_key"] == moved, command
        assert list(tmp_path.iterdir()) == []
        for command in ["look then inventory", "look. inventory", "take all and look"]:
            assert env.step(f"<action>{command}</action>")[4]["action_valid"], command
