"""Tokens/s of one RL update (generate + score + policy-gradient step), ours against TRL's.

Same tiny model (copied weights), same prompts (TextWorld first observations as chat), the
same group size and completion length, the same random-but-fixed rewards. TRL's
``GRPOTrainer`` runs ``--steps`` updates; ours runs ``TransformersPolicy.generate`` then GRPO
advantages then ``Learner.rl_step`` as many times. Tokens are prompt plus completion tokens
of every sequence in the update. Run: python bench/train_step.py [--steps 3]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import agentgym
from agentgym.hf_policy import TransformersPolicy
from agentgym.policies import Conversation
from trainers.estimators import grpo_advantages
from trainers.learner import Learner, LossConfig, OptimConfig
from trainers.models import tiny_from_texts
from trainers.tokenize import TokenizedSequence

GROUP, PROMPTS, COMPLETION = 8, 2, 24


def prompts_and_model(seed: int = 0):
    with agentgym.make("TextWorld-v0", preset="easy") as env:
        conversations, texts = [], [env.system_prompt()]
        for n in range(PROMPTS):
            obs, info = env.reset(seed=n)
            conversations.append([{"role": "system", "content": env.system_prompt()},
                                  {"role": "user", "content": obs}])
            texts.append(obs)
        experts = agentgym.rollout(env, agentgym.ExpertPolicy(), tasks=8, progress=False)
    texts += [t.observation + " " + t.action for e in experts for t in e.turns]
    model, tokenizer = tiny_from_texts(texts * 4, vocab_size=800, seed=seed)
    return conversations, model, tokenizer


def reward_of(text: str) -> float:
    return float(len(text) % 3)  # fixed, varied, and the same for both trainers


def ours(conversations, model, tokenizer, steps: int) -> tuple[float, int]:
    learner = Learner(model, tokenizer, OptimConfig(lr=1e-4, minibatch_size=GROUP),
                      LossConfig(kl_coef=0.0))
    policy = TransformersPolicy(model, tokenizer, temperature=1.0, max_new_tokens=COMPLETION)
    tokens, started = 0, time.perf_counter()
    for _ in range(steps):
        rows = []
        for messages in conversations:
            conv = Conversation(messages, {}, str)
            generations = policy.generate([conv] * GROUP)
            rewards = np.array([reward_of(g.text) for g in generations])
            advantages = grpo_advantages(rewards)
            prompt = tokenizer(tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"]
            for g, a in zip(generations, advantages):
                ids = prompt + g.token_ids
                rows.append(TokenizedSequence(ids, [0] * len(prompt) + [1] * len(g.token_ids),
                                              [0.0] * len(prompt) + [float(a)] * len(g.token_ids),
                                              [-1] * len(prompt) + [0] * len(g.token_ids)))
                tokens += len(ids)
        learner.rl_step(rows)
    return time.perf_counter() - started, tokens


def trl(conversations, model, tokenizer, steps: int) -> tuple[float, int]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def reward(completions, **_):
        return [reward_of(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, per_device_train_batch_size=GROUP * PROMPTS,
                          num_generations=GROUP, max_completion_length=COMPLETION,
                          max_steps=steps, learning_rate=1e-4, beta=0.0, use_cpu=True,
                          report_to="none", logging_steps=1, save_strategy="no",
                          temperature=1.0, num_iterations=1, bf16=False,
                          dataloader_num_workers=0, disable_tqdm=True, log_level="error")
        data = Dataset.from_list([{"prompt": c} for c in conversations] * steps * GROUP)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                              processing_class=tokenizer)
        started = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - started
        tokens = int(trainer.state.num_input_tokens_seen or 0) or sum(
            int(h.get("num_tokens", 0)) for h in trainer.state.log_history[-1:])
    return elapsed, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    conversations, model, tokenizer = prompts_and_model()
    ours_s, ours_tokens = ours(conversations, copy.deepcopy(model), tokenizer, args.steps)
    trl_s, trl_tokens = trl(conversations, copy.deepcopy(model), tokenizer, args.steps)
    table = Table(title=f"One RL update x {args.steps}: {PROMPTS} prompts x {GROUP} "
                        f"completions of <= {COMPLETION} tokens, tiny model, 1 CPU thread")
    for column in ("trainer", "seconds", "tokens", "tokens/s"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    table.add_row("agentgym", f"{ours_s:.2f}", str(ours_tokens), f"{ours_tokens / ours_s:.0f}")
    table.add_row("TRL GRPOTrainer", f"{trl_s:.2f}", str(trl_tokens),
                  f"{trl_tokens / trl_s:.0f}" if trl_tokens else "n/a")
    Console().print(table)
    if trl_tokens:
        print(f"RATIO agentgym/TRL tokens/s = {(ours_tokens / ours_s) / (trl_tokens / trl_s):.2f}")


if __name__ == "__main__":
    main()
