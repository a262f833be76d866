"""agentgym's SALT and GiGPO in verl's estimator registry, on verl's own data structures."""

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from verl import DataProto
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

import trainers.verl_estimators  # noqa: F401 (registers the estimators)
from agentgym.records import Episode, Outcome, Turn
from trainers import SALT, Batch, GiGPO


def random_episodes(seed=0, groups=3, size=4):
    """Groups whose episodes share states and steps, as a multi-turn rollout's do."""
    rng = np.random.default_rng(seed)
    episodes = []
    for g in range(groups):
        for i in range(size):
            length = int(rng.integers(2, 6))
            states = [f"g{g}/s0"] + [f"g{g}/s{int(rng.integers(0, 4))}" for _ in range(length)]
            turns = [Turn(index=t, observation=states[t], action=f"a{int(rng.integers(0, 3))}",
                          parsed_action=None if rng.random() < 0.1 else
                          f"a{int(rng.integers(0, 3))}",
                          reward=float(rng.random() < 0.2), state_key=states[t],
                          next_state_key=states[t + 1]) for t in range(length)]
            for turn in turns:  # the text matched is the parsed action
                turn.action = turn.parsed_action or turn.action
            episodes.append(Episode(env_id="Toy-v0", task_id=f"task{g}", group_id=f"g{g}",
                                    episode_id=f"g{g}-e{i}", turns=turns,
                                    outcome=Outcome(success=bool(turns[-1].reward))))
    return episodes


def as_verl_batch(episodes, width=5, seed=1):
    """One verl row per turn, rows shuffled: rewards on the last response token."""
    rows = [(e, t) for e in episodes for t in e.turns]
    order = np.random.default_rng(seed).permutation(len(rows))
    rows = [rows[i] for i in order]
    lengths = np.random.default_rng(seed).integers(1, width + 1, len(rows))
    mask = torch.zeros(len(rows), width)
    rewards = torch.zeros(len(rows), width)
    for n, ((_, turn), length) in enumerate(zip(rows, lengths)):
        mask[n, :length] = 1
        rewards[n, length - 1] = turn.reward
    fields = {"uid": [e.group_id for e, _ in rows], "traj_uid": [e.episode_id for e, _ in rows],
              "step": [t.index for _, t in rows], "state_key": [t.state_key for _, t in rows],
              "next_state_key": [t.next_state_key for _, t in rows],
              "action": [t.parsed_action for _, t in rows]}
    data = DataProto(batch=TensorDict({"token_level_rewards": rewards, "response_mask": mask},
                                      batch_size=[len(rows)]),
                     non_tensor_batch={k: np.array(v, dtype=object) for k, v in fields.items()})
    return data, rows


@pytest.mark.parametrize("name, ours", [("agentgym_salt", SALT()), ("agentgym_gigpo", GiGPO())])
def test_registered_estimators_equal_agentgyms_on_the_same_batch(name, ours):
    episodes = random_episodes()
    expected = ours(Batch.from_episodes(episodes))
    by_turn = {(e.episode_id, t.index): float(expected[n][t.index])
               for n, e in enumerate(episodes) for t in e.turns}
    data, rows = as_verl_batch(episodes)
    advantages, returns = get_adv_estimator_fn(name)(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"], index=data.non_tensor_batch["uid"],
        non_tensor_batch=data.non_tensor_batch)
    assert advantages.shape == data.batch["response_mask"].shape
    assert float(advantages[data.batch["response_mask"] == 0].abs().sum()) == 0.0
    for n, (episode, turn) in enumerate(rows):
        row = advantages[n][data.batch["response_mask"][n] > 0]
        assert torch.allclose(row, torch.full_like(row, by_turn[episode.episode_id, turn.index]),
                              atol=1e-6)
    assert len(set(np.round(list(by_turn.values()), 6))) > 3  # not a constant


def test_missing_step_anchors_are_named():
    from agentgym.errors import EstimatorError

    data, _ = as_verl_batch(random_episodes(groups=1, size=2))
    with pytest.raises(EstimatorError, match="non_tensor_batch"):
        get_adv_estimator_fn("agentgym_salt")(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"])
    fields = {k: v for k, v in data.non_tensor_batch.items() if k != "traj_uid"}
    with pytest.raises(EstimatorError, match="traj_uid"):
        get_adv_estimator_fn("agentgym_gigpo")(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"], non_tensor_batch=fields)
