"""agentgym's SALT and GiGPO in verl's estimator registry, on verl's own data structures."""

from pathlib import Path

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


# --- the agent loop: agentgym episodes inside verl's AgentLoopWorker, on CPU ---------------

LOOP_KWARGS = {"preset": "easy", "max_turns": 4, "num_tasks": 8}


class ReplayServer:
    """A verl LLM server (``generate`` in token ids) whose replies are a recorded expert's
    commands: the even requests of each task play them, the odd ones only look around.

    It finds the task by the first observation in the prompt and the turn by the assistant
    turns so far: what a model would read from the same tokens.
    """

    def __init__(self, tokenizer, experts):
        self.tokenizer, self.experts, self.requests = tokenizer, experts, {}

    async def generate(self, *, request_id, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput

        text = self.tokenizer.decode(prompt_ids)
        expert = next(e for e in self.experts if e.turns[0].observation in text)
        if request_id not in self.requests:
            before = sum(1 for e, _ in self.requests.values() if e is expert)
            self.requests[request_id] = (expert, before % 2 == 0)
        expert, skilled = self.requests[request_id]
        turn = text.count("<|im_start|>assistant") - 1
        command = expert.turns[turn].parsed_action if skilled and turn < len(expert.turns) \
            else "look"
        reply = f"<action>{command}</action><|im_end|>"
        return TokenOutput(token_ids=self.tokenizer.encode(reply, add_special_tokens=False))


@pytest.fixture(scope="module")
def verl_worker_parts(tmp_path_factory):
    """A tiny model folder, verl's composed config for it, and the expert's episodes."""
    import os.path

    import verl
    from hydra import compose, initialize_config_dir

    import agentgym
    from trainers.models import tiny_model
    from trainers.tiny import train_tokenizer

    folder = tmp_path_factory.mktemp("verl")
    env = agentgym.make("TextWorld-v0", **LOOP_KWARGS)
    experts = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=3,
                               seed=11, progress=False)
    texts = [env.system_prompt()] + [t.observation + " " + t.action for e in experts
                                     for t in e.turns]
    tokenizer = train_tokenizer(texts * 3, vocab_size=600, chat_format="hermes")
    tiny_model(tokenizer).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    (folder / "loop.yaml").write_text(
        "- name: agentgym\n  _target_: trainers.verl_agent_loop.AgentGymAgentLoop\n"
        "  reward: {type: outcome, channel: success, weight: 2.0}\n")
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={folder / 'model'}",
            "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.prompt_length=1024",
            "actor_rollout_ref.rollout.response_length=1024",
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={folder / 'loop.yaml'}"])
    return folder, config, experts


def verl_batch(folder, config, experts, n):
    """The experts' tasks as verl's trainer batches them: parquet, RLHFDataset, a uid per
    task, each row repeated n times."""
    import uuid

    import pandas as pd
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from trainers.verl_agent_loop import dataset_rows

    rows = dataset_rows("TextWorld-v0", [e.seed for e in experts], **LOOP_KWARGS)
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    dataset = RLHFDataset(str(folder / "train.parquet"), tokenizer, config.data)
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    batch.non_tensor_batch["uid"] = np.array([uuid.uuid4().hex for _ in range(len(batch))],
                                             dtype=object)
    return batch.repeat(n, interleave=True), tokenizer


