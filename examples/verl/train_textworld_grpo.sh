#!/usr/bin/env bash
# GPU launch (not run on this project's CPU CI): verl's PPO trainer, GRPO on agentgym's
# episode reward, TextWorld medium played through the agentgym agent loop.
# Needs: pip install verl vllm (matching your CUDA), a chat model at $MODEL, 1+ GPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
python examples/verl/make_data.py TextWorld-v0 --train 512 --test 64 --out data/textworld \
  --env-kwargs '{"preset": "medium", "max_turns": 10}'
python -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  data.train_files=data/textworld/train.parquet data.val_files=data/textworld/test.parquet \
  data.train_batch_size=32 data.max_prompt_length=1024 data.max_response_length=2048 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.agent.agent_loop_config_path=examples/verl/agent_loop.yaml \
  actor_rollout_ref.actor.optim.lr=1e-6 actor_rollout_ref.actor.ppo_mini_batch_size=32 \
  trainer.n_gpus_per_node="${GPUS:-8}" trainer.nnodes=1 trainer.total_epochs=1 \
  trainer.logger='[console]' "$@"
