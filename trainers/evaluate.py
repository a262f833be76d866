"""``agentgym eval``: a checkpoint on held-out tasks, played as it was trained, with intervals.

A checkpoint inside a training run (``RUN/checkpoints/step-N``) is evaluated with that run's
settings (env and kwargs, stop strings, reply length, history window, evaluation
temperature and tasks), read from ``RUN/config.json``; anything given on the command line
wins, and the report says where each setting came from. With no config it says so and uses
the defaults. ``samples`` episodes per task give pass@1 and pass@k (:mod:`agentgym.eval_stats`),
every rate with its 95% interval, broken down by task kind where the env has several.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.errors import AgentGymError
from agentgym.eval_stats import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    pass_at_k,
    wilson_interval,
)
from agentgym.records import Episode
from trainers.runs import checkpoints_in


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint is played; ``source`` says where the settings came from."""

    env_id: str = "TextWorld-v0"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    split: str = "test"
    tasks: int = 32
    samples: int = 1
    seed: int = 0
    temperature: float = 0.0
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    history_window: int | None = None
    parallel: int = 8
    source: str = "defaults"


def run_config_path(checkpoint: str | Path) -> Path | None:
    """``RUN/config.json`` of a checkpoint saved by ``agentgym train``, if there is one."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint, checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.json").is_file() and (folder / "metrics.jsonl").exists():
            return folder / "config.json"
    return None


def settings_for(checkpoint: str | Path, **given: Any) -> EvalSettings:
    """The run's settings for ``checkpoint``, with ``given`` (not ``None``) on top."""
    given = {key: value for key, value in given.items() if value is not None}
    path = run_config_path(checkpoint)
    if path is None:
        warnings.warn(f"No training run around {checkpoint} (no config.json with a "
                      "metrics.jsonl beside it): evaluating with the defaults and what "
                      "the command line gives.", stacklevel=2)
        return EvalSettings(**given)
    from trainers.config import load_config

    config = load_config(path)
    env, mixed = _the_env(config, given.get("env_id")), len(config.envs) > 1
    if given.get("env_id") == env.label:  # named by its name in the mix
        given["env_id"] = env.id
    run = {"env_id": env.id, "env_kwargs": dict(env.kwargs),
           "split": env.test_split, "tasks": config.eval.tasks, "seed": config.seed,
           "temperature": config.eval.temperature,
           "max_new_tokens": config.sampling.max_new_tokens,
           "stop": tuple(config.sampling.stop),
           "history_window": config.sampling.history_window,
           "parallel": config.rl.parallel_envs}
    changed = sorted(key for key in given if given[key] != run.get(key))
    note = f"the run's {path}" + (f", with {', '.join(changed)} as given" if changed else "")
    if mixed:
        note += (f" (its env {env.label}, one of {', '.join(c.label for c in config.envs)}; "
                 "--env picks another)")
    return EvalSettings(**{**run, **given, "source": note})


def _the_env(config: Any, env_id: str | None) -> Any:
    """The run's env that ``--env`` names (by id or name), else its first."""
    return next((c for c in config.envs if env_id in (c.id, c.label)), config.envs[0])


def evaluate_checkpoint(checkpoint: str | Path, settings: EvalSettings,
                        progress: bool = True, out: str | Path | None = None
                        ) -> dict[str, Any]:
    """Play ``settings.samples`` episodes of each task with the checkpoint; the report."""
    import agentgym
    from agentgym.hf_policy import TransformersPolicy
    from trainers.models import load_pretrained

    model, tokenizer = load_pretrained(checkpoint)
    envs = [agentgym.make(settings.env_id, **settings.env_kwargs)
            for _ in range(settings.parallel)]
    policy = TransformersPolicy(model, tokenizer, temperature=settings.temperature,
                                max_new_tokens=settings.max_new_tokens,
                                stop=list(settings.stop), seed=settings.seed)
    try:
        episodes = agentgym.rollout(envs, policy, tasks=settings.tasks,
                                    group_size=settings.samples, seed=settings.seed,
                                    split=settings.split, out=out, progress=progress,
                                    history_window=settings.history_window)
    finally:
        for env in envs:
            env.close()
    return {"checkpoint": str(checkpoint), "settings": dataclasses.asdict(settings),
            **report(episodes, settings.samples)}


