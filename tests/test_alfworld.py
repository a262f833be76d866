"""ALFWorld-v0 on alfworld's real engine, with games generated offline in the test's cache."""

from __future__ import annotations

import json
import shutil

import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.errors import InvalidOptionError, TaskNotFoundError
from environments.alfworld.engine import AlfredEngine, translate_command
from environments.alfworld.expert import goal_stages
from environments.alfworld.tasks import TASK_TYPES
from tests.conftest import play_expert


def make(**kwargs):
    return agentgym.make("ALFWorld-v0", source="generated", **kwargs)


def first_task(task_type: str, split: str = "train", **kwargs) -> tuple[object, str]:
    env = make(task_types=[task_type], **kwargs)
    return env, env.task_ids(split, 1)[0]


def play(env, task_id: str, commands: list[str]):
    obs, info = env.reset(options={"task_id": task_id})
    for command in commands:
        obs, reward, terminated, truncated, info = env.step(f"<action>{command}</action>")
        if terminated or truncated:
            break
    return obs, info


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_stored_walkthrough_wins_each_task_type(task_type):
    env, task_id = first_task(task_type)
    with env:
        env.reset(options={"task_id": task_id})
        game = env.task.source.game()
        assert game["solvable"] and game["walkthrough"]
        _, info = play(env, task_id, game["walkthrough"])
        assert info["success"] and info["outcome_channels"] == {"success": 1.0}
        assert task_type in task_id


def test_check_env_passes():
    with make(rooms=["bathroom"]) as env:
        check_env(env, skip_render_check=False)


def test_text_has_the_shape_of_real_alfworld():
    env, task_id = first_task("pick_clean_then_place_in_recep")
    with env:
        obs, info = env.reset(options={"task_id": task_id})
        assert obs.startswith("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a "
                              "room. Looking quickly around you, you see a ")
        assert "\n\nYour task is to: " in obs and info["instruction"] in obs
        assert info["instruction"].startswith(("put a clean", "clean some"))
        target = next(a for a in info["admissible_actions"] if a.startswith("go to "))
        place = target.removeprefix("go to ")
        obs, *_ = env.step(f"<action>{target}</action>")
        assert obs.startswith(f"You arrive at {place}. ")
        assert "you see" in obs or "is closed" in obs
        obs, _, _, _, info = env.step("<action>jump over the moon</action>")
        assert obs == "Nothing happens." and info["reward_channels"]["invalid"] == 1.0
        obs, *_ = env.step("<action>inventory</action>")
        assert obs == "You are not carrying anything."


def test_expert_progress_and_success_channels():
    env, task_id = first_task("pick_heat_then_place_in_recep")
    with env:
        *_, info = play_expert(env, options={"task_id": task_id})
        assert info["success"]
        goal = env.task.source.goal
        assert goal.task_type == "pick_heat_then_place_in_recep"
        assert info["reference"]["obj"] == goal.obj


def test_progress_sums_to_the_goal_conditions():
    env, task_id = first_task("pick_two_obj_and_place")
    with env:
        obs, info = env.reset(options={"task_id": task_id})
        total, done = 0.0, False
        while not done:
            obs, reward, done, truncated, info = env.step(info["expert_action"])
            total += info["reward_channels"]["progress"]
        assert total == goal_stages(env.task.source.goal) == 3
        assert reward == 1.0


def test_state_key_depends_on_the_world_not_the_path():
    env, task_id = first_task("pick_and_place_simple")
    with env:
        _, info = env.reset(options={"task_id": task_id})
        start = info["state_key"]
        places = [a for a in info["admissible_actions"] if a.startswith("go to ")]
        _, direct = play(env, task_id, [places[1]])
        _, detour = play(env, task_id, [places[0], "inventory", places[1]])
        assert direct["state_key"] == detour["state_key"] != start


