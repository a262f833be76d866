"""``agentgym train CONFIG.yaml``: SFT warm-up on expert episodes, then RL with per-turn credit.

One update, top to bottom:

    episodes   = rollout(envs, policy, tasks x group_size)          # one batched generate per turn
    rewards    = reward_spec(episode)                               # per turn, from the channels
    advantages = estimator(Batch(episodes, rewards))                # e.g. SALT over GRPO
    rows       = tokenize_episode(episode, tokenizer, advantages)   # loss mask on generated tokens
    metrics    = learner.rl_step(rows)                              # clipped policy gradient

Every update appends a line of metrics to ``OUTPUT/metrics.jsonl`` (and to TensorBoard or
wandb, see :mod:`trainers.metric_sinks`) and its episodes (with
their advantages) to ``OUTPUT/episodes.jsonl``; evaluations on the held-out split go to the
same metrics file; checkpoints go to ``OUTPUT/checkpoints/step-N`` and ``--resume`` continues
from the latest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agentgym.errors import AgentGymError
from agentgym.records import Episode
from agentgym.summary import summarize
from trainers.config import TrainConfig
from trainers.env_mix import EnvMix
from trainers.metric_sinks import open_metric_log
from trainers.policy_gradient import length_grouped
from trainers.runs import latest_checkpoint


class TrainingError(AgentGymError, RuntimeError):
    """A training job that did not finish."""


def build_policy_model(config: TrainConfig, mix: EnvMix) -> tuple[Any, Any]:
    """The model and tokenizer: a tiny one trained on the envs' own text, or a local one."""
    import agentgym
    from trainers.models import load_pretrained, tiny_from_texts

    if config.model.name != "tiny":
        return load_pretrained(config.model.name)
    corpus = []
    for env_config, envs in mix:
        corpus.append(envs[0].system_prompt())
        for policy in (agentgym.ExpertPolicy(), agentgym.RandomPolicy(config.seed)):
            for episode in agentgym.rollout(envs[0], policy, tasks=16,
                                            seed=10_000 + config.seed,
                                            split=env_config.train_split, progress=False):
                corpus += [episode.instruction, episode.final_observation]
                corpus += [t.observation for t in episode.turns]
                corpus += [t.action for t in episode.turns]
                corpus += [command for t in episode.turns
                           for command in (t.info.get("admissible_actions") or [])]
    return tiny_from_texts(corpus * 4, vocab_size=config.model.vocab_size, seed=config.seed,
                           hidden=config.model.hidden, layers=config.model.layers,
                           heads=config.model.heads)


def rows_for(episodes: list[Episode], advantages: list[Any] | None, tokenizer: Any,
             max_length: int) -> list[Any]:
    """Token rows of the episodes, advantages broadcast to their generated tokens."""
    from trainers.tokenize import tokenize_episode
    from trainers.tree_credit import fold_shared_turns

    context_turns = [0] * len(episodes)
    if advantages is not None and any("tree" in e.metadata for e in episodes):
        advantages, context_turns = fold_shared_turns(episodes, advantages)  # trained once
    rows = []
    for n, episode in enumerate(episodes):
        if not episode.turns:
            continue
        values = list(map(float, advantages[n])) if advantages is not None else None
        # a windowed policy saw a different context per reply: one row per reply then
        windowed = episode.history_window is not None
        rows += tokenize_episode(episode, tokenizer, values,
                                 layout="per_turn" if windowed else "concatenated",
                                 max_length=max_length, truncation="drop_turns",
                                 context_turns=context_turns[n])
    return rows


