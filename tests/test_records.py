import json
import warnings

import pytest

from agentgym.errors import RecordError
from agentgym.records import SCHEMA_VERSION, Episode, Outcome, Turn
from agentgym.store import CorruptLineWarning, EpisodeWriter, iter_episodes, read_episodes


def make_episode(n_turns=3, task="easy/train/0"):
    turns = [
        Turn(index=i, observation=f"obs {i} — ünïcode", action=f"<action>go {i}</action>",
             parsed_action=f"go {i}", reward=0.5 * i, reward_channels={"progress": 0.5 * i,
             "format": 1.0}, state_key=f"s{i}", next_state_key=f"s{i + 1}",
             info={"admissible_actions": ["go 1", "look"]}, policy_seconds=0.01)
        for i in range(n_turns)
    ]
    return Episode(env_id="TextWorld-v0", task_id=task, seed=7, group_id="g0",
                   instruction="do it", system_prompt="sys", turns=turns,
                   final_observation="done", outcome=Outcome(True, 1.5, {"success": 1.0}),
                   terminated=True, metadata={"policy": "expert"})


def test_round_trip_through_jsonl_is_exact(tmp_path):
    path = tmp_path / "eps.jsonl"
    episodes = [make_episode(n) for n in range(4)]
    with EpisodeWriter(path) as writer:
        writer.write_all(episodes)
    loaded = read_episodes(path)
    assert loaded == episodes
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in episodes]
    assert loaded[0].schema_version == SCHEMA_VERSION


def test_corrupt_middle_line_is_skipped_and_named(tmp_path):
    path = tmp_path / "eps.jsonl"
    lines = [json.dumps(make_episode(task=f"t{i}").to_dict()) for i in range(3)]
    lines[1] = lines[1][: len(lines[1]) // 2]  # a torn write
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(CorruptLineWarning, match=r"eps\.jsonl:2"):
        loaded = read_episodes(path)
    assert [e.task_id for e in loaded] == ["t0", "t2"]


def test_writer_after_a_killed_run_loses_only_the_torn_episode(tmp_path):
    path = tmp_path / "eps.jsonl"
    good = json.dumps(make_episode(task="before").to_dict())
    path.write_text(good + "\n" + good[:100])  # killed mid-line, no newline
    with EpisodeWriter(path) as writer:
        writer.write(make_episode(task="after"))
    corrupt = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptLineWarning)
        loaded = list(iter_episodes(path, corrupt))
    assert [e.task_id for e in loaded] == ["before", "after"]
    assert [c.line for c in corrupt] == [2]


def test_newer_schema_and_unknown_fields_are_named():
    data = make_episode().to_dict()
    with pytest.raises(RecordError, match="schema_version 99"):
        Episode.from_dict({**data, "schema_version": 99})
    with pytest.raises(RecordError, match="unknown field"):
        Episode.from_dict({**data, "colour": "red"})
    with pytest.raises(RecordError, match="Expected an episode object"):
        Episode.from_dict([1, 2])


def test_crafted_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "crafted.jsonl"
    good = json.dumps(make_episode(task="good").to_dict())
    turn = {**make_episode().to_dict()["turns"][0], "reward": "lots"} \
        if make_episode().turns else {"index": "x"}
    crafted = [
        '{"schema_version": "1"}',
        '{"schema_version": 1, "env_id": "x", "task_id": "y", "seed": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        json.dumps({**make_episode().to_dict(), "turns": [turn]}),
        json.dumps({**make_episode().to_dict(), "turns": "many"}),
        json.dumps({**make_episode().to_dict(), "outcome": {"success": "yes"}}),
        json.dumps({**make_episode().to_dict(), "metadata": [1, 2]}),
        "null",
    ]
    path.write_text("\n".join([good, *crafted, good]) + "\n")
    corrupt = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptLineWarning)
        loaded = list(iter_episodes(path, corrupt))
    assert [e.task_id for e in loaded] == ["good", "good"]
    assert [c.line for c in corrupt] == list(range(2, 2 + len(crafted)))
    from agentgym.episode_index import EpisodeIndex

    index = EpisodeIndex(path)
    summaries = index.summaries()
    assert [bool(s.error) for s in summaries] == [False, *[True] * len(crafted), False]