def test_transcript_equals_the_stock_engine():
    """The caches change speed, not text: same commands, same observations and commands."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    env, task_id = first_task("look_at_obj_in_light")
    with env:
        _, info = env.reset(options={"task_id": task_id})
        game = env.task.source.game()
        stock = AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True)))
        stock.load(game)
        state = stock.reset()
        assert state["feedback"] == env.reset(options={"task_id": task_id})[0]
        for command in ["look", "inventory", "examine desk 1", *game["walkthrough"]]:
            state, *_ = stock.step(command)
            obs, _, _, _, info = env.step(f"<action>{command}</action>")
            assert obs == state["feedback"]
            assert info["admissible_actions"] == state["admissible_commands"]


def test_legacy_dialect_walkthrough_wins():
    env, task_id = first_task("pick_cool_then_place_in_recep", dialect="legacy")
    with env:
        env.reset(options={"task_id": task_id})
        walkthrough = env.task.source.game()["walkthrough"]
        assert any(c.startswith("move ") for c in walkthrough)
        legacy = [translate_command(c, "legacy") for c in walkthrough]
        assert any(" in/on " in c for c in legacy)
        obs, info = play(env, task_id, legacy[:-1])
        assert any(" in/on " in a for a in info["admissible_actions"])
        assert not any(a.startswith("move ") for a in info["admissible_actions"])
        moved, *_ = env.step(f"<action>{walkthrough[-1]}</action>")  # the 0.4 spelling
        assert moved == "Nothing happens."
        obs, _, terminated, _, info = env.step(f"<action>{legacy[-1]}</action>")
        assert terminated and info["success"] and obs.startswith("You put the ")
        assert " in/on the " in obs
        _, info = play(env, task_id, legacy[:1])
        assert info["expert_action"] == f"<action>{legacy[1]}</action>"


def test_legacy_arrival_names_the_location():
    env, task_id = first_task("pick_and_place_simple", dialect="legacy")
    with env:
        _, info = env.reset(options={"task_id": task_id})
        go = next(a for a in info["admissible_actions"] if a.startswith("go to "))
        obs, *_ = env.step(f"<action>{go}</action>")
        assert obs.startswith("You arrive at loc ")


def test_generation_is_seeded_and_splits_never_share_a_floor_plan(tmp_path):
    env = make(cache_dir=tmp_path / "a")
    again = make(cache_dir=tmp_path / "b")
    train_ids, test_ids = env.task_ids("train", 40), env.task_ids("test", 40)
    assert train_ids == again.task_ids("train", 40)
    plan = lambda task_id: int(task_id.split("FloorPlan")[1].split("/")[0])  # noqa: E731
    assert {plan(t) for t in train_ids}.isdisjoint({plan(t) for t in test_ids})
    assert all(plan(t) % 100 <= 6 for t in test_ids)
    first = [e.reset(options={"task_id": train_ids[0]})[0] for e in (env, again)]
    assert first[0] == first[1]
    paths = [e.task.source.folder / "game.tw-pddl" for e in (env, again)]
    assert paths[0].read_text() == paths[1].read_text()
    env.close()
    again.close()


def test_official_folder_layout_loads(tmp_path, monkeypatch):
    env, task_id = first_task("pick_and_place_simple")
    with env:
        env.reset(options={"task_id": task_id})
        source = env.task.source.folder
    root = tmp_path / "data" / "json_2.1.1"
    for split, folder in (("valid_unseen", "pick_and_place_simple-Mug-None-Desk-308"),
                          ("valid_unseen", "pick_and_place_with_movable_recep-Pen-Mug-Desk-1"),
                          ("train", "pick_and_place_simple-Book-None-Bed-310")):
        shutil.copytree(source, root / split / folder / "trial_T20190908_123456_000001")
    with make_official(tmp_path / "data", split="valid_unseen") as official:
        ids = official.task_ids()
        assert ids == ["valid_unseen/pick_and_place_simple-Mug-None-Desk-308/"
                       "trial_T20190908_123456_000001"]  # the movable-receptacle task is skipped
        *_, info = play_expert(official, options={"task_id": ids[0]})
        assert info["success"]
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "data"))
    with agentgym.make("ALFWorld-v0", split="train") as auto:
        _, info = auto.reset(seed=0)
        assert info["task_id"].startswith("train/pick_and_place_simple-Book-None-Bed-310/")


def make_official(data_dir, **kwargs):
    return agentgym.make("ALFWorld-v0", source="official", data_dir=data_dir, **kwargs)


def test_bad_input_names_what_is_allowed(tmp_path):
    with pytest.raises(InvalidOptionError, match="pick_heat_then_place_in_recep"):
        make(task_types=["pick_heat_then_place"])
    with pytest.raises(InvalidOptionError, match="Floor plan 999 does not exist.*401-430"):
        make(floor_plans=[999])
    with pytest.raises(InvalidOptionError, match="test plans are 1-6"):
        make(floor_plans=[3], split="train")
    with pytest.raises(InvalidOptionError, match="Rooms: kitchen, livingroom, bedroom"):
        make(rooms=["garage"])
    with pytest.raises(InvalidOptionError, match="Dialects: auto, 0.4, legacy"):
        make(dialect="react")
    with pytest.raises(TaskNotFoundError, match="json_2.1.1"):
        make_official(tmp_path / "nowhere")
    with pytest.raises(InvalidOptionError, match="valid_seen, valid_unseen"):
        (tmp_path / "data" / "json_2.1.1" / "train").mkdir(parents=True)
        make_official(tmp_path / "data", split="test")
    with pytest.raises(InvalidOptionError, match="look_at is in living rooms"):
        make(task_types=["look_at_obj_in_light"], rooms=["kitchen"]).task_ids()
    with make(rooms=["bathroom"]) as env:
        with pytest.raises(TaskNotFoundError, match="ids look like 'train/"):
            env.reset(options={"task_id": "train/3"})
        env.reset(seed=0)
        obs, _, terminated, truncated, info = env.step("<action>unclosed")
        assert "action" in obs and not (terminated or truncated)
        assert info["reward_channels"]["format"] == 0.0


def test_engine_speaks_the_dialect_it_was_given():
    env, task_id = first_task("pick_and_place_simple")
    with env:
        env.reset(options={"task_id": task_id})
        game = env.task.source.game()
    legacy = AlfredEngine("legacy")
    legacy.load(game)
    legacy.reset()
    assert json.dumps(legacy.game).count("in/on") >= 2


def test_already_won_and_unsolvable_games_are_rejected():
    import re

    from alfworld.gen import goal_library

    from environments.alfworld.expert import World
    from environments.alfworld.games import prove
    from environments.alfworld.tasks import Goal

    env, task_id = first_task("pick_and_place_simple")
    with env:
        env.reset(options={"task_id": task_id})
        game, goal = env.task.source.game(), env.task.source.goal
        world = World.from_facts(env.unwrapped._state["_facts"])
    assert prove(game, goal) == game["walkthrough"]
    # a goal that already holds at reset: an object sitting where it is asked to go
    obj, recep = sorted(world.inside.items())[0]
    otype, rtype = world.otype[obj].removesuffix("type"), world.rtype[recep].removesuffix("type")
    won_goal = goal_library.gdict["pick_and_place_simple"]["pddl"].format(
        obj=otype, recep=rtype, toggle="").replace("#", "-")
    problem = game["pddl_problem"].split("(:goal")[0] + won_goal.strip()
    assert prove(dict(game, pddl_problem=problem), Goal("pick_and_place_simple", otype, rtype)) \
        is None
    # when the destination cannot hold the target, the expert never wins
    pair = rf"\(canContain {goal.recep}Type {goal.obj}Type\)"
    unsolvable = re.sub(pair, "", game["pddl_problem"])
    assert unsolvable != game["pddl_problem"]
    assert prove(dict(game, pddl_problem=unsolvable), goal) is None


def test_forgetting_interned_logic_changes_nothing(monkeypatch):
    """TextWorld's interned objects are dropped past a limit: games play as before."""
    from mementos import core

    from environments.alfworld import engine

    env, _ = first_task("pick_heat_then_place_in_recep")
    with env:
        ids = env.task_ids("train", 3)
        kept = [play_expert(env, options={"task_id": t}) for t in ids]
        monkeypatch.setattr(engine, "INTERNED_LIMIT", 0)  # forget at every game load
        assert len(core._memento_cache) > 0
        forgot = [play_expert(env, options={"task_id": t}) for t in ids]
        assert len(core._memento_cache) < 5_000
    for before, after in zip(kept, forgot, strict=True):
        assert after[0] == before[0] and after[4]["success"] and before[4]["success"]
        assert after[4]["state_key"] == before[4]["state_key"]


