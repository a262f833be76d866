"""Evaluation statistics against hand-computed values; reports and paired comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentgym.eval_stats import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    pass_at_k,
    wilson_interval,
)
from agentgym.records import Episode, Outcome
from trainers.evaluate import compare, report


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),                 # pass@1 is the success rate
    (5, 2, 2, 1 - 3 / 10),          # 1 - C(3,2)/C(5,2)
    (10, 3, 5, 1 - 21 / 252),       # 1 - C(7,5)/C(10,5)
    (4, 1, 4, 1.0),                 # k = n: one of them is the correct one
    (4, 0, 4, 0.0),                 # every sample failed
    (6, 0, 2, 0.0),
    (6, 6, 3, 1.0),
])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


@pytest.mark.parametrize(("wins", "trials", "low", "high"), [
    (0, 10, 0.0, 0.27753),          # upper = z^2 / (n + z^2)
    (5, 10, 0.23659, 0.76341),
    (10, 10, 0.72247, 1.0),
    (81, 263, 0.25529, 0.36621),    # worked by hand: centre 0.31075, half-width 0.05546
])
def test_wilson_intervals(wins, trials, low, high):
    got = wilson_interval(wins, trials)
    assert got == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize(("only_a", "only_b", "p"), [
    (1, 9, 2 * 11 / 1024),          # 2 P(X <= 1), X ~ Bin(10, 1/2)
    (0, 5, 2 / 32),
    (9, 1, 2 * 11 / 1024),          # symmetric
    (3, 3, 1.0),
    (0, 0, 1.0),
    (2, 10, 2 * (1 + 12 + 66) / 4096),
])
def test_mcnemar_exact_p_values(only_a, only_b, p):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(p, abs=1e-12)


def test_bootstrap_intervals_hold_the_mean_and_shrink_with_more_tasks():
    rng = np.random.default_rng(0)
    few, many = rng.random(10), rng.random(1000)
    low, high = bootstrap_interval(few)
    assert low < few.mean() < high
    low_many, high_many = bootstrap_interval(many)
    assert high_many - low_many < (high - low) / 3
    assert bootstrap_interval([0.5] * 7) == (0.5, 0.5)


def test_paired_bootstrap_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    p_shift, (low, high) = paired_bootstrap(0.5 + rng.normal(0, 0.3, 60))
    assert p_shift < 0.001 and low > 0
    p_noise, (low, high) = paired_bootstrap(rng.normal(0, 0.3, 60))
    assert p_noise > 0.05 and low < 0 < high
    assert paired_bootstrap([0.0] * 10)[0] == 1.0


def episodes(results: dict[str, list[int]], kind: str | None = None) -> list[Episode]:
    out = []
    for task, wins in results.items():
        for won in wins:
            episode = Episode(env_id="Test-v0", task_id=task, group_id=task,
                              outcome=Outcome(success=bool(won), total_reward=float(won)))
            if kind:
                episode.metadata["task_kind"] = kind
            out.append(episode)
    return out


def test_a_report_gives_rates_with_intervals_overall_and_per_kind():
    played = episodes({"a": [1, 0, 0, 0], "b": [1, 1, 0, 1]}, "pick") + \
        episodes({"c": [0, 0, 0, 0]}, "heat")
    data = report(played, samples=4)
    overall = data["overall"]
    assert overall["success_rate"] == pytest.approx(4 / 12)
    assert overall["success_rate_interval"] == pytest.approx(wilson_interval(4, 12))
    assert overall["pass@1"] == pytest.approx((1 / 4 + 3 / 4 + 0) / 3)
    assert overall["pass@4"] == pytest.approx(2 / 3)  # tasks a and b: some sample won
    assert set(data["by_kind"]) == {"heat", "pick"}
    assert data["by_kind"]["heat"]["success_rate"] == 0.0
    assert data["by_kind"]["pick"]["pass@4"] == 1.0
    assert [t["successes"] for t in data["tasks"]][0] == [True, False, False, False]


def test_compare_pairs_episodes_and_says_whether_the_difference_is_significant():
    tasks = [f"t{i}" for i in range(30)]
    weak = report(episodes({t: [int(i % 3 == 0)] for i, t in enumerate(tasks)}), 1)
    strong = report(episodes({t: [int(i % 3 != 2)] for i, t in enumerate(tasks)}), 1)
    for data, name in ((weak, "weak"), (strong, "strong")):
        data["checkpoint"] = name
    result = compare(weak, strong)
    assert (result["only_a"], result["only_b"]) == (0, 10)
    assert result["p_success"] == pytest.approx(2 / 1024)
    assert result["verdict"].startswith("B better than A in success, p = 0.00195")
    same = compare(weak, weak)
    assert same["verdict"].startswith("no significant difference") and same["p_success"] == 1
    with pytest.raises(ValueError, match="share no task"):
        compare(weak, report(episodes({"other": [1]}), 1))
    assert math.isclose(result["return_difference"], 10 / 30)


def test_the_compare_command_prints_the_tests_and_the_verdict(tmp_path):
    import json
    import subprocess
    import sys

    tasks = [f"t{i}" for i in range(30)]
    for name, rule in (("a", lambda i: i % 3 == 0), ("b", lambda i: i % 3 != 2)):
        data = report(episodes({t: [int(rule(i))] for i, t in enumerate(tasks)}), 1)
        data.update(checkpoint=name, settings={})
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    cli = [sys.executable, "-m", "agentgym.cli", "compare"]
    done = subprocess.run([*cli, str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "McNemar exact p = 0.00195" in done.stdout
    assert "B better than A in success" in done.stdout
    bad = subprocess.run([*cli, str(tmp_path / "a.json"), str(tmp_path / "other.json")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    assert "other.json is not an evaluation report" in " ".join(bad.stderr.split())


def test_mean_interval_is_the_t_interval_across_seeds():
    from agentgym.eval_stats import mean_interval

    mean, low, high = mean_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0 and (low, high) == pytest.approx((2 - 4.303 / 3 ** 0.5,
                                                         2 + 4.303 / 3 ** 0.5))
    assert mean_interval([0.4]) == (0.4, 0.4, 0.4)
    wide = mean_interval(list(np.linspace(0, 1, 50)))  # past the table: the normal quantile
    assert wide[2] - wide[0] == pytest.approx(1.96 * np.linspace(0, 1, 50).std(ddof=1)
                                              / 50 ** 0.5, rel=1e-3)
