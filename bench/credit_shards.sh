#!/usr/bin/env bash
# The full credit-accuracy run in shards of 8 tasks, resumable: each finished shard is a file
# in bench/results/credit/ and is skipped next time; a shard stopped half-way keeps the
# epsilons it finished (--resume). Run two envs side by side on 2 cores:
#   bench/credit_shards.sh textworld-medium &  bench/credit_shards.sh alfworld &
# then join every env's shards into the table:
#   python bench/credit_accuracy.py --combine bench/results/credit/*.json
set -euo pipefail
cd "$(dirname "$0")/.."
env_name=$1
out=bench/results/credit
python=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python  # ./run's venv
mkdir -p "$out"
for first in 0 8 16 24 32 40 48 56; do
  shard="$out/$env_name-$first.json"
  [ -s "$shard" ] && continue
  OMP_NUM_THREADS=1 "$python" bench/credit_accuracy.py --envs "$env_name" --tasks 8 \
    --first-task "$first" --out "$shard.partial" --resume
  mv "$shard.partial" "$shard"
done
