import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import agentgym
from agentgym.viewer import EpisodeScreen, GroupScreen, HelpScreen, ReplayApp
from rewards import Outcome
from trainers import SALT, Batch

SNAPSHOTS = Path(__file__).parent / "snapshots"


class ExpertThenLook:
    """The expert for one move, then 'look' forever: a group with a shared first step."""

    def __call__(self, conversation):
        if conversation.turn == 0:
            return conversation.info["expert_action"]
        return "<action>look</action>" if conversation.turn % 3 else "oops, no tags"


@pytest.fixture(scope="module")
def episode_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewer") / "episodes.jsonl"
    with agentgym.make("TextWorld-v0", preset="easy", max_turns=6) as env:
        group = [agentgym.run_episode(env, p, seed=0, group_id="g0")
                 for p in (agentgym.ExpertPolicy(), ExpertThenLook(), ExpertThenLook())]
        others = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=3, seed=1, progress=False)
    for episode, advantages in zip(group, SALT()(Batch.from_episodes(group,
                                                                     rewards=Outcome()))):
        for turn, value in zip(episode.turns, advantages):
            turn.advantage = float(value)
    lines = [json.dumps(e.to_dict()) for e in group + others]
    lines.insert(2, '{"schema_version": 1, "env_id": "torn')  # a corrupt line in the middle
    path.write_text("\n".join(lines) + "\n")
    return path


def drive(path, steps, size=(160, 48)):
    async def run():
        app = ReplayApp(str(path))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(app, pilot)
    asyncio.run(run())


def test_list_reports_the_corrupt_line_and_keeps_the_rest(episode_file):
    async def steps(app, pilot):
        table = app.query_one("DataTable")
        assert table.row_count == 7  # 6 episodes and the corrupt line, reported in place
        assert "1 corrupt line(s) skipped" in app.sub_title
        assert str(table.get_row("2")[2]) == "corrupt line"
        assert app.index.summary(2).line == 3
        await pilot.press("down", "down", "enter")  # opening it explains, does not crash
        await pilot.pause()
        assert not isinstance(app.screen, EpisodeScreen)
        await pilot.press("down", "enter")          # the next row opens fine
        await pilot.pause()
        assert isinstance(app.screen, EpisodeScreen) and app.screen.position == 3
    drive(episode_file, steps)


def test_open_an_episode_and_move_around(episode_file):
    async def steps(app, pilot):
        await pilot.press("down", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EpisodeScreen) and screen.position == 1
        assert screen.current_turn == 0
        await pilot.press("j", "j")
        assert screen.current_turn == 2
        await pilot.press("k")
        assert screen.current_turn == 1
        await pilot.press("f")  # the first invalid or negatively credited turn
        first_bad = next(t.index for t in screen.episode.turns
                         if not t.action_valid or (t.advantage or 0) < 0)
        assert screen.current_turn == first_bad
        await pilot.press("n")  # the next episode skips the corrupt line
        assert screen.position == 3 and screen.current_turn == 0
        await pilot.press("p")
        assert screen.position == 1
        await pilot.press("t")
        assert screen.show_thoughts
        await pilot.press("escape")
        assert not isinstance(app.screen, EpisodeScreen)
    drive(episode_file, steps)


def test_filter_and_sort(episode_file):
    async def steps(app, pilot):
        await pilot.press("slash", *"success:yes", "enter")
        table = app.query_one("DataTable")
        kept = [app.index.summary(int(k.value)) for k in table.rows]
        assert kept and all(s.success for s in kept)
        assert "filter: success:yes" in app.sub_title
        await pilot.press("slash", *"group:g0", "enter")
        assert len(app.query_one("DataTable").rows) == 3
        await pilot.press("slash", *"policy:random", "enter")
        assert len(app.query_one("DataTable").rows) == 3  # the rollout's three episodes
        await pilot.press("slash", "enter")   # an empty filter shows everything again
        await pilot.press("s")                # sort by return
        returns = [app.index.summary(int(k.value)).total_reward
                   for k in app.query_one("DataTable").rows]
        assert returns == sorted(returns, reverse=True)
        assert "sort: return" in app.sub_title
    drive(episode_file, steps)


def test_group_view_marks_the_shared_prefix(episode_file):
    async def steps(app, pilot):
        await pilot.press("g")
        screen = app.screen
        assert isinstance(screen, GroupScreen) and len(screen.episodes) == 3
        assert screen.shared_prefix() == 1  # the expert's first move, taken by all three
        assert screen.query_one("#group-summary")
        summary = str(screen.summary())
        assert "shared prefix: 1 turns" in summary and "1 successful" in summary
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
    drive(episode_file, steps)


