"""Write verl RL datasets (parquet) whose rows are agentgym tasks.

Usage: ``python examples/verl/make_data.py TextWorld-v0 --train 512 --test 64
--out data/textworld --env-kwargs '{"preset": "medium"}'``
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from trainers.verl_agent_loop import dataset_rows


def main() -> None:
    """Write train.parquet and test.parquet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="an agentgym env id, e.g. TextWorld-v0")
    parser.add_argument("--train", type=int, default=512, help="training tasks (seeds 0..)")
    parser.add_argument("--test", type=int, default=64, help="held-out tasks (test split)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the parquet files")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON kwargs for make")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.train), ("test", args.test)):
        rows = dataset_rows(args.env, range(count), split=split, **args.env_kwargs)
        pd.DataFrame(rows).to_parquet(args.out / f"{split}.parquet")
        print(f"{args.out / f'{split}.parquet'}: {count} {args.env} tasks ({split})")


if __name__ == "__main__":
    main()