def evaluate_path(path: str | Path, given: dict[str, Any], progress: bool = True,
                  out: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint, a run's latest checkpoint, or each seed's latest, in one report.

    Seeds are pooled: every task carries its ``run`` (``seed-N``), so a comparison pairs
    the same seed's episodes of the same task; ``runs`` holds each seed's own rates.
    """
    checkpoints = checkpoints_in(path)
    reports = [evaluate_checkpoint(checkpoint, settings_for(checkpoint, **given), progress,
                                   out) for checkpoint in checkpoints]
    if len(reports) == 1:
        return reports[0]
    tasks = [{**task, "run": checkpoint.parent.parent.name}
             for checkpoint, one in zip(checkpoints, reports) for task in one["tasks"]]
    samples = reports[0]["settings"]["samples"]
    return {"checkpoint": str(path), "settings": reports[0]["settings"],
            **rates_of(tasks, samples),
            "runs": {str(c.parent.parent.name): one["overall"]
                     for c, one in zip(checkpoints, reports)}}


def report(episodes: list[Episode], samples: int) -> dict[str, Any]:
    """Rates with 95% intervals, overall and per task kind, and every task's results."""
    return rates_of(per_task(episodes), samples)


def rates_of(tasks: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    """:func:`report` from tasks' results (``per_task``), e.g. several runs' pooled."""
    kinds: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        kinds[task["kind"] or "all"].append(task)
    out = {"overall": _rates(tasks, samples), "tasks": tasks}
    if len(kinds) > 1:
        out["by_kind"] = {kind: _rates(members, samples) for kind, members in sorted(
            kinds.items())}
    return out


def per_task(episodes: list[Episode]) -> list[dict[str, Any]]:
    """Each task's successes and returns, in sample order (paired comparisons use them)."""
    tasks: dict[str, dict[str, Any]] = {}
    for episode in episodes:
        task = tasks.setdefault(episode.task_id, {
            "task_id": episode.task_id, "kind": episode.metadata.get("task_kind"),
            "successes": [], "returns": []})
        task["successes"].append(bool(episode.outcome.success))
        task["returns"].append(float(episode.outcome.total_reward))
    return list(tasks.values())


def _rates(tasks: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    wins = sum(sum(t["successes"]) for t in tasks)
    played = sum(len(t["successes"]) for t in tasks)
    pass1 = [sum(t["successes"]) / len(t["successes"]) for t in tasks]
    returns = [float(np.mean(t["returns"])) for t in tasks]
    rates: dict[str, Any] = {
        "tasks": len(tasks), "episodes": played,
        "success_rate": wins / played,
        "success_rate_interval": wilson_interval(wins, played),
        "pass@1": float(np.mean(pass1)), "pass@1_interval": bootstrap_interval(pass1),
        "mean_return": float(np.mean(returns)),
        "mean_return_interval": bootstrap_interval(returns)}
    if samples > 1:
        at_k = [pass_at_k(len(t["successes"]), sum(t["successes"]), samples) for t in tasks]
        rates[f"pass@{samples}"] = float(np.mean(at_k))
        rates[f"pass@{samples}_interval"] = bootstrap_interval(at_k)
    return rates


class ReportError(AgentGymError, ValueError):
    """An evaluation report that cannot be read or compared."""


def load_report(path: str | Path) -> dict[str, Any]:
    """An evaluation report written by ``agentgym eval --json``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read the report {path}: {exc}") from None
    if not isinstance(data, dict) or "tasks" not in data or "overall" not in data:
        raise ReportError(f"{path} is not an evaluation report (written by agentgym eval "
                          "--json): it has no 'tasks' and 'overall'.")
    return data


def report_table(data: dict[str, Any]) -> Any:
    """A rich table of a report: each rate with its interval, overall and per kind."""
    from rich.table import Table

    settings = data["settings"]
    table = Table(title=f"{data['checkpoint']} on {settings['env_id']} "
                        f"({settings['split']}): {data['overall']['tasks']} tasks x "
                        f"{settings['samples']}", caption=f"settings: {settings['source']}")
    rows = {"all": data["overall"], **data.get("by_kind", {}), **data.get("runs", {})}
    table.add_column("tasks")
    metrics = [key for key in data["overall"] if f"{key}_interval" in data["overall"]]
    for metric in metrics:
        table.add_column(metric, justify="right")
    for name, rates in rows.items():
        cells = [f"{name} ({rates['tasks']})"]
        for metric in metrics:
            low, high = rates[f"{metric}_interval"]
            cells.append(f"{rates[metric]:.3f} [{low:.3f}, {high:.3f}]")
        table.add_row(*cells)
    return table



def compare(a: dict[str, Any], b: dict[str, Any], alpha: float = 0.05) -> dict[str, Any]:
    """B against A on the tasks both played: McNemar on success, a paired bootstrap on return.

    Episodes pair up by task and sample number (the same reset seed and sampling seed when
    both were evaluated with the same settings), and by seed run when seeds are pooled.
    """
    theirs = {_pair_key(task): task for task in b["tasks"]}
    shared = [(task, theirs[_pair_key(task)]) for task in a["tasks"]
              if _pair_key(task) in theirs]
    if not shared:
        raise ReportError("The two reports share no task: evaluate both on the same env, "
                          "split, seed and tasks.")
    pairs = [(x, y) for ta, tb in shared for x, y in zip(ta["successes"], tb["successes"])]
    only_a, only_b = sum(x and not y for x, y in pairs), sum(y and not x for x, y in pairs)
    differences = [float(np.mean(tb["returns"]) - np.mean(ta["returns"])) for ta, tb in shared]
    p_success = mcnemar_exact(only_a, only_b)
    p_return, interval = paired_bootstrap(differences)
    return {"tasks": len(shared), "pairs": len(pairs), "only_a": only_a, "only_b": only_b,
            "success_a": sum(x for x, _ in pairs) / len(pairs),
            "success_b": sum(y for _, y in pairs) / len(pairs),
            "p_success": p_success, "return_difference": float(np.mean(differences)),
            "return_difference_interval": interval, "p_return": p_return,
            "verdict": verdict(only_a, only_b, p_success, alpha)}


def _pair_key(task: dict[str, Any]) -> tuple[str, str]:
    return task.get("run", ""), task["task_id"]


def load_or_evaluate(path: str | Path, progress: bool = True) -> dict[str, Any]:
    """A report file as it is; a checkpoint or run folder evaluated with its run's settings."""
    if str(path).endswith(".json"):
        return load_report(path)
    return evaluate_path(path, {}, progress)


def verdict(only_a: int, only_b: int, p: float, alpha: float = 0.05) -> str:
    """One line on success: which is better, or that the test cannot tell them apart."""
    if p >= alpha or only_a == only_b:
        return f"no significant difference in success (McNemar p = {p:.3g})"
    better, worse = ("B", "A") if only_b > only_a else ("A", "B")
    return f"{better} better than {worse} in success, p = {p:.3g} (McNemar, exact)"
