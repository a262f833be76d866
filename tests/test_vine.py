"""Monte-Carlo step values (VinePPO) on an env whose true values are known."""

from __future__ import annotations

import pytest

import agentgym
from agentgym.core import AgentEnv, Transition
from agentgym.errors import EstimatorError
from agentgym.protocols import command_protocol
from agentgym.values import attach_mc_values, monte_carlo_values
from trainers import Batch, Vine

END = 4  # positions 0..END; the walk starts at 2


class Corridor(AgentEnv):
    """Walk left or right; the right end pays 1, the left end 0.

    Under the uniform random policy ``V(p) = p / END`` (gambler's ruin), so every true
    advantage is ``+1/END`` for a step right and ``-1/END`` for a step left.
    """

    env_id = "Corridor-v0"
    snapshot_kind = "native"

    def __init__(self) -> None:
        super().__init__(protocol=command_protocol("tags"), max_turns=200)
        self.position = 2

    def _load_task(self, options):
        self.position = 2
        return "You are at 2.", "corridor"

    def _apply(self, command):
        self.position += 1 if command == "right" else -1
        over = self.position in (0, END)
        return Transition(f"You are at {self.position}.", {}, terminated=over)

    def _final_reward(self, outcome):
        return outcome["success"]

    def _admissible(self):
        return ["left", "right"]

    def _instruction(self):
        return "Reach the right end."

    def _state_key(self):
        return str(self.position)

    def _outcome(self):
        return {"success": float(self.position == END)}

    def _snapshot(self):
        return self.position

    def _restore(self, native):
        self.position = native


def recorded(seed: int):
    env = Corridor()
    return env, agentgym.run_episode(env, agentgym.RandomPolicy(seed), seed=seed,
                                     group_id=f"corridor-{seed}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vine_with_many_continuations_recovers_the_true_advantages(seed):
    env, episode = recorded(seed)
    assert len(episode.turns) >= 2
    estimate = monte_carlo_values(env, agentgym.RandomPolicy(100 + seed), episode, k=4000)
    positions = [2] + [int(t.next_state_key) for t in episode.turns]
    truth_values = [p / END for p in positions[:-1]] + [0.0]
    assert all(abs(v - t) < 0.03 for v, t in zip(estimate.values, truth_values)), \
        (estimate.values, truth_values)
    episode.metadata["mc_values"] = estimate.values
    (advantages,) = Vine()(Batch.from_episodes([episode]))
    truth = [(1 if b > a else -1) / END for a, b in zip(positions, positions[1:])]
    assert max(abs(a - t) for a, t in zip(advantages, truth)) < 0.05, (advantages, truth)
    continuations = estimate.env_steps - len(episode.turns)
    assert continuations == estimate.policy_calls and continuations >= 4000 * len(
        episode.turns)  # each continuation takes at least one step


def test_vine_says_where_its_values_come_from():
    env, episode = recorded(0)
    with pytest.raises(EstimatorError, match="attach_mc_values"):
        Vine()(Batch.from_episodes([episode]))
    cost = attach_mc_values(env, agentgym.RandomPolicy(0), [episode], k=3)
    assert episode.metadata["mc_cost"]["k"] == 3 and cost["env_steps"] > len(episode.turns)
    assert len(Vine()(Batch.from_episodes([episode]))[0]) == len(episode.turns)


def test_values_of_states_met_again_are_estimated_once():
    env, episode = recorded(1)
    known: dict = {}
    first = monte_carlo_values(env, agentgym.RandomPolicy(5), episode, k=50, known=known)
    again = monte_carlo_values(env, agentgym.RandomPolicy(6), episode, k=50, known=known)
    assert again.values == first.values and again.policy_calls == 0
    assert len(known) == len({(t.state_key, t.index) for t in episode.turns})


def test_the_noisy_expert_is_the_expert_at_epsilon_0_and_random_at_1():
    from agentgym.errors import PolicyError

    env = agentgym.make("TextWorld-v0", preset="easy")
    expert = agentgym.run_episode(env, agentgym.NoisyExpertPolicy(0.0, seed=0), seed=3)
    assert expert.outcome.success and all(
        t.action == t.info["expert_action"] for t in expert.turns)
    noisy = agentgym.run_episode(env, agentgym.NoisyExpertPolicy(1.0, seed=0), seed=3)
    assert all(t.parsed_action in t.info["admissible_actions"] for t in noisy.turns)
    with pytest.raises(PolicyError, match="in \\[0, 1\\]"):
        agentgym.NoisyExpertPolicy(1.5)


def test_progress_under_a_prover_becomes_a_reward_channel():
    from agentgym.values import attach_mc_progress
    from rewards import Weighted

    env, episode = recorded(2)
    cost = attach_mc_progress(env, agentgym.RandomPolicy(9), [episode], k=3000)
    positions = [2] + [int(t.next_state_key) for t in episode.turns]
    truth = [(1 if b > a else -1) / END for a, b in zip(positions, positions[1:])]
    progress = Weighted({"mc_progress": 1.0})(episode)  # any reward spec reads it
    assert max(abs(p - t) for p, t in zip(progress, truth)) < 0.05
    assert cost["env_steps"] == episode.metadata["mc_progress_cost"]["env_steps"] > 0
