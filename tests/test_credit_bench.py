"""bench/credit_accuracy.py --resume: a shard stopped half-way keeps what it finished."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "credit_accuracy.py"
SMALL = ["--envs", "textworld-medium", "--tasks", "1", "--group", "2", "--truth-k", "2"]


def credit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *SMALL, *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_resume_keeps_the_finished_epsilon_and_measures_only_the_rest(tmp_path):
    out = tmp_path / "shard.json"
    assert credit("--epsilons", "0.5", "--out", str(out)).returncode == 0
    first = json.loads(out.read_text())
    for row in first:  # rows written before rows named their seed were all run at seed 0
        del row["seed"]
    out.write_text(json.dumps(first))
    resumed = credit("--epsilons", "0.2", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    rows = json.loads(out.read_text())
    assert [r["epsilon"] for r in rows] == [0.5, 0.2]
    assert rows[0] == first[0]  # kept as it was (its timing too), though not asked for
    other_seed = credit("--epsilons", "0.5", "--seed", "1", "--out", str(out), "--resume")
    assert other_seed.returncode != 0  # another seed's rows are neither reused nor lost
    assert "holds 2 rows measured with other settings ({'seed': 0," in other_seed.stderr
    assert json.loads(out.read_text()) == rows


def test_resume_from_a_file_that_is_not_results_says_so(tmp_path):
    out = tmp_path / "shard.json"
    out.write_text("not json")
    broken = credit("--epsilons", "0.5", "--out", str(out), "--resume")
    assert broken.returncode != 0
    assert "is not a results file of this script" in broken.stderr
    assert out.read_text() == "not json"  # nothing lost


def test_shared_states_replays_the_groups_the_benchmark_scored(tmp_path):
    scored, replayed = tmp_path / "credit.json", tmp_path / "shared.json"
    one_task = ["--envs", "textworld-medium", "--tasks", "1", "--epsilons", "0.5"]
    assert subprocess.run([sys.executable, str(SCRIPT), *one_task, "--truth-k", "1",
                           "--out", str(scored)], timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    assert subprocess.run([sys.executable, str(SCRIPT.parent / "shared_states.py"), str(scored),
                           "--out", str(replayed)], timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    [bench], [meet] = json.loads(scored.read_text()), json.loads(replayed.read_text())
    assert meet["steps"] == bench["steps"]["GRPO"]["env_steps"]  # the very same episodes
    assert meet["success"] == bench["wins"] / bench["episodes"]
    assert 0 <= meet["contested"] <= meet["shared"] <= 1
    spec = importlib.util.spec_from_file_location("credit_accuracy", SCRIPT)
    credit_accuracy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(credit_accuracy)
    scores = {label: row["spearman"] for label, row in credit_accuracy.rows(bench).items()}
    assert meet["salt_lead"] == pytest.approx(scores["SALT(GRPO)"] - scores["GRPO"])
