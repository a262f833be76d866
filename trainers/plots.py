"""``agentgym plot RUN_DIR``: PNG curves of a training run's ``metrics.jsonl``.

A run folder holding ``seed-N`` runs (``seeds: [...]`` in the config) is drawn as the mean
over its seeds with a 95% band (a t-interval across seeds,
:func:`~agentgym.eval_stats.mean_interval`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentgym.errors import InvalidOptionError, MissingDependencyError
from agentgym.eval_stats import mean_interval
from trainers.runs import seed_runs

PANELS = {
    "success.png": ("Success rate", ["charts/success_rate", "eval/success_rate"]),
    "return.png": ("Return", ["charts/return", "eval/mean_return"]),
    "losses.png": ("Losses", ["losses/loss", "losses/kl", "losses/clipfrac"]),
}


X_LABELS = {"step": "update", "perf/env_steps_total": "env steps"}


def curve(runs: list[Path], key: str, x: str = "step") -> tuple[list[float], list[float],
                                                               list[float], list[float]]:
    """``key`` against ``x``: the mean over ``runs`` and its 95% band.

    ``x`` is the update or a logged count such as ``perf/env_steps_total``. The runs'
    points pair up in order, the i-th with the i-th, drawn at their mean ``x``, so seeds
    whose budget ran out at different updates still meet at their last evaluation; only as
    many points as every run logged are drawn (a run still going does not bend the mean).
    A row without ``x`` (the evaluation before any env step) counts as 0.
    """
    series = [[(r.get(x, 0), r[key]) for r in read_metrics(run) if key in r] for run in runs]
    count = min((len(points) for points in series), default=0)
    xs = [float(sum(points[i][0] for points in series)) / len(series) for i in range(count)]
    bands = [mean_interval([points[i][1] for points in series]) for i in range(count)]
    means, lows, highs = (list(column) for column in zip(*bands)) if bands else ([], [], [])
    return xs, means, lows, highs


def _draw(axes: Any, runs: list[Path], key: str, label: str, marker: str | None,
          x: str = "step") -> bool:
    steps, means, lows, highs = curve(runs, key, x)
    if not steps:
        return False
    line = axes.plot(steps, means, marker=marker, label=label)[0]
    if len(runs) > 1:
        axes.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.2)
    return True


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
                    key: str = "eval/success_rate", x: str = "step") -> Path:
    """One PNG with ``key`` of several runs against ``x``, labelled by run folder.

    ``x`` is the update, or env steps (``perf/env_steps_total``) for runs of equal env-step
    budgets whose updates differ in size. A folder of seeds is one line, its mean, with its
    95% band.
    """
    plt = _pyplot()
    figure = comparison_figure(runs, key, x)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def comparison_figure(runs: list[str | Path], key: str = "eval/success_rate",
                      x: str = "step") -> Any:
    """The figure :func:`plot_comparison` saves; a rate's axis starts at zero."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for run in runs:
        seeds = seed_runs(run)
        label = Path(run).name + (f" ({len(seeds)} seeds, 95% band)" if len(seeds) > 1 else "")
        if not _draw(axes, seeds, key, label, "o", x):
            plt.close(figure)
            raise InvalidOptionError(f"Run {run} has no {key!r} metric to compare.")
    axes.set_title(key)
    axes.set_xlabel(X_LABELS.get(x, x))
    if key.endswith("_rate"):
        axes.set_ylim(bottom=0)  # a zoomed axis makes a one-game change look large
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def plot_run(run: str | Path) -> list[Path]:
    """Write success, return, loss and per-channel curves as PNGs in the run folder."""
    plt = _pyplot()
    seeds = seed_runs(run)
    rows = [row for seed in seeds for row in read_metrics(seed)]
    channels = sorted({k for r in rows for k in r if k.startswith("channels/")})
    panels = dict(PANELS, **{"channels.png": ("Reward channels (per episode)", channels)})
    written = []
    for name, (title, keys) in panels.items():
        figure, axes = plt.subplots(figsize=(7, 4))
        for key in keys:
            _draw(axes, seeds, key, key, "o" if key.startswith("eval/") else None)
        axes.set_title(title + (f" ({len(seeds)} seeds: mean, 95% band)" if len(seeds) > 1
                                else ""))
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
