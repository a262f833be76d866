import os
import re
import subprocess
import sys

import agentgym

AGENTGYM = [sys.executable, "-m", "agentgym.cli"]


def run(*args, stdin=None):
    return subprocess.run([*AGENTGYM, *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


def test_list():
    out = run("list")
    assert out.returncode == 0 and "TextWorld-v0" in out.stdout


def test_rollout_writes_episodes_and_prints_a_summary(tmp_path):
    path = tmp_path / "eps.jsonl"
    out = run("rollout", "TextWorld-v0", "--policy", "expert", "--policy", "random",
              "--tasks", "2", "--group", "2", "--out", str(path), "--env-arg", "max_turns=10")
    assert out.returncode == 0, out.stderr
    assert "success_rate" in out.stdout and "100.0%" in out.stdout
    episodes = agentgym.read_episodes(path)
    assert [e.metadata["policy"] for e in episodes] == ["expert"] * 4 + ["random"] * 4

    listing = run("replay", str(path))
    assert listing.returncode == 0 and "easy/train/0" in listing.stdout
    shown = run("replay", str(path), "--episode", "0")
    assert shown.returncode == 0 and "turn 0" in shown.stdout and "success" in shown.stdout
    missing = run("replay", str(path), "--episode", "99")
    assert missing.returncode == 2 and "episodes 0..7" in missing.stderr


def test_replay_reports_a_corrupt_line(tmp_path):
    path = tmp_path / "eps.jsonl"
    agentgym.rollout("TextWorld-v0", agentgym.ExpertPolicy(), tasks=2, out=path, progress=False)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n{broken\n" + lines[1] + "\n")
    out = run("replay", str(path))
    assert out.returncode == 0
    assert f"skipped {path}:2" in out.stdout.replace("\n", "")
    assert out.stdout.count("easy/train/") == 2


def test_unknown_env_exits_2_with_a_suggestion():
    out = run("rollout", "TextWorld-v9", "--policy", "expert")
    assert out.returncode == 2
    assert "Did you mean `TextWorld-v0`?" in out.stderr


def test_play_in_the_terminal():
    with agentgym.make("TextWorld-v0") as env:
        _, info = env.reset(seed=0)
        commands = []
        while True:
            commands.append(env.protocol.parse(info["expert_action"]).value)
            *_, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                break
    out = run("play", "TextWorld-v0", "--seed", "0", stdin="\n".join(commands) + "\n")
    assert out.returncode == 0, out.stderr
    assert "You won!" in out.stdout


def test_stats_rescores_a_run_under_another_spec(tmp_path):
    path = tmp_path / "eps.jsonl"
    agentgym.rollout("TextWorld-v0", agentgym.ExpertPolicy(), tasks=2, out=path, progress=False)
    spec = ("{type: gated, high: success, threshold: 1.0, "
            "immediate: {type: weighted, weights: {format: 0.5}}}")
    out = run("stats", str(path), "--spec", spec)
    assert out.returncode == 0, out.stderr
    assert "completion_rate" in out.stdout and "turn/progress" in out.stdout
    # easy games take 2 expert turns: 2 * 0.5 format + 1 success = 2.0 per episode
    assert re.search(r"return under spec\s*│\s*2\s*│\s*2\s*│\s*2\s*│\s*2\s", out.stdout)
    bad = run("stats", str(path), "--spec", "{type: weighted, weights: {progres: 1}}")
    assert bad.returncode == 2 and "Did you mean `progress`" in bad.stderr


def test_help_lists_every_command_and_every_flag_shows_its_default():
    from agentgym.cli import build_parser

    parser = build_parser()
    top = run("--help")
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        assert re.search(rf"\n    {re.escape(name)}\s+\S", top.stdout), name  # a line of help
    for name, command in commands.items():
        text = command.format_help()
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                flag = action.option_strings[-1]
                options = text[text.index("\noptions:"):]
                shown = options[options.index(f"\n  {flag}") + 1:]
                assert "(default: " in " ".join(shown.split("\n  -")[0].split()), (name, flag)


def test_rollout_whose_episodes_all_failed_exits_1_with_the_reasons_grouped():
    out = run("rollout", "Search-v0", "--policy", "random", "--tasks", "3")
    assert out.returncode == 1
    assert ("3 episodes failed: PolicyError: RandomPolicy needs info['admissible_actions']; "
            "this env gives none.") in out.stdout
    fine = run("rollout", "Search-v0", "--policy", "expert", "--policy", "random", "--tasks", "2")
    assert fine.returncode == 0 and "2 episodes failed" in fine.stdout  # some succeeded


def test_env_args_are_converted_and_checked_against_the_signature(tmp_path):
    from agentgym.cli import parse_env_args

    assert parse_env_args(["max_turns=10", "preset=easy", "show_admissible=true"],
                          "TextWorld-v0") == {"max_turns": 10, "preset": "easy",
                                              "show_admissible": True}
    out = run("rollout", "TextWorld-v0", "--policy", "expert", "--env-arg", "max_turns=ten")
    assert out.returncode == 2 and "--env-arg max_turns='ten': TextWorld-v0 takes max_turns " \
        "as int | None" in " ".join(out.stderr.split())
    out = run("rollout", "TextWorld-v0", "--policy", "expert", "--env-arg", "maxturns=3")
    assert out.returncode == 2 and "Did you mean `max_turns`?" in out.stderr


def test_missing_files_get_one_line(tmp_path):
    for args, message in [(("train", "nope.yaml"), "nope.yaml: no such config file."),
                          (("stats", "nope.jsonl"), "No episode file 'nope.jsonl'."),
                          (("replay", "nope.jsonl"), "No episode file 'nope.jsonl'."),
                          (("probe", "TextWorld-v0", "--spec", "myspc.yaml"),
                           "No reward spec file 'myspc.yaml'")]:
        out = run(*args)
        assert out.returncode == 2, args
        assert message in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) <= 2, out.stderr


def test_train_overrides_and_config_errors_exit_2(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("env: {id: TextWorld-v0}\nrl: {steps: 2}\n")
    out = run("train", str(config), "rl.steps=two")
    assert out.returncode == 2
    assert "override rl.steps='two': rl.steps: Input should be a valid integer" in \
        " ".join(out.stderr.split())
    reference = run("config-reference")
    assert reference.returncode == 0 and "| `kl_estimator` |" in reference.stdout


def test_play_swe_takes_a_shell_command_or_a_tool_call():
    typed = 'ls\n{"name": "bash", "arguments": {"command": "pwd"}}\n'
    out = run("play", "SWE-v0", "--seed", "0", stdin=typed)
    assert out.returncode == 0, out.stderr
    assert "tests" in out.stdout and "/workspace" in out.stdout and "2 turns" in out.stdout


def test_a_module_path_that_does_not_load_is_named():
    # a module:Class that loads is run by tests/test_contract.py (the README's example env)
    out = run("rollout", "tests.fault_envs:NoSuchEnv", "--policy", "expert")
    assert out.returncode == 2
    assert "Cannot load 'tests.fault_envs:NoSuchEnv'" in out.stderr and "module:Class" in \
        out.stderr