def evaluate(mix: EnvMix, model: Any, tokenizer: Any, config: TrainConfig,
             progress: bool = False) -> dict[str, float]:
    """Success and return on held-out tasks of every env (``progress``: the rollout's bar).

    With several envs, each gets ``eval.tasks`` tasks and its own figures
    (``eval/<name>/...``); ``eval/success_rate`` pools them all.
    """
    import agentgym
    from agentgym.hf_policy import TransformersPolicy

    policy = TransformersPolicy(model, tokenizer, temperature=config.eval.temperature,
                                max_new_tokens=config.sampling.max_new_tokens,
                                stop=config.sampling.stop, seed=config.seed)
    if not config.eval.tasks:
        return {}
    metrics, everything = {}, []
    for env_config, envs in mix:
        episodes = agentgym.rollout(envs, policy, tasks=config.eval.tasks, seed=config.seed,
                                    split=env_config.test_split, progress=progress,
                                    history_window=config.sampling.history_window)
        everything += episodes
        if mix.mixed:
            metrics.update(_eval_figures(episodes, f"eval/{env_config.label}/"))
    return _eval_figures(everything, "eval/") | metrics


def _eval_figures(episodes: list[Episode], prefix: str) -> dict[str, float]:
    stats = summarize(episodes)
    return {f"{prefix}success_rate": stats["success_rate"],
            f"{prefix}mean_return": stats["mean_return"],
            f"{prefix}invalid_rate": stats["invalid_rate"]}


