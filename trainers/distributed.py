"""Training under ``torchrun``: which rank this process is, and what ranks exchange.

``torchrun --nproc-per-node N -m agentgym.cli train CONFIG`` starts N copies of the trainer.
Each rank plays its share of an update's tasks (whole groups: an estimator needs every
episode of a group), computes its gradients, and the ranks average them with one
all-reduce before every optimiser step, so all ranks take the same step and keep the same
weights. That is gradient accumulation across processes: with the same minibatches, two
ranks give the parameters one process would reach with ``grad_accum`` twice as large.

Rank 0 prepares tasks and builds the model first (the others then find generated games on
disk), evaluates, writes metrics and checkpoints; every rank's update metrics are merged
into one row (means; sums for counts such as env steps).

The backend is ``gloo`` on CPU and ``nccl`` when CUDA is there. FSDP is not offered: it
pays off for models larger than one device holds, which nothing here can test.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentgym.errors import InvalidOptionError

SUMMED = ("perf/env_steps", "tokens/trained", "sampler/tokens", "tree/env_steps")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process logs, evaluates and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.world > 1

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the body, then the others (what it made on disk, they reuse)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def share_of(self, tasks: int) -> int:
        """How many of an update's ``tasks`` this rank plays (the same on every rank)."""
        if tasks % self.world:
            raise InvalidOptionError(
                f"rl.tasks ({tasks}) must divide evenly among the {self.world} training "
                f"processes: use a multiple of {self.world}.")
        return tasks // self.world

    def broadcast_parameters(self, model: Any) -> None:
        """Give every rank rank 0's weights."""
        if self.distributed:
            import torch.distributed as dist

            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def merged(self, row: dict[str, Any]) -> dict[str, Any]:
        """Every rank's metrics row as one, the same on every rank.

        Each metric is its mean over the ranks that logged it; counts are summed.
        """
        if not self.distributed:
            return row
        import torch.distributed as dist

        rows: list[Any] = [None] * self.world
        dist.all_gather_object(rows, row)
        merged: dict[str, Any] = {}
        for key in dict.fromkeys(k for r in rows for k in r):
            values = [r[key] for r in rows if key in r]
            if key == "step" or not all(isinstance(v, (int, float)) for v in values):
                merged[key] = values[0]
            else:
                total = sum(values)
                merged[key] = total if key in SUMMED else total / len(values)
        return merged


class GradientAverage:
    """Averages gradients over the ranks before each optimiser step, one all-reduce each.

    A rank with fewer minibatches than the others still joins their steps, with a zero
    gradient (:meth:`steps_behind`), so every rank steps in lockstep.
    """

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks

    def __repr__(self) -> str:
        return f"GradientAverage(world={self.ranks.world})"

    def __call__(self, parameters: list[Any]) -> None:
        """Replace each parameter's gradient with its mean over the ranks."""
        import torch
        import torch.distributed as dist

        for p in parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in parameters])
        dist.all_reduce(flat)
        flat /= self.ranks.world
        offset = 0
        for p in parameters:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def steps_behind(self, steps: int) -> int:
        """How many more optimiser steps the busiest rank took than this one's ``steps``."""
        import torch
        import torch.distributed as dist

        most = torch.tensor([steps])
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        return int(most.item()) - steps


def init_from_environment() -> Ranks:
    """The ranks ``torchrun`` describes (``RANK``, ``WORLD_SIZE``), their group started.

    Without those variables: one process. Rank 0 may work alone for a long time (generating
    tasks, SFT) while the others wait, hence the long timeout.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(hours=6))
    return Ranks(dist.get_rank(), dist.get_world_size())


def shut_down(ranks: Ranks) -> None:
    """End the process group (a no-op for one process)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
