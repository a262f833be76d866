"""The evidence experiment (issue 19): every arm at every seed, two runs at a time.

    python bench/evidence.py configs/evidence/textworld-medium-sft.yaml \
        configs/evidence/textworld-medium-{grpo,salt,salt-tree,vine,gigpo}.yaml

Each config's ``seeds`` are its runs; an arm whose ``sft.start_from`` names the shared
warm-up starts once that seed's warm-up exists. Resumable: a finished run (``done.json``)
is skipped, an unfinished one goes on from its last checkpoint. Extra ``key=value``
arguments override every config (e.g. ``seeds=[0]`` for one seed).
"""

from __future__ import annotations

import argparse

from trainers.config import load_config
from trainers.seed_runs import SeedRun, run_side_by_side


def main() -> None:
    """Run the configs' seed runs side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", nargs="+", help="configs (.yaml) and key=value overrides")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one core each)")
    args = parser.parse_args()
    overrides = [item for item in args.items if "=" in item]
    configs = [item for item in args.items if "=" not in item]
    runs = [SeedRun.of(path, overrides, one, resume=True)
            for path in configs for one in load_config(path, overrides).for_seeds()]
    run_side_by_side(runs, args.parallel)
    print("finished:", ", ".join(str(run.folder) for run in runs))


if __name__ == "__main__":
    main()