def rollout_policy(config: TrainConfig, learner: Any, out: Path) -> Any:
    """The policy that plays training episodes: the model itself, or vLLM fed its weights."""
    sampling = config.sampling
    kwargs: dict[str, Any] = {"temperature": sampling.temperature, "top_p": sampling.top_p,
              "stop": sampling.stop, "max_new_tokens": sampling.max_new_tokens,
              "seed": config.seed}
    if sampling.engine == "vllm":
        from agentgym.vllm_policy import VLLMPolicy

        folder = out / "rollout-model"  # vLLM starts from files; later weights come in memory
        learner.inference_model().save_pretrained(folder)
        learner.tokenizer.save_pretrained(folder)
        return VLLMPolicy(folder, max_model_len=config.rl.max_length, **kwargs)
    from agentgym.hf_policy import TransformersPolicy

    return TransformersPolicy(learner.model, learner.tokenizer, **kwargs)


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run a training job; return its output folder.

    Under ``torchrun`` each process is one rank (:mod:`trainers.distributed`).
    """
    import torch
    from rich.console import Console

    from agentgym.store import EpisodeWriter
    from trainers.distributed import GradientAverage, init_from_environment, shut_down
    from trainers.learner import Learner

    torch.set_num_threads(1)
    ranks = init_from_environment()
    if ranks.distributed and config.sampling.engine == "vllm":
        raise TrainingError("sampling.engine: vllm runs in one process; under torchrun use "
                            "the transformers engine.")
    ranks.share_of(config.rl.tasks)  # refuses a split that is not even, before any work
    out = Path(config.output)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    phases = Phases(Console(), out / "train.log" if ranks.main else None,
                    progress and ranks.main)
    mix = EnvMix.make(config.envs, config.rl.parallel_envs)
    latest = latest_checkpoint(out) if resume else None
    if latest is not None:
        learner, _ = Learner.load(latest)
        phases.note(f"resumed from {latest} (step {learner.step})")
    else:
        learner = _starting_learner(mix, config, phases, out, ranks)
    if ranks.distributed:
        learner.grad_sync = GradientAverage(ranks)
    log = open_metric_log(out, config.logging, config.to_dict(), config.wandb.project,
                          config.wandb.mode) if ranks.main else None
    if latest is None and log is not None:
        with phases.timed("evaluation before RL") as done:
            first = evaluate(mix, learner.model, learner.tokenizer, config, progress)
            done(_brief(first))
        log({"step": 0, **first})
    policy = rollout_policy(config, learner, out)
    writer = EpisodeWriter(out / ("episodes.jsonl" if ranks.main
                                  else f"episodes-rank{ranks.rank}.jsonl"))
    spent = _env_steps_logged(out) if latest is not None else 0
    budget = config.rl.env_steps
    with phases.bar("RL updates", config.rl.steps, learner.step) as advance:
        for update in range(learner.step + 1, config.rl.steps + 1):
            row = ranks.merged(_update(update, mix, policy, learner, config, writer, ranks))
            spent += row["perf/env_steps"]
            row["perf/env_steps_total"] = spent
            last = update == config.rl.steps or (budget is not None and spent >= budget)
            if hasattr(policy, "load_weights"):  # a separate engine: give it the new weights
                policy.load_weights(learner.inference_model())
            if log is not None:
                if update % config.eval.every == 0 or last:
                    row.update(evaluate(mix, learner.model, learner.tokenizer, config))
                log(row)
                if update % config.checkpoint_every == 0 or last:
                    learner.save(out / "checkpoints" / f"step-{update}", {"update": update})
            advance(_status(row))
            if last:
                break
    writer.close()
    if log is not None:
        log.close()
    mix.close()
    shut_down(ranks)
    return out


def _starting_learner(mix: EnvMix, config: TrainConfig, phases: Phases, out: Path,
                      ranks: Any) -> Any:
    """The learner RL starts from: a new model after the SFT warm-up.

    Under torchrun rank 0 makes it (tasks generated, model built, SFT) and saves it; the
    other ranks load that checkpoint, optimiser state included, so every rank starts alike.
    """
    from trainers.learner import Learner

    start = out / "checkpoints" / "sft"
    with ranks.main_first():
        if not ranks.main:
            return Learner.load(start)[0]
        prepare_tasks(mix, config, phases)
        if config.sft.start_from is not None:
            learner = warmed_up_elsewhere(config, phases)
            learner.save(start, {"update": 0})
            return learner
        model, tokenizer = build_policy_model(config, mix)
        learner = Learner(model, tokenizer, config.optim, config.loss, config.lora)
        _warm_up(learner, mix, config, phases, out)
        if ranks.distributed and not start.is_dir():  # no SFT: the others need the model
            learner.save(start, {"update": 0})
        return learner


def warmed_up_elsewhere(config: TrainConfig, phases: Phases) -> Any:
    """The learner at the end of another run's warm-up (``sft.start_from``).

    It has this run's optimiser and loss settings: what this run's own SFT would have
    handed RL.
    """
    from trainers.learner import Learner

    folder = config.warm_up_folder
    assert folder is not None
    if not (folder / "trainer_state.json").is_file():
        raise TrainingError(f"sft.start_from: {folder} is not a checkpoint folder (no "
                            f"trainer_state.json); give a run's checkpoints/sft.")
    saved, _ = Learner.load(folder)
    learner = Learner(saved.model, saved.tokenizer, config.optim, config.loss, config.lora)
    learner.optimizer.load_state_dict(saved.optimizer.state_dict())  # Adam's moments
    for group in learner.optimizer.param_groups:
        group["lr"], group["weight_decay"] = config.optim.lr, config.optim.weight_decay
    phases.note(f"warm-up from {folder} (SFT not run here)")
    return learner


def train_seeds_side_by_side(config_path: str | Path, overrides: list[str],
                             config: TrainConfig, parallel: int, resume: bool = False) -> None:
    """Train each of ``config.seeds`` in its own process, ``parallel`` at once."""
    from trainers.seed_runs import SeedRun, run_side_by_side

    run_side_by_side([SeedRun.of(config_path, overrides, one, resume)
                      for one in config.for_seeds()], parallel)


def prepare_tasks(mix: EnvMix, config: TrainConfig, phases: Phases) -> None:
    """Reset once on every task SFT and the first evaluation play, in every env.

    Tasks an env generates on first use (TextWorld's games, ALFWorld's scenes) are made
    here, under a bar, instead of silently inside the first rollout.
    """
    sft_here = config.sft.episodes if config.sft.start_from is None else 0
    plan = [(envs[0], env_config.train_split, config.seed + i)
            for (env_config, envs), sft in zip(mix, mix.shares(sft_here))
            for i in range(sft)]
    plan += [(envs[0], env_config.test_split, config.seed + i)
             for env_config, envs in mix for i in range(config.eval.tasks)]
    # each process its own order: two runs filling one cache build different games side by
    # side instead of queueing on one game's lock (two warm-ups in step: 2,128 games, 34 min)
    random.Random(os.getpid()).shuffle(plan)
    with phases.bar("tasks (generated where new)", len(plan)) as advance:
        for env, split, seed in plan:
            env.reset(seed=seed, options={"split": split})
            advance()


def _warm_up(learner: Any, mix: EnvMix, config: TrainConfig, phases: Phases,
             out: Path) -> None:
    import agentgym

    if not config.sft.episodes:
        return
    with phases.timed("SFT data: expert episodes") as done:
        experts = []
        for (env_config, envs), share in zip(mix, mix.shares(config.sft.episodes)):
            experts += agentgym.rollout(envs[0], agentgym.ExpertPolicy(), tasks=share,
                                        seed=config.seed, split=env_config.train_split,
                                        progress=phases.show,
                                        history_window=config.sampling.history_window)
        rows = rows_for(experts, None, learner.tokenizer, config.rl.max_length)
        done(f"{len(experts)} episodes, {len(rows)} token rows")
    size = config.sft.minibatch_size or config.optim.minibatch_size
    with phases.bar("SFT epochs", config.sft.epochs) as advance:
        for epoch in range(config.sft.epochs):
            for group in learner.optimizer.param_groups:
                group["lr"] = sft_learning_rate(config.sft.lr, epoch, config.sft.epochs)
            # rows of one episode sit together: unshuffled, each minibatch is one episode
            # and every epoch ends on the same few
            rng = random.Random(f"sft-rows/{config.seed}/{epoch}")
            metrics = learner.sft_step(length_grouped(rows, size, rng), size)
            advance(f"loss {metrics['sft/loss']:.3f}")
    for group in learner.optimizer.param_groups:
        group["lr"] = config.optim.lr
    learner.reset_reference()  # KL is measured from the warmed-up policy
    learner.step = 0  # RL updates count from here
    learner.save(out / "checkpoints" / "sft", {"update": 0})


def sft_learning_rate(peak: float, epoch: int, epochs: int) -> float:
    """The warm-up's rate for an epoch: ``peak`` at the first, cosine down to a tenth of it."""
    if epochs <= 1:
        return peak
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * epoch / (epochs - 1))))


