"""Training run folders: a run, a folder of seed runs, and the checkpoints inside them."""

from __future__ import annotations

from pathlib import Path

from agentgym.errors import InvalidOptionError


def seed_runs(run: str | Path) -> list[Path]:
    """The runs a folder holds: itself, or its ``seed-N`` runs."""
    run = Path(run)
    if (run / "metrics.jsonl").is_file():
        return [run]
    seeds = sorted(p for p in run.glob("seed-*") if (p / "metrics.jsonl").is_file())
    if not seeds:
        raise InvalidOptionError(f"No metrics file at {run / 'metrics.jsonl'} nor seed-N runs "
                                 "inside it; give a run folder that `agentgym train` wrote.")
    return seeds


def latest_checkpoint(run: str | Path) -> Path | None:
    """The run's last ``checkpoints/step-N`` (else its SFT checkpoint, else ``None``)."""
    steps = sorted(Path(run, "checkpoints").glob("step-*"),
                   key=lambda p: int(p.name.split("-")[1]))
    if steps:
        return steps[-1]
    sft = Path(run, "checkpoints", "sft")
    return sft if sft.exists() else None


def checkpoints_in(path: str | Path) -> list[Path]:
    """What to evaluate at ``path``: a checkpoint itself, or each run's latest checkpoint."""
    path = Path(path)
    if not (path / "metrics.jsonl").is_file() and not any(path.glob("seed-*/metrics.jsonl")):
        return [path]  # a checkpoint (or a model folder)
    found = [(run, latest_checkpoint(run)) for run in seed_runs(path)]
    missing = [str(run) for run, checkpoint in found if checkpoint is None]
    if missing:
        raise InvalidOptionError(f"No checkpoint in {', '.join(missing)} yet.")
    return [checkpoint for _, checkpoint in found if checkpoint is not None]
