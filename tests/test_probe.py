"""`agentgym probe`: every shipped exploit earns no more than the honest expert.

The probes play the real envs (SWE in bubblewrap) on the same tasks as the expert. A probe
that could not even make its move would prove nothing, so the tests also check that each
probe's actions were accepted, and that a reward spec with a hole is caught.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentgym.probe import probes_for, run_probes, verdict
from rewards import from_dict

ENVS = {"SWE-v0": {"sandbox": "bwrap", "tasks_per_source": 2},
        "Search-v0": {}, "WebShop-v0": {}, "TextWorld-v0": {"preset": "easy"}}


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_no_probe_earns_more_than_the_honest_agent(env_id):
    honest, *probes = run_probes(env_id, tasks=2, env_kwargs=ENVS[env_id], progress=False)
    assert honest.success_rate == 1.0  # the baseline really does the task
    assert [p.name for p in probes] == [p.name for p in probes_for(env_id)]
    for probe in probes:
        assert verdict(probe, honest) == "held", (probe.name, probe.returns)


def test_swe_probes_made_their_moves():
    """The hijacks were written and submitted; grading named what it ignored."""
    _, *probes = run_probes("SWE-v0", tasks=1, env_kwargs=ENVS["SWE-v0"], progress=False)
    for probe in probes:
        episode = probe.episodes[0]
        assert all(t.reward_channels.get("tool_valid") == 1.0 for t in episode.turns), probe.name
        assert episode.outcome.channels["submitted"] == 1.0, probe.name
    by_name = {p.name: p.episodes[0].final_observation for p in probes}
    assert "conftest.py (configures the test runner" in by_name["conftest-hook"]
    assert "pytest.py (shadows the module 'pytest')" in by_name["fake-pytest"]
    assert "tests (a test file)" in by_name["tests-symlink"]


def test_a_spec_that_pays_for_format_is_caught():
    """Paying per well-formed turn lets an agent that does nothing out-earn the expert."""
    leaky = from_dict({"type": "weighted", "weights": {"format": 1.0}})
    honest, *probes = run_probes("TextWorld-v0", tasks=2, env_kwargs={"preset": "easy"},
                                 spec=leaky, progress=False)
    verdicts = {p.name: verdict(p, honest) for p in probes}
    assert verdicts["look-forever"] == "EXPLOITED"


def test_the_cli_prints_the_table_and_exits_nonzero_on_an_exploit():
    held = subprocess.run([sys.executable, "-m", "agentgym.cli", "probe", "Search-v0",
                           "--tasks", "2"], capture_output=True, text=True, timeout=600)
    assert held.returncode == 0, held.stderr[-2000:]
    assert "answer-spam" in held.stdout and "held" in held.stdout
    leaky = subprocess.run([sys.executable, "-m", "agentgym.cli", "probe", "TextWorld-v0",
                            "--tasks", "2", "--env-arg", "preset=easy", "--spec",
                            "{type: weighted, weights: {format: 1.0}}"],
                           capture_output=True, text=True, timeout=600)
    assert leaky.returncode == 1, leaky.stderr[-2000:]
    assert "EXPLOITED" in leaky.stdout