def replay(*args):
    return subprocess.run([sys.executable, "-m", "agentgym.cli", "replay", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100"})


@pytest.mark.parametrize("name, args", [("textworld_episode", ["--episode", "0"]),
                                        ("textworld_turn", ["--episode", "1", "--turn", "2"])])
def test_print_matches_the_snapshot(episode_file, name, args):
    out = replay(str(episode_file), "--print", *args)
    assert out.returncode == 0, out.stderr
    snapshot = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(out.stdout)
    assert out.stdout == snapshot.read_text()


def test_print_renders_search_documents(tmp_path):
    path = tmp_path / "search.jsonl"
    agentgym.rollout("Search-v0", agentgym.ExpertPolicy(), tasks=1, seed=1, out=path,
                     progress=False, env_kwargs={"hops": 2})
    out = replay(str(path), "--print", "--episode", "0")
    assert out.returncode == 0
    assert "Doc 1(Title:" in out.stdout and "<information>" not in out.stdout


def test_follow_prints_episodes_as_they_arrive(tmp_path, episode_file):
    path = tmp_path / "live.jsonl"
    lines = [line for line in episode_file.read_text().splitlines() if "torn" not in line]
    path.write_text(lines[0] + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "agentgym.cli", "replay", str(path),
                             "--print", "--follow"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "160"})
    try:
        time.sleep(3)
        with open(path, "a") as handle:
            handle.write(lines[3] + "\n")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.time() + 30
        while time.time() < deadline and "".join(lines).count("Episodes") < 2:
            time.sleep(0.2)
        assert "".join(lines).count("Episodes") == 2  # the first table, then the new episode
    finally:
        proc.kill()
        proc.wait()


def test_tool_calls_render_as_commands_and_diffs():
    from rich.console import Console

    from agentgym.records import Episode, Turn
    from agentgym.replay import render_episode

    bash = Turn(index=0, observation="repo ready", action="<tool_call>...</tool_call>",
                parsed_action='{"name": "bash", "arguments": {"command": "pytest -q"}}')
    edit = Turn(index=1, observation="1 failed\nexit code: 1", action="...",
                parsed_action='{"name": "str_replace", "arguments": {"path": "calc.py", '
                              '"old": "return a - b", "new": "return a + b"}}')
    episode = Episode(env_id="SWE-v0", task_id="t", turns=[bash, edit],
                      final_observation="edited")
    console = Console(width=100, record=True)
    console.print(render_episode(episode))
    text = console.export_text()
    assert "$ pytest -q   (exit 1)" in text
    assert "-return a - b" in text and "+return a + b" in text and "+++ b/calc.py" in text


def shouted(text, reference):  # a custom family's renderer, registered below
    from rich.text import Text

    return Text(text.upper() + f" [{reference.get('answer', '?')}]")


def test_renderers_come_from_each_familys_env_spec(monkeypatch):
    from rich.console import Console

    from agentgym import registry
    from agentgym.records import Episode, Turn
    from agentgym.registry import EnvSpec
    from agentgym.replay import observation_renderable

    def register(spec: EnvSpec) -> None:  # for this test only
        monkeypatch.setitem(registry._REGISTRY, spec.id, spec)

    def shown(env_id: str, text: str) -> str:
        episode = Episode(env_id=env_id, task_id="t", metadata={"reference": {"answer": "7"}},
                          turns=[Turn(index=0, observation=text, action="a")])
        console = Console(width=200, record=True)
        console.print(observation_renderable(episode, text))
        return console.export_text().strip()

    register(EnvSpec("Shout-v0", "tests.fault_envs:FaultyTextWorld",
                     renderer=f"{__name__}:shouted"))
    assert shown("Shout-v0", "quiet") == "QUIET [7]"
    assert shown("remote:http://127.0.0.1:1/Shout-v0", "quiet") == "QUIET [7]"
    page = "Back to Search [SEP] size [SEP] small (selected) [SEP] large"
    assert shown("WebShop-v0", page).splitlines() == ["Back to Search", "size",
                                                       "small (selected)", "large"]
    assert shown("Unknown-v9", page) == page  # no renderer: the text as it is
    register(EnvSpec("Broken-v0", "tests.fault_envs:FaultyTextWorld", renderer="nowhere:render"))
    assert shown("Broken-v0", "quiet") == "quiet"  # a renderer that cannot load: text
    source = Path(agentgym.replay.__file__).read_text()
    assert "Search" not in source.split('"""', 2)[2] and "WebShop" not in source.split('"""', 2)[2]


def test_a_tree_group_shows_its_branch_points(tmp_path):
    from agentgym.rollout import tree_rollout
    from agentgym.tree import Tree

    with agentgym.make("TextWorld-v0", preset="easy", max_turns=5) as env:
        leaves, _ = tree_rollout(env, agentgym.RandomPolicy(0), Tree(leaves=4, at=(1, 2)))
    path = tmp_path / "tree.jsonl"
    agentgym.write_episodes(path, leaves)

    async def steps(app, pilot):
        await pilot.press("g")
        screen = app.screen
        points = screen.branch_points()
        assert len(points) == 3 and sorted(t for _, t in points.values()) == [1, 2, 2]
        assert "a tree with 3 branches" in str(screen.summary())
        columns = [str(c) for c in screen.columns()]
        for child, (parent, turn) in points.items():
            assert f"{turn:>2} ├ branches from #{parent}" in columns[child]
    drive(path, steps)