def test_the_agent_loop_plays_agentgym_episodes_in_verls_worker(verl_worker_parts):
    """verl's own worker, dataset and postprocessing: each row is an agentgym episode whose
    model tokens are the replies, scored by the spec; SALT over its turn spans equals
    agentgym's SALT on the same episodes."""
    import asyncio

    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    from agentgym.records import Episode
    from rewards import Outcome

    folder, config, experts = verl_worker_parts
    batch, tokenizer = verl_batch(folder, config, experts, n=4)
    worker = AgentLoopWorker(config, llm_client=ReplayServer(tokenizer, experts))
    data = asyncio.run(worker.generate_sequences(batch))
    assert len(data) == 12
    episodes = [Episode.from_dict(e) for e in data.non_tensor_batch["agentgym_episode"]]
    spec = Outcome("success", weight=2.0)
    scores = data.batch["rm_scores"].sum(dim=-1)
    for row, episode in enumerate(episodes):
        assert float(scores[row]) == pytest.approx(float(sum(spec(episode))))
        mask, response = data.batch["response_mask"][row], data.batch["responses"][row]
        spans = data.non_tensor_batch["agentgym_turns"][row]
        assert len(spans) == len(episode.turns) > 0
        for turn, span in zip(episode.turns, spans):
            played = response[span["start"]:span["end"]][mask[span["start"]:span["end"]] > 0]
            assert tokenizer.decode(played, skip_special_tokens=True) == turn.action
        for span, following, turn in zip(spans, spans[1:], episode.turns[1:]):
            assert int(mask[span["end"]:following["start"]].sum()) == 0  # the env's tokens
            assert turn.observation in tokenizer.decode(response[span["end"]:following["start"]])
    won = [e.outcome.success for e in episodes]
    assert any(won) and not all(won)  # the skilled half wins, the idle half does not
    for episode, group in zip(episodes, data.non_tensor_batch["uid"]):
        episode.group_id = episode.task_id = str(group)
        for turn, reward in zip(episode.turns, spec(episode)):
            turn.reward = float(reward)
    expected = SALT()(Batch.from_episodes(episodes))
    advantages, _ = get_adv_estimator_fn("agentgym_salt")(
        token_level_rewards=data.batch["rm_scores"], response_mask=data.batch["response_mask"],
        index=data.non_tensor_batch["uid"], non_tensor_batch=data.non_tensor_batch)
    for row, spans in enumerate(data.non_tensor_batch["agentgym_turns"]):
        mask = data.batch["response_mask"][row] > 0
        for t, span in enumerate(spans):
            values = advantages[row, span["start"]:span["end"]][mask[span["start"]:span["end"]]]
            assert torch.allclose(values, torch.full_like(values, float(expected[row][t])),
                                  atol=1e-6)
    assert float(advantages[~(data.batch["response_mask"] > 0)].abs().sum()) == 0.0
    assert float(advantages.abs().sum()) > 0


def test_an_episode_out_of_response_tokens_is_scored_as_it_stands(verl_worker_parts):
    """A response budget smaller than the episode: the row stops there, within budget, and
    the episode is truncated with the env's outcome of that state. (The loop is registered
    by the example config the README's GPU launch uses.)"""
    import asyncio

    from omegaconf import open_dict
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    from agentgym.records import Episode

    folder, config, experts = verl_worker_parts
    config = config.copy()
    with open_dict(config):
        config.actor_rollout_ref.rollout.response_length = 24
        config.actor_rollout_ref.rollout.agent.agent_loop_config_path = str(
            Path(__file__).parent.parent / "examples" / "verl" / "agent_loop.yaml")
    batch, tokenizer = verl_batch(folder, config, experts[:1], n=2)
    data = asyncio.run(AgentLoopWorker(config, llm_client=ReplayServer(tokenizer, experts))
                       .generate_sequences(batch))
    assert data.batch["responses"].shape[1] == 24
    for record in data.non_tensor_batch["agentgym_episode"]:
        episode = Episode.from_dict(record)
        assert episode.truncated and not episode.outcome.success
        assert len(episode.turns) < len(experts[0].turns) + 4


def test_a_row_without_its_task_is_named():
    from trainers.verl_agent_loop import VerlTask, VerlTaskError

    with pytest.raises(VerlTaskError, match="no 'agentgym' field"):
        VerlTask.from_row({"raw_prompt": []})
    with pytest.raises(VerlTaskError, match="keys env, seed, split, env_kwargs"):
        VerlTask.from_row({"agentgym": '{"env": "TextWorld-v0", "level": 3}'})