def legacy_game_file(game: dict) -> dict:
    """A generated game written the way the official json_2.1.1 files are: the legacy
    grammar, and no `help` action in the grammar or the PDDL domain."""
    from environments.alfworld.engine import in_dialect

    grammar = in_dialect(game["grammar"], "legacy")
    start = grammar.index("action help {")
    end = grammar.index('""";\n}', start) + len('""";\n}')
    domain = game["pddl_domain"]
    cut = domain.index("(:action help")
    return dict(game, grammar=grammar[:start] + grammar[end:],
                pddl_domain=domain[:cut] + domain[domain.index("\n)\n", cut) + 3:])


def test_auto_dialect_plays_official_legacy_files_as_the_stock_engine(tmp_path):
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    env, task_id = first_task("pick_and_place_simple")
    with env:
        _, info = env.reset(options={"task_id": task_id})
        assert info["dialect"] == "0.4"  # generated games speak alfworld 0.4
        source = env.task.source.folder
        game = legacy_game_file(env.task.source.game())
    trial = tmp_path / "data" / "json_2.1.1" / "valid_seen" / \
        "pick_and_place_simple-Mug-None-Desk-308" / "trial_T20190908_123456_000001"
    shutil.copytree(source, trial)
    (trial / "game.tw-pddl").write_text(json.dumps(game))
    stock = AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True)))
    stock.load(game)
    commands = [translate_command(c, "legacy") for c in game["walkthrough"]]
    with make_official(tmp_path / "data", split="valid_seen") as official:
        obs, info = official.reset(seed=0)
        state = stock.reset()
        assert info["dialect"] == "legacy" and obs == state["feedback"]
        for command in commands:
            state, *_ = stock.step(command)
            obs, _, terminated, _, info = official.step(f"<action>{command}</action>")
            assert obs == state["feedback"] and info["admissible_actions"] == \
                state["admissible_commands"], command
        assert terminated and info["success"]
        official.reset(seed=0)
        obs, _, _, _, info = official.step("<action>help</action>")  # the stock engine raises
        assert info["action_valid"] and obs == "Nothing happens."
    # the named dialect still rewrites: "0.4" answers a go-to differently from the file
    with make_official(tmp_path / "data", split="valid_seen", dialect="0.4") as rewritten:
        _, info = rewritten.reset(seed=0)
        go = next(a for a in info["admissible_actions"] if a.startswith("go to "))
        obs, *_ = rewritten.step(f"<action>{go}</action>")
        assert info["dialect"] == "0.4" and not obs.startswith("You arrive at loc ")