def _update(update: int, mix: EnvMix, policy: Any, learner: Any, config: TrainConfig,
            writer: Any, ranks: Any) -> dict[str, Any]:
    """One update on this rank's groups: rollouts, rewards, advantages, a gradient step."""
    import agentgym
    from trainers.batch import Batch

    spec, estimator = config.reward, config.estimator
    started = time.perf_counter()
    episodes = _sample(update, mix, policy, config, ranks)
    rollout_seconds = time.perf_counter() - started
    env_steps = agentgym.TreeStats.of(episodes).env_steps  # a tree's shared steps count once
    if k := continuations_wanted(estimator):  # Vine: values from k continuations per state
        from agentgym.values import attach_mc_values

        for (_, envs), mine in zip(mix, _by_env(mix, episodes)):
            env_steps += attach_mc_values(envs[0], policy, mine, k=k, reward=spec)["env_steps"]
    batch = Batch.from_episodes(episodes, rewards=spec)
    advantages = estimator(batch)
    for episode, values in zip(episodes, advantages):
        for turn, value in zip(episode.turns, values):
            turn.advantage = float(value)
        writer.write(episode)
    rows = rows_for(episodes, advantages, learner.tokenizer, config.rl.max_length)
    all_rows = len(rows)
    if config.rl.skip_zero_advantage:
        rows = [row for row in rows if any(row.advantages)]
    rows = length_grouped(rows, config.optim.minibatch_size,
                          random.Random(f"rl-rows/{config.seed}/{update}"))
    started = time.perf_counter()
    metrics = learner.rl_step(rows)
    update_seconds = time.perf_counter() - started
    stats = summarize(episodes)
    returns = batch.returns()
    zero_std = sum(float(returns[list(g)].std()) == 0.0 for g in batch.groups) / len(batch.groups)
    return {"step": update, **metrics,
            "charts/success_rate": stats["success_rate"],
            "charts/return": float(returns.mean()),
            "charts/turns": stats["mean_turns"], "charts/invalid_rate": stats["invalid_rate"],
            "charts/zero_std_groups": zero_std,
            "charts/rows_trained": len(rows) / max(all_rows, 1),
            **{f"channels/{k}": v for k, v in stats.items() if k.startswith(("turn/", "outcome/"))},
            **(_tree_costs(episodes) if config.sampling.tree is not None else {}),
            **(_per_env(mix, batch) if mix.mixed else {}),
            **_contested(batch),
            "perf/env_steps": env_steps,
            "perf/rollout_s": rollout_seconds, "perf/update_s": update_seconds,
            "perf/tokens_per_s": metrics["tokens/trained"] / max(update_seconds, 1e-9)}


