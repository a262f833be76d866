"""Seed runs side by side: each ``agentgym train`` of one seed in its own process.

A :class:`SeedRun` is one config at one seed. :func:`run_side_by_side` starts them
``parallel`` at once with one torch thread each, a run whose ``sft.start_from`` names
another run's warm-up only once that warm-up exists, and a bar counting finished runs.
A run that ended well leaves ``done.json`` in its folder; resumed, such runs are skipped and
the others go on from their last checkpoint, so an experiment of many arms and seeds can
be stopped and started again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.config import TrainConfig


@dataclass
class SeedRun:
    """One config at one seed, as an ``agentgym train`` command."""

    config: TrainConfig
    command: list[str]
    resume: bool = False

    @classmethod
    def of(cls, config_path: str | Path, overrides: list[str], one: TrainConfig,
           resume: bool = False) -> SeedRun:
        """The run of ``one`` (a config of :meth:`TrainConfig.for_seeds`)."""
        return cls(one, [sys.executable, "-m", "agentgym.cli", "train", str(config_path),
                         *overrides, f"seed={one.seed}", "seeds=[]", f"output={one.output}",
                         *(["--resume"] if resume else [])], resume)

    @property
    def folder(self) -> Path:
        """Where the run writes."""
        return Path(self.config.output)

    def finished(self) -> bool:
        """Resumed, and it ended well before (``done.json``)."""
        return self.resume and (self.folder / "done.json").is_file()

    def ready(self) -> bool:
        """Its warm-up, if it starts from another run's, exists."""
        start = self.config.warm_up_folder
        return start is None or (start / "trainer_state.json").is_file()

    def start(self) -> tuple[subprocess.Popen, Any, float]:
        """The process, its console log, and when it started."""
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "console.log").open("a" if self.resume else "w")
        process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        return process, log, time.monotonic()


def run_side_by_side(runs: list[SeedRun], parallel: int) -> None:
    """Run ``runs`` (those not finished before), ``parallel`` at once.

    Raises:
        TrainingError: naming the runs that failed (their ``console.log``), or the runs
            whose warm-up no run makes.
    """
    from rich.progress import Progress

    from trainers.train import TrainingError

    waiting = [run for run in runs if not run.finished()]
    running: list[tuple[SeedRun, tuple[subprocess.Popen, Any, float]]] = []
    failed: list[SeedRun] = []
    with Progress() as bar:
        done = bar.add_task(f"runs ({parallel} at once)", total=len(waiting))
        while waiting or running:
            for run in [r for r in waiting if r.ready()][:parallel - len(running)]:
                waiting.remove(run)
                running.append((run, run.start()))
            if not running and waiting:
                raise TrainingError("no run makes the warm-up these start from: " + ", ".join(
                    f"{r.folder} (sft.start_from: {r.config.sft.start_from})" for r in waiting))
            time.sleep(1)
            for item in [item for item in running if item[1][0].poll() is not None]:
                running.remove(item)
                run, (process, log, started) = item
                log.close()
                if process.returncode == 0:
                    (run.folder / "done.json").write_text(json.dumps(
                        {"seconds": round(time.monotonic() - started, 1)}))
                else:
                    failed.append(run)
                bar.advance(done)
    if failed:
        raise TrainingError("seed runs failed: " + ", ".join(
            f"seed {run.config.seed} (see {run.folder / 'console.log'})" for run in failed))
