"""Where a training run's metrics go: ``metrics.jsonl`` always, TensorBoard and wandb on request.

``logging: [jsonl, tensorboard, wandb]`` in a training config picks the sinks. Every row the
trainer logs (a dict with ``step`` and metric names such as ``charts/success_rate``) goes to
each of them unchanged; non-numeric values stay in the JSONL file only.

``metrics.jsonl`` is written whatever the list says: resuming, ``agentgym plot`` and
``agentgym eval`` read it, so it is the run's record, not one sink among equals.

* TensorBoard: event files in ``OUTPUT/tensorboard`` (``tensorboard --logdir OUTPUT``), the
  config as text under ``config``.
* wandb: a run in ``OUTPUT/wandb`` with the config attached. ``wandb.mode`` is ``offline``
  by default (no account or network needed; ``wandb sync OUTPUT/wandb/offline-run-*``
  uploads it later); ``online`` needs ``wandb login`` first.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from agentgym.errors import MissingDependencyError


class MetricSink(Protocol):
    """Takes every logged row; ``close`` flushes and ends the run's record."""

    def log(self, row: dict[str, Any]) -> None:
        """Record one row (``step`` plus metrics)."""

    def close(self) -> None:
        """Flush and release whatever the sink holds."""


class JsonlSink:
    """One JSON line per row in ``path``, flushed at once (a killed run keeps every row)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a")

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"

    def log(self, row: dict[str, Any]) -> None:
        """Append ``row`` as a line."""
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class TensorBoardSink:
    """Scalars in TensorBoard event files under ``folder``, at each row's ``step``."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise MissingDependencyError("tensorboard", "logging") from exc
        self.folder = folder
        self._writer = SummaryWriter(log_dir=str(folder))
        self._writer.add_text("config", f"```\n{json.dumps(config, indent=2)}\n```")

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.folder)!r})"

    def log(self, row: dict[str, Any]) -> None:
        """Each numeric value of ``row`` as a scalar at ``row['step']``."""
        for name, value in scalars(row).items():
            self._writer.add_scalar(name, value, global_step=row.get("step", 0))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


class WandbSink:
    """A wandb run (offline by default) in ``folder``, with the config attached."""

    def __init__(self, folder: Path, config: dict[str, Any], project: str, mode: Any,
                 name: str | None = None) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise MissingDependencyError("wandb", "logging") from exc
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._run = wandb.init(project=project, dir=str(folder), mode=mode, config=config,
                               name=name, reinit="create_new")

    def __repr__(self) -> str:
        return f"WandbSink({str(self.folder)!r})"

    def log(self, row: dict[str, Any]) -> None:
        """The numeric values of ``row`` at ``row['step']``."""
        self._run.log(scalars(row), step=int(row.get("step", 0)))

    def close(self) -> None:
        """Finish the run (an offline run is then complete on disk)."""
        self._run.finish()


class MetricLog:
    """Every sink a run logs to, fed one row at a time."""

    def __init__(self, sinks: list[MetricSink]) -> None:
        self.sinks = sinks

    def __repr__(self) -> str:
        return f"MetricLog({self.sinks!r})"

    def __call__(self, row: dict[str, Any]) -> None:
        """Give ``row`` to every sink."""
        for sink in self.sinks:
            sink.log(row)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()


def open_metric_log(out: Path, names: Sequence[str], config: dict[str, Any],
                    wandb_project: str = "agentgym", wandb_mode: str = "offline") -> MetricLog:
    """The run's sinks: ``metrics.jsonl`` in ``out``, then those ``names`` asks for."""
    sinks: list[MetricSink] = [JsonlSink(out / "metrics.jsonl")]
    if "tensorboard" in names:
        sinks.append(TensorBoardSink(out / "tensorboard", config))
    if "wandb" in names:
        sinks.append(WandbSink(out / "wandb", config, wandb_project, wandb_mode,
                               name=out.name))
    return MetricLog(sinks)


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of ``row`` (``step`` and booleans aside) as floats."""
    return {name: float(value) for name, value in row.items()
            if name != "step" and isinstance(value, numbers.Real)
            and not isinstance(value, bool)}
