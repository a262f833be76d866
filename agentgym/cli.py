"""agentgym: multi-turn environments for training LLM agents with reinforcement learning.

Play, roll out, probe, serve, train, evaluate, plot and replay; `agentgym COMMAND --help`
shows each command's flags and their defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.errors import AgentGymError, InvalidOptionError

POLICY_HELP = "expert | random | openai:BASE_URL (any OpenAI-compatible /v1 endpoint)"


def parse_env_args(pairs: Sequence[str], env_id: str | None = None) -> dict[str, Any]:
    """``["preset=easy", "max_turns=30"]`` -> ``{"preset": "easy", "max_turns": 30}``.

    Values are read as JSON where they parse (``30``, ``true``, ``["a"]``), else as text;
    with ``env_id``, each is then converted to and checked against the type the env's
    constructor declares, so ``max_turns=ten`` is refused before anything starts.
    """
    kwargs: dict[str, Any] = {}
    raws: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidOptionError(f"Expected KEY=VALUE for --env-arg, got {pair!r}.")
        raws[key] = raw
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
    return check_env_args(env_id, kwargs, raws) if env_id else kwargs


def check_env_args(env_id: str, kwargs: dict[str, Any], raws: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """``kwargs`` converted to the types ``env_id``'s constructor declares.

    A value read as JSON that does not fit is tried as the text it was written as (``raws``),
    so ``name=123`` works for a text argument.

    Raises:
        InvalidOptionError: an argument the env does not take, or a value of the wrong type.
    """
    if env_id.startswith("remote:"):
        return kwargs
    kwargs = dict(kwargs)
    make_own = {k: _convert(float | None, kwargs.pop(k), None)  # make()'s own keyword
                for k in ("step_timeout",) if k in kwargs}
    return {**_checked_against(env_id, kwargs, raws), **make_own}


def _checked_against(env_id: str, kwargs: dict[str, Any], raws: dict[str, str] | None
                     ) -> dict[str, Any]:
    import inspect
    import typing

    from pydantic import ValidationError

    from agentgym.errors import check_options
    from agentgym.registry import spec

    factory = spec(env_id).load()
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    check_options(kwargs, [n for n in params if n != "self"], f"--env-arg of {env_id}")
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type)  # type: ignore[misc]
                                      else factory)
    except Exception:  # noqa: BLE001 - an annotation we cannot resolve is not checked
        hints = {}
    checked = {}
    for key, value in kwargs.items():
        hint = hints.get(key, Any)
        try:
            checked[key] = _convert(hint, value, (raws or {}).get(key))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"]
            raise InvalidOptionError(f"--env-arg {key}={value!r}: {env_id} takes {key} as "
                                     f"{_type_text(hint)}; {problem}.") from None
        except Exception:  # noqa: BLE001 - a type pydantic cannot check is passed as given
            checked[key] = value
    return checked


def _convert(hint: Any, value: Any, raw: str | None) -> Any:
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(hint, config={"arbitrary_types_allowed": True})
    try:
        return adapter.validate_python(value)
    except ValidationError:
        if raw is None or raw == value:
            raise
        return adapter.validate_python(raw)


def _type_text(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")

def make_policy(name: str, model: str, temperature: float, concurrency: int = 1,
                native_tools: bool = False) -> Any:
    """Build a policy from its command-line name."""
    from agentgym.policies import ExpertPolicy, OpenAIChatPolicy, RandomPolicy

    if name == "expert":
        return ExpertPolicy(native_tools=native_tools)
    if name == "random":
        return RandomPolicy()
    if name.startswith("openai:"):
        return OpenAIChatPolicy(base_url=name.removeprefix("openai:"), model=model,
                                temperature=temperature, concurrency=concurrency,
                                native_tools=native_tools)
    raise InvalidOptionError(f"Unknown policy {name!r}. Policies: {POLICY_HELP}.")


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered envs."""
    from rich.console import Console
    from rich.table import Table

    from agentgym.registry import list_envs

    table = Table(title="agentgym environments")
    table.add_column("id", style="cyan")
    table.add_column("description")
    for env_id, description in list_envs().items():
        table.add_row(env_id, description)
    Console().print(table)
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """A person plays one episode in the terminal."""
    from rich.console import Console

    from agentgym.policies import HumanPolicy
    from agentgym.registry import make
    from agentgym.rollout import run_episode

    console = Console()
    with make(args.env, **parse_env_args(args.env_arg, args.env)) as env:
        console.print(f"[bold]{args.env}[/] — type commands; /help lists admissible ones; "
                      "Ctrl-D quits.")
        episode = run_episode(env, HumanPolicy(console=console), seed=args.seed)
    console.print(episode.final_observation, markup=False)
    verdict = "[green]You won![/]" if episode.outcome.success else "[red]Not won.[/]"
    console.print(f"{verdict} {episode.num_turns} turns, return {episode.outcome.total_reward}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """Run one or more policies on the same tasks; write episodes; print a summary."""
    from rich.console import Console

    from agentgym.registry import make
    from agentgym.rollout import rollout
    from agentgym.summary import summary_table

    console = Console()
    results = {}
    if args.concurrency < 1:
        raise InvalidOptionError(f"--concurrency must be >= 1, got {args.concurrency}.")
    # one env per episode in flight: with --concurrency N, N episodes play at once
    kwargs = parse_env_args(args.env_arg, args.env)
    envs = [make(args.env, **kwargs) for _ in range(args.concurrency)]
    try:
        for name in args.policy:
            policy = make_policy(name, args.model, args.temperature, args.concurrency,
                                 args.native_tools)
            results[name] = rollout(envs if len(envs) > 1 else envs[0], policy,
                                    tasks=args.tasks, group_size=args.group, seed=args.seed,
                                    split=args.split, out=args.out,
                                    history_window=args.history_window)
    finally:
        for env in envs:
            env.close()
    console.print(summary_table(results, title=f"{args.env}: {args.tasks} tasks x {args.group}"))
    if args.out:
        console.print(f"Episodes appended to [bold]{args.out}[/]")
    episodes = [e for run in results.values() for e in run]
    for line in failure_lines(episodes):
        console.print(line, style="red", markup=False, highlight=False, soft_wrap=True)
    return 1 if episodes and all(e.error for e in episodes) else 0


def _reason(error: dict[str, Any]) -> str:
    kind, message = str(error.get("type", "error")), str(error.get("message", ""))
    return message if message.startswith(kind) else f"{kind}: {message}"


def failure_lines(episodes: Sequence[Any]) -> list[str]:
    """The reasons episodes failed, most common first: ``6 episodes failed: <reason>``."""
    from collections import Counter

    reasons = Counter(_reason(e.error) for e in episodes if e.error)
    return [f"{count} episode{'s' if count > 1 else ''} failed: {reason}"
            for reason, count in reasons.most_common()]


def load_episodes(path: str, console: Any) -> list[Any]:
    """The readable episodes of a file; each skipped line is reported on ``console``."""
    from agentgym.store import CorruptLine, iter_episodes

    corrupt: list[CorruptLine] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below, in the user's terms
        episodes = list(iter_episodes(path, corrupt))
    for bad in corrupt:
        console.print(f"skipped {bad.path}:{bad.line}: {bad.reason}", style="yellow",
                      markup=False)
    return episodes


def cmd_replay(args: argparse.Namespace) -> int:
    """The interactive viewer, or ``--print``: rich output for scripts and pipes."""
    from pathlib import Path

    if not Path(args.file).is_file():
        raise InvalidOptionError(f"No episode file {args.file!r}.")
    if not args.print and sys.stdout.isatty() and not (args.policy or args.run):
        from agentgym.viewer import ReplayApp

        ReplayApp(args.file, follow=args.follow).run()
        return 0
    return print_replay(args)


def print_replay(args: argparse.Namespace) -> int:
    """Render the list (or one episode, or one turn) to stdout; ``--follow`` keeps going."""
    import time

    from rich.console import Console

    from agentgym.episode_index import EpisodeIndex
    from agentgym.replay import episode_list, render_episode

    console = Console()
    index = EpisodeIndex(args.file)
    if args.episode is not None:
        if not 0 <= args.episode < len(index):
            raise InvalidOptionError(f"Episode {args.episode} does not exist; the file has "
                                     f"episodes 0..{len(index) - 1}.")
        episode = index.episode(args.episode)
        if args.turn is not None and not 0 <= args.turn < episode.num_turns:
            raise InvalidOptionError(f"Turn {args.turn} does not exist; episode "
                                     f"{args.episode} has turns 0..{episode.num_turns - 1}.")
        console.print(render_episode(episode, args.turn))
        return 0
    shown = 0
    while True:
        rows = [index.summary(i) for i in range(shown, len(index))]
        for row in rows:
            if row.corrupt:
                console.print(f"skipped {index.path}:{row.line}: {row.error}", style="yellow",
                              markup=False)
        good = [index.episode(i) for i in range(shown, len(index))
                if not index.summary(i).corrupt
                and selected(index.summary(i).policy, index.summary(i).run_id, args)]
        if good or not args.follow:
            console.print(episode_list(good))
        shown = len(index)
        if not args.follow:
            return 0
        time.sleep(0.5)
        index.refresh()


def selected(policy: str, run_id: str, args: argparse.Namespace) -> bool:
    """Whether an episode of this policy and run passes ``--policy`` and ``--run``."""
    return args.policy in (None, policy) and args.run in (None, run_id)


def add_selection(parser: argparse.ArgumentParser) -> None:
    """``--policy`` and ``--run``: keep only one policy's or one rollout's episodes."""
    parser.add_argument("--policy", default=None, help="only this policy's episodes "
                        "(as recorded: expert, random, openai, ...)")
    parser.add_argument("--run", default=None, help="only the episodes of this run id "
                        "(metadata run_id; group ids contain it)")


def load_spec_argument(text: str) -> Any:
    """A reward spec from a YAML/JSON file path or an inline YAML/JSON mapping."""
    from pathlib import Path

    from rewards import from_yaml

    path = Path(text)
    if path.is_file():
        return from_yaml(path.read_text())
    if path.suffix in (".yaml", ".yml", ".json") or "/" in text:
        raise InvalidOptionError(f"No reward spec file {text!r} (give a file that exists, or "
                                 "an inline mapping such as '{type: outcome, channel: success}').")
    return from_yaml(text)


def cmd_probe(args: argparse.Namespace) -> int:
    """Play the env's reward-hacking probes and its honest expert; exit 1 if a probe wins."""
    from rich.console import Console

    from agentgym.probe import probe_table, run_probes, verdict

    spec = load_spec_argument(args.spec) if args.spec else None
    results = run_probes(args.env, tasks=args.tasks,
                         env_kwargs=parse_env_args(args.env_arg, args.env), spec=spec)
    title = f"Reward-hacking probes on {args.env} ({args.tasks} tasks"
    Console().print(probe_table(results, title=title + (f", {spec!r})" if spec else ")")))
    honest, *probes = results
    return int(any(verdict(p, honest) != "held" for p in probes))


def cmd_stats(args: argparse.Namespace) -> int:
    """Rates and per-channel statistics of a run; with --spec, the run re-scored."""
    from pathlib import Path

    from rich.console import Console

    from agentgym.summary import channel_values, stats_table, summary_table

    if not Path(args.file).is_file():
        raise InvalidOptionError(f"No episode file {args.file!r}.")
    console = Console()
    episodes = [e for e in load_episodes(args.file, console)
                if selected(str(e.metadata.get("policy", "")), str(e.metadata.get("run_id", "")),
                            args)]
    if not episodes:
        raise InvalidOptionError(f"{args.file} holds no readable episodes"
                                 + (" of that policy and run." if args.policy or args.run
                                    else "."))
    console.print(summary_table({args.file: episodes}, title="Run"))
    console.print(stats_table(channel_values(episodes), title="Channels (per episode)"))
    if args.spec:
        spec = load_spec_argument(args.spec)
        returns = [sum(spec(e)) for e in episodes]
        console.print(f"Re-scored with {spec!r}")
        console.print(stats_table({"return under spec": returns,
                                   "recorded return": [e.outcome.total_reward for e in episodes]},
                                  title="Returns"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a registered env over HTTP, in sessions."""
    from agentgym.server import serve

    if args.protocol == "openenv":
        from agentgym.openenv_server import serve_openenv

        print(f"serving {args.env} to OpenEnv clients on http://{args.host}:{args.port}",
              flush=True)
        serve_openenv(args.env, parse_env_args(args.env_arg, args.env), args.host, args.port,
                      args.max_sessions)
        return 0
    print(f"serving {args.env} on http://{args.host}:{args.port}/{args.env}", flush=True)
    serve(args.env, parse_env_args(args.env_arg, args.env), args.host, args.port, args.max_sessions,
          args.idle_timeout, args.token, args.max_request_bytes)
    return 0


def cmd_serve_retriever(args: argparse.Namespace) -> int:
    """Serve one search index to many env processes."""
    from environments.search import SearchEnv
    from environments.search.server import serve

    kwargs: dict[str, Any] = {"kb_size": args.kb_size, "seed": args.seed,
                              "retriever": args.retriever}
    if args.corpus:
        kwargs.update(corpus=args.corpus, qa={"train": args.corpus_qa})
    env = SearchEnv(**kwargs)  # builds or loads the cached index
    passages = len(env.tasks.docs())
    print(f"serving {passages} passages (knowledge base fingerprint {env.kb_fingerprint}) on "
          f"http://{args.host}:{args.port}", flush=True)
    serve(env.retriever, args.host, args.port, passages, env.kb_fingerprint)
    return 0


def cmd_swe_tasks(args: argparse.Namespace) -> int:
    """Synthesize (or find cached) SWE tasks from a project and list them."""
    from rich.console import Console
    from rich.table import Table

    from environments.swe.backends import make_sandbox
    from environments.swe.tasks import ensure_task_set, sandbox_runner

    def runner():  # noqa: ANN202
        return sandbox_runner(make_sandbox(args.sandbox, allow_unsandboxed=args.allow_unsandboxed,
                                           quiet=True))

    tasks = ensure_task_set(args.sources, args.tasks, runner, seed=args.seed,
                            leak_test_names=args.leak_test_names)
    table = Table(title=f"{len(tasks)} SWE tasks (cached)")
    for column in ("instance_id", "FAIL_TO_PASS", "PASS_TO_PASS", "folder"):
        table.add_column(column)
    for task in tasks:
        table.add_row(task.instance_id, str(len(task.fail_to_pass)),
                      str(len(task.pass_to_pass)), str(task.folder))
    Console().print(table)
    print("play them with agentgym.make('SWE-v0', sources=[...], tasks_per_source="
          f"{args.tasks}, seed={args.seed})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy from a YAML config."""
    from trainers.config import load_config
    from trainers.train import train

    overrides = [*args.overrides, *([f"output={args.output}"] if args.output else [])]
    config = load_config(args.config, overrides)
    if config.seeds and args.parallel_seeds > 1:
        from trainers.train import train_seeds_side_by_side

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InvalidOptionError("--parallel-seeds starts its own processes; under "
                                     "torchrun the ranks train one seed at a time (drop it).")
        train_seeds_side_by_side(args.config, overrides, config, args.parallel_seeds,
                                 resume=args.resume)
    else:
        for one in config.for_seeds():
            train(one, resume=args.resume)
    print(f"run written to {config.output}; plot it with: agentgym plot {config.output}")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    """Print the reference of every training config field (Markdown)."""
    from trainers.config import config_reference

    print(config_reference())
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on held-out tasks, as its run was evaluated (unless told)."""
    from rich.console import Console

    from trainers.evaluate import evaluate_path, report_table

    given = {"env_id": args.env, "split": args.split, "tasks": args.tasks,
             "samples": args.samples, "seed": args.seed, "temperature": args.temperature,
             "max_new_tokens": args.max_new_tokens, "parallel": args.parallel,
             "stop": tuple(args.stop) if args.stop else None,
             "env_kwargs": parse_env_args(args.env_arg, args.env) if args.env_arg else None}
    console = Console()
    data = evaluate_path(args.checkpoint, {k: v for k, v in given.items() if v is not None},
                         out=args.out)
    settings = data["settings"]
    console.print(f"[bold]settings[/bold] ({settings['source']}): " + ", ".join(
        f"{key}={value!r}" for key, value in settings.items() if key != "source"))
    console.print(report_table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
        console.print(f"report: {args.json}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two evaluation reports task by task; exit 0 whatever the verdict."""
    from rich.console import Console
    from rich.table import Table

    from trainers.evaluate import compare, load_or_evaluate

    a, b = load_or_evaluate(args.a), load_or_evaluate(args.b)
    result = compare(a, b, alpha=args.alpha)
    table = Table(title=f"A = {a['checkpoint']}, B = {b['checkpoint']}: {result['tasks']} "
                        f"tasks, {result['pairs']} paired episodes")
    for column in ("", "A", "B", "test"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("success rate", f"{result['success_a']:.3f}", f"{result['success_b']:.3f}",
                  f"McNemar exact p = {result['p_success']:.3g} ({result['only_a']} won by A "
                  f"only, {result['only_b']} by B only)")
    low, high = result["return_difference_interval"]
    table.add_row("mean return, B - A", "", f"{result['return_difference']:+.3f}",
                  f"paired bootstrap p = {result['p_return']:.3g}, 95% [{low:+.3f}, "
                  f"{high:+.3f}]")
    console = Console()
    console.print(table)
    console.print(result["verdict"])
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Write PNG curves of training runs, and a comparison when there are several."""
    from trainers.plots import plot_comparison, plot_run

    for run in args.runs:
        for path in plot_run(run):
            print(path)
    if len(args.runs) > 1:
        print(plot_comparison(args.runs, args.compare, args.metric, args.x))
    return 0


class _HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS \
                or "(default" in text:
            return text
        default = action.default
        shown = ("off" if default is False else "none" if default in (None, [])
                 else str(default))
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


# help for the arguments many commands share
_SHARED_HELP = {
    "env": "a registered env id (agentgym list), module:Class, or remote:URL",
    "--env-arg": "an env constructor argument, checked against its type (repeatable)",
    "--seed": "seed of the first task (task i plays seed + i)",
    "--tasks": "how many tasks to play",
    "--temperature": "sampling temperature",
    "--split": "the task split to play",
    "--host": "address to listen on",
    "--port": "port to listen on",
    "--history-window": "keep only the last N turns in the model's context",
    "--max-sessions": "sessions open at once; more get HTTP 429",
    "--kb-size": "passages in the generated knowledge base",
    "--retriever": "how passages are found",
    "--max-new-tokens": "longest action",
    "--parallel": "episodes played at once",
    "--out": "JSONL file to write episodes to",
    "--env": "the env id to evaluate on",
    "checkpoint": "a checkpoint folder (runs/NAME/checkpoints/step-N)",
    "file": "an episodes JSONL file",
    "runs": "training run folders",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.help is None:
            key = action.option_strings[0] if action.option_strings else action.dest
            action.help = _SHARED_HELP.get(key, "")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``agentgym`` command."""
    parser = argparse.ArgumentParser(prog="agentgym", description=__doc__,
                                     formatter_class=_HelpWithDefaults)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the registered environments").set_defaults(fn=cmd_list)

    play = sub.add_parser("play", help="play an environment yourself")
    play.add_argument("env")
    play.add_argument("--seed", type=int, default=None)
    play.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    play.set_defaults(fn=cmd_play)

    run = sub.add_parser("rollout", help="run policies and record episodes")
    run.add_argument("env")
    run.add_argument("--policy", action="append", required=True, help=POLICY_HELP)
    run.add_argument("--model", default="default", help="model name for openai: policies")
    run.add_argument("--concurrency", type=int, default=1,
                     help="requests in flight at once for openai: policies")
    run.add_argument("--native-tools", action="store_true",
                     help="send the env's tools as tools= and run the reply's tool_calls "
                     "(envs with protocol=tools; the server must parse tool calls)")
    run.add_argument("--temperature", type=float, default=0.7)
    run.add_argument("--tasks", type=int, default=8)
    run.add_argument("--group", type=int, default=1, help="episodes per task (G)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--split", choices=["train", "test"], default=None)
    run.add_argument("--history-window", type=int, default=None)
    run.add_argument("--out", default=None, help="JSONL file to append episodes to")
    run.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    run.set_defaults(fn=cmd_rollout)

    stats = sub.add_parser("stats", help="rates and channel statistics of a run; re-score it")
    stats.add_argument("file")
    stats.add_argument("--spec", default=None,
                       help="a reward spec (YAML/JSON file or inline mapping) to re-score with")
    add_selection(stats)
    stats.set_defaults(fn=cmd_stats)

    probe = sub.add_parser("probe", help="try known reward hacks on an env; compare with honest")
    probe.add_argument("env")
    probe.add_argument("--tasks", type=int, default=4, help="tasks each probe plays")
    probe.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    probe.add_argument("--spec", default=None,
                       help="a reward spec (YAML/JSON file or inline mapping) to score with")
    probe.set_defaults(fn=cmd_probe)

    serve_env = sub.add_parser("serve", help="serve an env over HTTP (sessions)")
    serve_env.add_argument("env")
    serve_env.add_argument("--host", default="127.0.0.1")
    serve_env.add_argument("--port", type=int, default=8000)
    serve_env.add_argument("--max-sessions", type=int, default=64)
    serve_env.add_argument("--idle-timeout", type=float, default=300.0,
                           help="seconds before an unused session is closed")
    serve_env.add_argument("--token", default=None,
                           help="require 'Authorization: Bearer TOKEN' (or set AGENTGYM_TOKEN);"
                                " needed whenever --host is not loopback")
    serve_env.add_argument("--max-request-bytes", type=int, default=8_000_000,
                           help="larger request bodies get 413")
    serve_env.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    serve_env.add_argument("--protocol", choices=["agentgym", "openenv"], default="agentgym",
                           help="agentgym's session API (RemoteEnv), or OpenEnv's "
                                "(openenv-core clients over WebSocket)")
    serve_env.set_defaults(fn=cmd_serve)

    server = sub.add_parser("serve-retriever", help="share one search index over HTTP")
    server.add_argument("--kb-size", type=int, default=2000)
    server.add_argument("--seed", type=int, default=0)
    server.add_argument("--corpus", default=None, help="a corpus JSONL instead of the generated KB")
    server.add_argument("--corpus-qa", default=None, help="with --corpus: a QA JSONL")
    server.add_argument("--retriever", choices=["bm25", "dense", "hybrid"], default="bm25")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8765)
    server.set_defaults(fn=cmd_serve_retriever)

    swe = sub.add_parser("swe-tasks", help="synthesize SWE tasks from a Python project")
    swe.add_argument("sources", nargs="+", metavar="SOURCE",
                     help="an embedded library (intervals, romans, textstats), a project "
                          "folder, or pypi:NAME==VERSION")
    swe.add_argument("--tasks", type=int, default=8, help="tasks per source")
    swe.add_argument("--seed", type=int, default=0)
    swe.add_argument("--sandbox", default="auto", help="auto, docker, bwrap or local")
    swe.add_argument("--allow-unsandboxed", action="store_true",
                     help="allow --sandbox local (runs the project's tests unisolated)")
    swe.add_argument("--leak-test-names", action="store_true",
                     help="name the failing tests in the problem statements")
    swe.set_defaults(fn=cmd_swe_tasks)

    train = sub.add_parser("train", help="train a policy from a YAML config")
    train.add_argument("config", help="a YAML training config (see docs/config.md)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="set any config field, e.g. rl.steps=3 loss.kl_coef=0.1")
    train.add_argument("--output", default=None, help="override the config's output folder")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--parallel-seeds", type=int, default=1, metavar="N",
                       help="with seeds: [...], train N seeds at once, each in its own "
                            "process with one torch thread")
    train.set_defaults(fn=cmd_train)

    sub.add_parser("config-reference", help="print every training config field (Markdown)"
                   ).set_defaults(fn=cmd_config_reference)

    evaluate = sub.add_parser(
        "eval", help="evaluate a checkpoint on held-out tasks, with 95%% intervals",
        description="Settings not given come from the checkpoint's training run "
                    "(RUN/config.json), else from the defaults (said loudly).")
    evaluate.add_argument("checkpoint", help="a checkpoint, a run (its latest checkpoint) or "
                                             "a folder of seed runs (each one's, pooled)")
    evaluate.add_argument("--env", help="env id (default: the run's, else TextWorld-v0)")
    evaluate.add_argument("--tasks", type=int, help="held-out tasks (default: the run's "
                                                     "eval.tasks, else 32)")
    evaluate.add_argument("--samples", type=int, help="episodes per task: pass@1 and "
                                                       "pass@k (default: 1)")
    evaluate.add_argument("--split", help="default: the run's test split, else test")
    evaluate.add_argument("--seed", type=int, help="default: the run's seed, else 0")
    evaluate.add_argument("--temperature", type=float,
                          help="default: the run's eval.temperature, else 0 (greedy)")
    evaluate.add_argument("--max-new-tokens", type=int, help="default: the run's, else 32")
    evaluate.add_argument("--parallel", type=int,
                          help="envs at once (default: the run's rl.parallel_envs, else 8)")
    evaluate.add_argument("--stop", action="append", default=[],
                          help="a string that ends an action, e.g. </action> (repeatable; "
                               "default: the run's)")
    evaluate.add_argument("--out", default=None, help="write the episodes here (JSONL)")
    evaluate.add_argument("--json", default=None, help="write the report here (for compare)")
    evaluate.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    evaluate.set_defaults(fn=cmd_eval)

    versus = sub.add_parser("compare", help="two evaluation reports, task by task, with "
                                            "paired tests and a verdict")
    versus.add_argument("a", help="A: a report (agentgym eval --json), a checkpoint, a run or "
                                  "a folder of seed runs (evaluated as their runs did)")
    versus.add_argument("b", help="B: the same kinds")
    versus.add_argument("--alpha", type=float, default=0.05, help="significance level")
    versus.set_defaults(fn=cmd_compare)

    plot = sub.add_parser("plot", help="PNG curves of training runs (and their comparison)")
    plot.add_argument("runs", nargs="+", metavar="RUN")
    plot.add_argument("--compare", default="compare.png",
                      help="where the comparison of several runs goes")
    plot.add_argument("--metric", default="eval/success_rate",
                      help="the metric compared across runs")
    # trainers.plots.X_LABELS's keys, named here so `agentgym --help` needs no trainers import
    plot.add_argument("--x", default="step", choices=["step", "perf/env_steps_total"],
                      help="the comparison's x axis: the update, or env steps spent (for "
                           "runs of equal env-step budgets whose updates differ in size)")
    plot.set_defaults(fn=cmd_plot)

    replay = sub.add_parser("replay", help="show recorded episodes")
    replay.add_argument("file")
    replay.add_argument("--print", action="store_true",
                        help="render to stdout instead of the interactive viewer")
    replay.add_argument("--episode", type=int, default=None, help="render this episode")
    replay.add_argument("--turn", type=int, default=None, help="with --episode: only this turn")
    replay.add_argument("--follow", action="store_true",
                        help="keep watching the file for episodes a running rollout appends")
    add_selection(replay)  # --print; in the viewer, filter with policy:NAME run:ID
    replay.set_defaults(fn=cmd_replay)
    for command in sub.choices.values():
        command.formatter_class = _HelpWithDefaults
        _fill_help(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentgym`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except AgentGymError as exc:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