def _sample(update: int, mix: EnvMix, policy: Any, config: TrainConfig,
            ranks: Any) -> list[Episode]:
    """This rank's groups of the update: independent episodes, or trees (``sampling.tree``).

    Task ``i`` of an env in an update is reset with seed ``first + i``; rank ``r`` plays its
    share from ``first + r * share``, so the ranks together play the tasks one process
    would. With several envs, the share is split among them by weight, each group in one env.
    """
    import agentgym

    tree, share = config.sampling.tree, ranks.share_of(config.rl.tasks)
    first = _rl_task_seed(config, update) + ranks.rank * share
    counts = mix.task_counts(share, seed=first)
    episodes: list[Episode] = []
    for (env_config, envs), tasks in zip(mix, counts):
        if not tasks:
            continue
        played = agentgym.rollout(
            envs, policy, tasks=tasks, group_size=config.rl.group_size, seed=first,
            split=env_config.train_split, history_window=config.sampling.history_window,
            progress=False,
            tree=agentgym.Tree(config.rl.group_size, tree.width, tree.every,
                               tuple(tree.at), tree.uncertain) if tree is not None else None)
        for episode in played:
            episode.metadata["env_name"] = env_config.label
        episodes += played
    return episodes


def _by_env(mix: EnvMix, episodes: list[Episode]) -> list[list[Episode]]:
    """``episodes`` sorted by the env they were sampled in, in the mix's order."""
    return [[e for e in episodes if e.metadata.get("env_name", c.label) == c.label]
            for c in mix.configs]


def _per_env(mix: EnvMix, batch: Any) -> dict[str, float]:
    """Each env's episodes in the update, their success rate and mean return."""
    returns = batch.returns()
    figures: dict[str, float] = {}
    for env_config in mix.configs:
        name = f"env/{env_config.label}/"
        mine = [n for n, e in enumerate(batch.episodes)
                if e.metadata.get("env_name") == env_config.label]
        figures[name + "episodes"] = float(len(mine))
        if mine:
            figures[name + "success_rate"] = summarize(
                [batch.episodes[n] for n in mine])["success_rate"]
            figures[name + "return"] = float(returns[mine].mean())
    return figures


def continuations_wanted(estimator: Any) -> int:
    """How many continuations per state an estimator (or its base) reads values from.

    An estimator built on Monte-Carlo values (``Vine``) names its ``k``; SALT over Vine
    wants its base's.
    """
    from trainers.estimators import Vine

    while estimator is not None:
        if isinstance(estimator, Vine):
            return estimator.k
        estimator = getattr(estimator, "base", None)
    return 0


def _contested(batch: Any) -> dict[str, float]:
    """The share of steps on an edge that a group's winning and losing episodes both took.

    States are matched by ``state_key``; an env that records none gets no figure.
    """
    from trainers.graph import build_graph

    if any(t.state_key is None for e in batch.episodes for t in e.turns):
        return {}
    graphs = [build_graph([batch.episodes[i] for i in members]) for members in batch.groups]
    steps = sum(len(e.turns) for e in batch.episodes)
    return {"charts/contested_steps": sum(g.contested_steps() for g in graphs) / max(steps, 1)}


