"""The evidence experiment's report (issue 19): one row per arm, from the runs' records.

    python bench/evidence_report.py --copy-from runs/evidence      # records of finished runs
    python bench/evidence_report.py --plot docs/training/evidence.png

An arm is a folder of ``seed-N`` records (``config.json``, ``metrics.jsonl``, ``train.log``,
``done.json``; never weights) under ``bench/results/evidence/``. Per arm: held-out success
before and after RL as the mean over seeds with a 95% t-interval, the share of steps on
edges that a group's winning and losing episodes both took, env steps and minutes per run.
An arm with an ``eval.json`` (``agentgym eval runs/evidence/ARM --json .../ARM/eval.json``,
seeds pooled) is tested against GRPO's, paired by seed and task (McNemar exact).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from agentgym.eval_stats import mean_interval
from trainers.evaluate import compare, load_report
from trainers.plots import plot_comparison, read_metrics
from trainers.runs import seed_runs

RECORDS = ("config.json", "metrics.jsonl", "train.log", "done.json")
HELD_OUT = "eval/success_rate"
ALPHA = 0.05  # a claim that one arm beats another needs p below this


def copy_records(source: Path, dest: Path) -> list[Path]:
    """Copy each finished run's records (``done.json`` written) from ``source`` to ``dest``."""
    copied = []
    for done in sorted(source.glob("*/seed-*/done.json")):
        run = done.parent
        target = dest / run.parent.name / run.name
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORDS:
            if (run / name).is_file():
                shutil.copy2(run / name, target / name)
        copied.append(target)
    return copied


def arm_summary(arm: Path) -> dict:
    """Held-out before/after, contested share, env steps and minutes, over the arm's seeds."""
    runs = [run for run in seed_runs(arm) if (run / "done.json").is_file()]
    rows = [read_metrics(run) for run in runs]
    evals = [[r[HELD_OUT] for r in metrics if HELD_OUT in r] for metrics in rows]
    contested = [np.mean([r["charts/contested_steps"] for r in metrics
                          if "charts/contested_steps" in r]) for metrics in rows]
    steps = [max(r.get("perf/env_steps_total", 0) for r in metrics) for metrics in rows]
    seconds = [json.loads((run / "done.json").read_text())["seconds"] for run in runs]
    return {"arm": arm.name, "seeds": [run.name for run in runs],
            "before": mean_interval([e[0] for e in evals]),
            "after": mean_interval([e[-1] for e in evals]),
            "contested": float(np.mean(contested)), "env_steps": float(np.mean(steps)),
            "minutes": float(np.mean(seconds)) / 60}


def paired_against(arm: Path, baseline: Path) -> str:
    """The paired test of the arm's pooled evaluation against the baseline's, or why not."""
    mine, theirs = arm / "eval.json", baseline / "eval.json"
    if arm == baseline:
        return "(baseline)"
    if not (mine.is_file() and theirs.is_file()):
        return f"no eval.json yet (`agentgym eval runs/evidence/{arm.name} --json ...`)"
    result = compare(load_report(theirs), load_report(mine))
    p, here, there = result["p_success"], result["only_b"], result["only_a"]
    finding = ("no significant difference" if p >= ALPHA or here == there
               else "better" if here > there else "worse")
    return f"{finding}: McNemar p = {p:.3g} ({here} won only here, {there} only there)"


def _percent(interval: tuple[float, float, float]) -> str:
    mean, low, high = (min(max(value, 0.0), 1.0) for value in interval)  # rates: [0, 1]
    return f"{100 * mean:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def arm_folders(root: Path) -> list[Path]:
    """The arms under ``root`` with a finished seed (the shared warm-up is not an arm)."""
    return [p for p in sorted(root.iterdir()) if p.is_dir()
            and any(p.glob("seed-*/done.json")) and not p.name.endswith("-sft")]


def markdown(root: Path, baseline: str) -> str:
    """The table, one row per arm folder under ``root``."""
    base = root / baseline
    lines = ["| arm | seeds | held-out before RL | held-out after RL | contested steps "
             f"| env steps | min/run | paired vs {baseline} |", "|---" * 8 + "|"]
    for arm in arm_folders(root):
        s = arm_summary(arm)
        lines.append(f"| {s['arm']} | {len(s['seeds'])} | {_percent(s['before'])} | "
                     f"{_percent(s['after'])} | {100 * s['contested']:.1f}% | "
                     f"{s['env_steps']:,.0f} | {s['minutes']:.0f} | "
                     f"{paired_against(arm, base)} |")
    return "\n".join(lines)


def main() -> None:
    """Copy records if asked, print the table, draw the plot if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("bench/results/evidence"),
                        help="the arms' record folders (default: %(default)s)")
    parser.add_argument("--copy-from", type=Path, metavar="RUNS",
                        help="first copy finished runs' records from here (e.g. runs/evidence)")
    parser.add_argument("--baseline", default="textworld-medium-grpo",
                        help="the arm others are tested against (default: %(default)s)")
    parser.add_argument("--plot", type=Path,
                        help="a PNG of held-out success against env steps, arms overlaid")
    args = parser.parse_args()
    if args.copy_from:
        for target in copy_records(args.copy_from, args.root):
            print("records:", target)
    print(markdown(args.root, args.baseline))
    if args.plot:
        print(plot_comparison(arm_folders(args.root), args.plot, x="perf/env_steps_total"))


if __name__ == "__main__":
    main()
