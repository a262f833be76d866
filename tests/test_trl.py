"""agentgym envs in TRL's GRPOTrainer (environment_factory), rewards from agentgym specs."""

import pytest
import torch

import agentgym
from agentgym.errors import InvalidOptionError
from agentgym.trl_env import trl_environment
from rewards import Outcome

torch.set_num_threads(1)
KWARGS = {"preset": "easy", "max_turns": 4, "num_tasks": 8}


def test_the_adapter_plays_an_episode_and_scores_it_with_the_spec():
    """The expert's commands through `act` earn what the spec gives the same episode
    recorded by agentgym.rollout; a malformed command is an observation."""
    spec = Outcome("success", weight=2.0)
    expert = agentgym.rollout(agentgym.make("TextWorld-v0", **KWARGS), agentgym.ExpertPolicy(),
                              tasks=1, seed=5, progress=False)[0]
    environment = trl_environment("TextWorld-v0", reward=spec, **KWARGS)()
    opening = environment.reset(seed=5, split="train", prompt="ignored column")
    assert expert.turns[0].observation in opening
    answer = environment.act("xyzzy plugh")
    assert "not a verb" in answer  # the game's own answer, as an observation
    assert environment.get_reward() == 0.0  # a failed episode earns nothing
    environment.reset(seed=5)
    for turn in expert.turns:
        environment.act(turn.parsed_action)
    expected = float(sum(spec(expert)))
    assert expected > 0 and environment.get_reward() == pytest.approx(expected)
    assert "over" in environment.act("look")  # after the end: said so, not a crash


def grpo_trainer(output_dir, environment_factory):
    """TRL's GRPOTrainer with the tiny model (a tokenizer learnt from TextWorld, given TRL's
    Qwen2.5 chat template, which TRL parses tool calls of), 2 steps on 4 tasks."""
    datasets = pytest.importorskip("datasets")  # installed with trl by ./run
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    from trainers.models import tiny_model
    from trainers.tiny import train_tokenizer

    env = agentgym.make("TextWorld-v0", **KWARGS)
    texts = [env.system_prompt()] + [t.observation + " " + t.action for e in agentgym.rollout(
        env, agentgym.ExpertPolicy(), tasks=4, progress=False) for t in e.turns]
    tokenizer = train_tokenizer(texts * 3, vocab_size=600, chat_format="hermes")
    tokenizer.chat_template = qwen2_5_chat_template
    data = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": "Play the game with the act tool."}]] * 4,
        "seed": [0, 1, 2, 3]})
    config = GRPOConfig(output_dir=str(output_dir), max_steps=2, per_device_train_batch_size=2,
                        num_generations=2, max_completion_length=16, learning_rate=1e-3,
                        logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                        dataloader_num_workers=0, seed=0)
    return GRPOTrainer(model=tiny_model(tokenizer), args=config, train_dataset=data,
                       processing_class=tokenizer, environment_factory=environment_factory)


def test_grpo_trainer_trains_two_steps_on_an_agentgym_env(tmp_path):
    trainer = grpo_trainer(tmp_path, trl_environment("TextWorld-v0", reward=Outcome("success"),
                                                     **KWARGS))
    trainer.train()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 2
    rewards = [k for k in logged[0] if k.startswith("rewards/TextworldV0Environment")]
    assert rewards and all(row[rewards[0]] == row[rewards[0]] for row in logged)  # not NaN
    # every rollout started an agentgym episode of the dataset's task (seed column)
    assert trainer.environments and all(e.recorder is not None for e in trainer.environments)
    assert {e.recorder.episode.seed for e in trainer.environments} <= {0, 1, 2, 3}


def test_an_episode_the_model_stopped_early_is_scored_as_it_stands():
    """One expert command of two, then nothing: the outcome the env gives that state."""
    env = agentgym.make("TextWorld-v0", **KWARGS)
    expert = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=1, seed=6, progress=False)[0]
    assert len(expert.turns) > 1
    environment = trl_environment("TextWorld-v0", reward=Outcome("success"), **KWARGS)()
    environment.reset(seed=6)
    environment.act(expert.turns[0].parsed_action)
    assert environment.get_reward() == 0.0  # not won yet
    assert environment.recorder.episode.truncated
    assert environment.recorder.episode.outcome.channels == \
        environment.env.env.unwrapped.outcome_now()
    # scoring ended it: a later command is not played, and the return does not change
    assert "over" in environment.act(expert.turns[1].parsed_action)
    assert len(environment.recorder.episode.turns) == 1
    assert environment.get_reward() == 0.0


def test_trl_trains_on_a_served_env_with_agentgyms_reward(tmp_path):
    """The README's served path: `agentgym serve --protocol openenv`, then the same TRL
    environment class with base_url. Over HTTP the expert earns the spec's return, an
    early stop is scored by the served outcome, and a 2-step GRPOTrainer run logs it."""
    from tests.test_openenv import serving

    spec = Outcome("success", weight=2.0)
    expert = agentgym.rollout(agentgym.make("TextWorld-v0", **KWARGS), agentgym.ExpertPolicy(),
                              tasks=1, seed=5, progress=False)[0]
    with serving("TextWorld-v0", KWARGS) as url:
        environment = trl_environment("TextWorld-v0", reward=spec, base_url=url)()
        assert expert.turns[0].observation in environment.reset(seed=5)
        environment.act(expert.turns[0].parsed_action)
        assert environment.get_reward() == 0.0 and environment.recorder.episode.truncated
        # scored once: asked again, the same answer, and the server is not stopped again
        assert environment.get_reward() == 0.0
        assert "over" in environment.act(expert.turns[1].parsed_action)
        environment.reset(seed=5)
        for turn in expert.turns:
            environment.act(turn.parsed_action)
        expected = float(sum(spec(expert)))
        assert expected > 0 and environment.get_reward() == pytest.approx(expected)
        trainer = grpo_trainer(tmp_path, trl_environment("TextWorld-v0", reward=spec,
                                                         base_url=url))
        trainer.train()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 2
    assert all(e.recorder is not None and e.recorder.episode.seed in {0, 1, 2, 3}
               for e in trainer.environments)
    with pytest.raises(InvalidOptionError, match="server's kwargs"):
        trl_environment("TextWorld-v0", base_url=url, preset="easy")