def _env_steps_logged(out: Path) -> int:
    """The env steps the run's logged updates spent (0 for a new run)."""
    path = out / "metrics.jsonl"
    if not path.is_file():
        return 0
    totals = [json.loads(line).get("perf/env_steps_total", 0)
              for line in path.read_text().splitlines() if line.strip()]
    return int(max(totals, default=0))


def _tree_costs(episodes: list[Episode]) -> dict[str, float]:
    """What tree sampling saved against sampling the same leaves independently."""
    import agentgym

    stats = agentgym.TreeStats.of(episodes)
    return {"tree/steps_saved": stats.steps_saved, "tree/tokens_saved": stats.tokens_saved,
            "tree/env_steps": stats.env_steps}


def _rl_task_seed(config: TrainConfig, update: int) -> int:
    """Tasks of this update: fresh ones, past the tasks the SFT warm-up fitted.

    Tasks the warm-up memorised are solved every time, so their groups have no variance
    and teach nothing.
    """
    return config.seed + config.sft.episodes + (update - 1) * config.rl.tasks


class Phases:
    """A progress bar per phase in a terminal, and a line per phase in a log file.

    Each finished phase appends ``<time>  <phase>: <count> in <seconds> s  <last note>`` to
    the log (``train.log`` in the run folder) and prints it. With no log (a torchrun rank
    other than 0) phases are silent.
    """

    LOG_EVERY = 60.0
    """Seconds between a long phase's progress lines in the log (not printed: the bar is)."""

    def __init__(self, console: Any, log_path: Path | None, show: bool) -> None:
        self.console, self.log_path, self.show = console, log_path, show

    def note(self, text: str) -> None:
        """Print ``text`` and append it to the log."""
        line = self._log(text)
        if line is not None:
            self.console.print(line, markup=False, highlight=False)

    def _log(self, text: str) -> str | None:
        if self.log_path is None:
            return None
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}"
        with open(self.log_path, "a") as log:
            log.write(line + "\n")
        return line

    @contextlib.contextmanager
    def bar(self, name: str, total: int, done: int = 0) -> Iterator[Callable[..., None]]:
        """A bar of ``total`` steps; the body calls ``advance(note="")`` after each."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        started, last = time.perf_counter(), [""]
        logged, count = [started], [done]
        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[note]}"), console=self.console,
                            disable=not self.show)
        with progress:
            task = progress.add_task(name, total=total, completed=done, note="")

            def advance(note: str = "") -> None:
                last[0], count[0] = note or last[0], count[0] + 1
                progress.update(task, advance=1, note=note)
                if time.perf_counter() - logged[0] >= self.LOG_EVERY:  # a long phase in the log
                    logged[0] = time.perf_counter()
                    self._log(f"  {name}: {count[0]}/{total}  {last[0]}".rstrip())

            yield advance
        self.note(f"{name}: {total - done} in {time.perf_counter() - started:.1f} s"
                  + (f"  {last[0]}" if last[0] else ""))

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[Callable[[str], None]]:
        """A phase that draws its own bar (a rollout); ``done(summary)`` sets its log note."""
        started, summary = time.perf_counter(), [""]
        yield lambda text: summary.__setitem__(0, text)
        self.note(f"{name}: {time.perf_counter() - started:.1f} s"
                  + (f"  {summary[0]}" if summary[0] else ""))


def _brief(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in metrics.items())


def _status(row: dict[str, Any]) -> str:
    keys = ("charts/success_rate", "charts/return", "losses/loss", "losses/kl",
            "losses/clipfrac", "eval/success_rate")
    return f"step {row['step']:>4}  " + "  ".join(
        f"{k.split('/')[1]} {row[k]:.3f}" for k in keys if k in row)
