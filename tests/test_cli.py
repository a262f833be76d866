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
