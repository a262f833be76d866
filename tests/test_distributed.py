"""Training under torchrun (2 processes, gloo on CPU): the same update as one process."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.test_trainer import end_to_end_config
from trainers.learner import Learner, LossConfig, OptimConfig
from trainers.models import tiny_from_texts
from trainers.tokenize import TokenizedSequence

torch.set_num_threads(1)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2"]

RANK_SCRIPT = """
import pickle, sys, torch
torch.set_num_threads(1)
from trainers.distributed import GradientAverage, init_from_environment, shut_down
from trainers.learner import Learner

folder, rows_file, out = sys.argv[1:4]
ranks = init_from_environment()
rows = pickle.load(open(rows_file, "rb"))
shares = {"even": rows[ranks.rank * 2:(ranks.rank + 1) * 2],        # 2 rows each: 1 step
          "uneven": rows[:1] if ranks.rank == 0 else rows[1:]}      # 1 step against 2
for name, mine in shares.items():
    learner, _ = Learner.load(folder)
    learner.grad_sync = GradientAverage(ranks)
    learner.rl_step(mine)
    torch.save(learner.model.state_dict(), f"{out}/{name}-rank{ranks.rank}.pt")
shut_down(ranks)
"""


def make_rows(tokenizer, n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(12, 20))
        ids = [int(i) for i in rng.integers(5, len(tokenizer), length)]
        mask = [0] * 5 + [1] * (length - 5)
        advantage = float(rng.normal())
        rows.append(TokenizedSequence(input_ids=ids, loss_mask=mask,
                                      advantages=[advantage * m for m in mask]))
    return rows


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    texts = ["go north", "take the key", "open the door with the key", "look"] * 20
    model, tokenizer = tiny_from_texts(texts, vocab_size=300)
    rows = make_rows(tokenizer, 4)
    learner = Learner(model, tokenizer, OptimConfig(lr=1e-2, minibatch_size=2),
                      LossConfig(kl_coef=0.05))
    learner.save(folder / "start")
    (folder / "rows.pkl").write_bytes(pickle.dumps(rows))
    (folder / "rank.py").write_text(RANK_SCRIPT)
    done = subprocess.run([*TORCHRUN, str(folder / "rank.py"), str(folder / "start"),
                           str(folder / "rows.pkl"), str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, rows


def test_two_ranks_reach_the_parameters_of_one_process_with_the_same_minibatches(start):
    """Rank r trains on minibatch r; one process accumulates both minibatches (grad_accum
    2) before its step: after the update the weights agree to float tolerance."""
    folder, rows = start
    single, _ = Learner.load(folder / "start")
    single.optim = OptimConfig(lr=1e-2, minibatch_size=2, grad_accum=2)
    before = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.rl_step(rows)
    expected = single.model.state_dict()
    ranks = [torch.load(folder / f"even-rank{r}.pt") for r in (0, 1)]
    moved = max(float((expected[k] - before[k]).abs().max()) for k in expected)
    assert moved > 1e-3  # the update did something
    for name, value in expected.items():
        for weights in ranks:
            torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6)


def test_ranks_with_uneven_minibatches_step_together(start):
    """A rank with fewer minibatches joins the others' extra step (zero gradient): no hang,
    and both ranks hold the same weights afterwards."""
    folder, _ = start
    zero, one = (torch.load(folder / f"uneven-rank{r}.pt") for r in (0, 1))
    even = torch.load(folder / "even-rank0.pt")
    assert all(torch.equal(zero[k], one[k]) for k in zero)
    assert any(not torch.equal(zero[k], even[k]) for k in zero)  # two steps, not one


def test_agentgym_train_under_torchrun(tmp_path):
    """`torchrun --nproc-per-node 2 -m agentgym.cli train`: each rank plays its half of the
    tasks, one metrics file with every rank's env steps summed, checkpoints written once."""
    config = tmp_path / "config.yaml"
    config.write_text(end_to_end_config(tmp_path / "run", sft_episodes=2, parallel_envs=2))
    done = subprocess.run([*TORCHRUN, "-m", "agentgym.cli", "train", str(config)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert "eval/success_rate" in rows[-1]
    episodes = [json.loads(line) for name in ("episodes.jsonl", "episodes-rank1.jsonl")
                for line in (run / name).read_text().splitlines()]
    assert len(episodes) == 2 * 2 * 2  # 2 updates x 2 tasks x group of 2, half per rank
    groups = {e["group_id"] for e in episodes}
    per_rank = [{json.loads(line)["group_id"] for line in (run / name).read_text().splitlines()}
                for name in ("episodes.jsonl", "episodes-rank1.jsonl")]
    assert not per_rank[0] & per_rank[1] and len(groups) == 4  # ranks played different tasks
    steps = sum(len(e["turns"]) for e in episodes)
    assert sum(r["perf/env_steps"] for r in rows[1:]) == steps  # both ranks' steps counted
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["sft", "step-1",
                                                                       "step-2"]
    assert len((run / "train.log").read_text().splitlines()) >= 3  # rank 0's phases only
