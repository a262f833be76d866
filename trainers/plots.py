"""``agentgym plot RUN_DIR``: PNG curves of a training run's ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from agentgym.errors import InvalidOptionError, MissingDependencyError

PANELS = {
    "success.png": ("Success rate", ["charts/success_rate", "eval/success_rate"]),
    "return.png": ("Return", ["charts/return", "eval/mean_return"]),
    "losses.png": ("Losses", ["losses/loss", "losses/kl", "losses/clipfrac"]),
}


def read_metrics(run: str | Path) -> list[dict]:
    """Every row of a run's metrics file."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise InvalidOptionError(f"No metrics file at {path}; give a run folder that "
                                 "`agentgym train` wrote.")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pyplot():  # noqa: ANN202 - matplotlib's module
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "train") from exc
    return plt


def plot_comparison(runs: list[str | Path], path: str | Path,
                    key: str = "eval/success_rate") -> Path:
    """One PNG with ``key`` of several runs against the update, labelled by run folder."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for run in runs:
        points = [(r["step"], r[key]) for r in read_metrics(run) if key in r]
        if not points:
            raise InvalidOptionError(f"Run {run} has no {key!r} metric to compare.")
        axes.plot(*zip(*points), marker="o", label=Path(run).name)
    axes.set_title(key)
    axes.set_xlabel("update")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_run(run: str | Path) -> list[Path]:
    """Write success, return, loss and per-channel curves as PNGs in the run folder."""
    plt = _pyplot()
    rows = read_metrics(run)
    channels = sorted({k for r in rows for k in r if k.startswith("channels/")})
    panels = dict(PANELS, **{"channels.png": ("Reward channels (per episode)", channels)})
    written = []
    for name, (title, keys) in panels.items():
        figure, axes = plt.subplots(figsize=(7, 4))
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                axes.plot(*zip(*points), marker="o" if key.startswith("eval/") else None,
                          label=key)
        axes.set_title(title)
        axes.set_xlabel("update")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
        path = Path(run) / name
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
