"""bench/evidence_report.py: the experiment's table from the runs' records."""

import json
import os
import subprocess
import sys
from pathlib import Path

from trainers.evaluate import rates_of

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "evidence_report.py"


def write_run(folder: Path, held_out: list[float], contested: list[float], seconds: float):
    """A finished run's records: held-out success at updates 0 and 2, contested shares."""
    folder.mkdir(parents=True)
    rows = [{"step": 0, "eval/success_rate": held_out[0]}]
    for step, share in enumerate(contested, start=1):
        rows.append({"step": step, "charts/contested_steps": share,
                     "perf/env_steps_total": 100 * step})
    rows[-1]["eval/success_rate"] = held_out[1]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "done.json").write_text(json.dumps({"seconds": seconds}))


def write_eval(path: Path, wins: dict[str, list[bool]]):
    """A pooled ``agentgym eval --json`` report: each seed run's 10 tasks, one sample each."""
    tasks = [{"task_id": f"task-{i}", "kind": None, "run": run, "successes": [won],
              "returns": [float(won)]} for run, results in wins.items()
             for i, won in enumerate(results)]
    path.write_text(json.dumps({"checkpoint": str(path.parent), "settings": {},
                                **rates_of(tasks, 1)}))


def report(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_table_gives_each_arm_its_seed_mean_interval_and_paired_verdict(tmp_path):
    runs, root = tmp_path / "runs", tmp_path / "records"
    write_run(runs / "grpo" / "seed-0", [0.1, 0.1], [0.1, 0.2], 600)
    write_run(runs / "grpo" / "seed-1", [0.1, 0.2], [0.3, 0.4], 660)
    write_run(runs / "salt" / "seed-0", [0.1, 0.2], [0.5, 0.5], 1200)
    write_run(runs / "salt" / "seed-1", [0.1, 0.3], [0.3, 0.3], 1200)
    (runs / "salt" / "seed-0" / "checkpoints").mkdir()
    (runs / "salt" / "seed-0" / "checkpoints" / "weights.bin").write_bytes(b"0" * 64)
    unfinished = runs / "salt" / "seed-2"
    write_run(unfinished, [0.1, 0.9], [0.9], 60)
    (unfinished / "done.json").unlink()

    first = report(root, "--copy-from", str(runs), "--baseline", "grpo")
    assert first.returncode == 0, first.stderr
    copied = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert copied == [f"{arm}/seed-{n}/{name}" for arm in ("grpo", "salt") for n in (0, 1)
                      for name in ("done.json", "metrics.jsonl")]  # no weights, no unfinished
    rows = {line.split(" | ")[0].strip("| "): line for line in first.stdout.splitlines()}
    # after RL: 0.2 and 0.3 -> mean 25%, t-interval 0.25 +- 12.706 * 0.0707 / sqrt(2),
    # clipped to [0, 1]; contested: mean of 0.5 and 0.3; 1,200 s is 20 min
    assert "| salt | 2 | 10.0% [10.0, 10.0] | 25.0% [0.0, 88.5] | 40.0% | 200 | 20 |" \
        in rows["salt"]
    assert "| grpo | 2 | 10.0% [10.0, 10.0] | 15.0% [0.0, 78.5] | 25.0% | 200 | 10 |" \
        in rows["grpo"]
    assert "no eval.json yet" in rows["salt"] and "(baseline)" in rows["grpo"]

    write_eval(root / "grpo" / "eval.json", {"seed-0": [False] * 10,
                                              "seed-1": [True] + [False] * 9})
    write_eval(root / "salt" / "eval.json", {"seed-0": [True] * 4 + [False] * 6,
                                              "seed-1": [True] * 3 + [False] * 7})
    second = report(root, "--baseline", "grpo")
    salt = next(line for line in second.stdout.splitlines() if line.startswith("| salt "))
    # pairs by seed and task: 6 won only by salt, 0 only by grpo: p = 2 * 0.5**6
    assert "better: McNemar p = 0.0312 (6 won only here, 0 only there)" in salt

    write_eval(root / "salt" / "eval.json", {"seed-0": [True] * 2 + [False] * 8,
                                              "seed-1": [True] + [False] * 9})
    third = report(root, "--baseline", "grpo")
    salt = next(line for line in third.stdout.splitlines() if line.startswith("| salt "))
    # 2 won only by salt (seed-0's tasks 0 and 1), none only by grpo: p = 2 * 0.5**2
    assert "no significant difference: McNemar p = 0.5 (2 won only here, 0 only there)" in salt


def test_seeds_meet_at_their_last_evaluation_against_env_steps(tmp_path):
    """Two seeds whose budget ran out at updates 3 and 4: their final evaluations pair up,
    drawn at the seeds' mean env steps (the first row, before RL, at 0)."""
    from trainers.plots import comparison_figure, curve

    for seed, (last, spent) in enumerate([(3, 480), (4, 500)]):
        folder = tmp_path / "arm" / f"seed-{seed}"
        folder.mkdir(parents=True)
        rows = [{"step": 0, "eval/success_rate": 0.1}]
        rows += [{"step": step, "perf/env_steps_total": spent * step // last}
                 for step in range(1, last + 1)]
        rows[2]["eval/success_rate"] = 0.2 + 0.1 * seed
        rows[-1]["eval/success_rate"] = 0.4 + 0.2 * seed
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seeds = sorted((tmp_path / "arm").iterdir())
    xs, means, lows, highs = curve(seeds, "eval/success_rate", x="perf/env_steps_total")
    assert xs == [0, (320 + 250) / 2, 490] and means == [0.1, 0.25, 0.5]
    assert lows[0] == highs[0] == 0.1 and lows[2] < 0.5 < highs[2]
    by_update, _, _, _ = curve(seeds, "eval/success_rate")
    assert by_update == [0, 2, 3.5]  # the updates differ; the x axis says so
    figure = comparison_figure([tmp_path / "arm"], x="perf/env_steps_total")
    assert figure.axes[0].get_xlabel() == "env steps"


def test_the_plot_command_offers_every_x_axis_the_plots_can_label():
    from agentgym.cli import build_parser
    from trainers.plots import X_LABELS

    plot = build_parser()._subparsers._group_actions[0].choices["plot"]
    offered = next(a.choices for a in plot._actions if a.dest == "x")
    assert list(offered) == list(X_LABELS)
