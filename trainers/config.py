"""The training configuration: one YAML file, checked line by line before any model loads.

Sections (all optional but ``env``): ``env``, ``model``, ``sampling``, ``reward`` (a
:mod:`rewards` spec), ``estimator``, ``sft``, ``rl``, ``optim``, ``loss``, ``eval``, plus
``seed``, ``output`` and ``checkpoint_every``. An unknown key, a model path that does not
exist or a reward spec naming a channel the env does not record is reported with the file
and line, and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import AgentGymError, InvalidOptionError, did_you_mean
from trainers.learner import LoraConfig, LossConfig, OptimConfig


class ConfigError(AgentGymError, ValueError):
    """A training config that cannot be used; the message names the file and line."""


@dataclass
class EnvConfig:
    """Which env to train on."""

    id: str = "TextWorld-v0"
    """A registered env id."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``agentgym.make``."""
    train_split: str = "train"
    """Split the policy trains on."""
    test_split: str = "test"
    """Held-out split for evaluation."""


@dataclass
class ModelConfig:
    """The policy model: ``tiny`` (built here) or a local folder."""

    name: str = "tiny"
    """``tiny`` or the path of a ``save_pretrained`` folder."""
    hidden: int = 64
    """Tiny model: hidden size."""
    layers: int = 2
    """Tiny model: transformer layers."""
    heads: int = 4
    """Tiny model: attention heads."""
    vocab_size: int = 1024
    """Tiny model: tokenizer vocabulary, trained on the env's text."""


@dataclass
class SamplingConfig:
    """How the policy samples during training rollouts."""

    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling."""
    max_new_tokens: int = 32
    """Longest action."""
    stop: list[str] = field(default_factory=list)
    """Strings that end an action (e.g. ``</action>``); the text after them is dropped."""
    engine: str = "transformers"
    """Rollout engine: ``transformers`` (the training model itself) or ``vllm`` (vLLM's
    offline engine, given the trainer's weights after every update)."""


@dataclass
class SFTConfig:
    """Supervised warm-up on expert episodes."""

    episodes: int = 16
    """Expert episodes (on training tasks) to fit; 0 skips SFT."""
    epochs: int = 20
    """Passes over them."""
    lr: float = 3e-3
    """Learning rate of the warm-up."""


@dataclass
class RLConfig:
    """The RL schedule."""

    steps: int = 20
    """Policy updates."""
    tasks: int = 4
    """Tasks per update."""
    group_size: int = 8
    """Episodes per task (G)."""
    parallel_envs: int = 8
    """Episodes generated at once (one batched generate call serves them)."""
    max_length: int = 2048
    """Longest token row; longer episodes keep their first whole turns."""


@dataclass
class EvalConfig:
    """Evaluation on the held-out split."""

    every: int = 5
    """Evaluate every this many updates (and at the start and the end)."""
    tasks: int = 16
    """Held-out tasks per evaluation."""
    temperature: float = 0.0
    """0 evaluates greedily."""


@dataclass
class TrainConfig:
    """Everything one training run needs."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    reward: dict[str, Any] = field(default_factory=lambda: {"type": "outcome",
                                                            "channel": "success"})
    estimator: dict[str, Any] = field(default_factory=lambda: {"type": "salt", "base": "grpo"})
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    output: str = "runs/train"
    checkpoint_every: int = 10


SECTIONS = {f.name: f for f in dataclasses.fields(TrainConfig)}
ENGINES = ("transformers", "vllm")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and check a YAML config (see the module docstring).

    Raises:
        ConfigError: naming the file, the line, the bad key or value, and what is allowed.
    """
    import yaml

    path = Path(path)
    text = path.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections; got {type(data).__name__}.")
    data.update(overrides or {})
    lines = _key_lines(node)
    config = _build(TrainConfig, data, path, lines, ())
    _check_semantics(config, path, lines)
    return config


def _key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """``("rl", "steps") -> line`` for every mapping key in the YAML document."""
    lines: dict[tuple[str, ...], int] = {}
    if node is not None and hasattr(node, "value") and isinstance(node.value, list):
        for item in node.value:
            if isinstance(item, tuple):
                key, value = item
                where = (*prefix, str(key.value))
                lines[where] = key.start_mark.line + 1
                lines.update(_key_lines(value, where))
    return lines


def _where(path: Path, lines: dict[tuple[str, ...], int], key: tuple[str, ...]) -> str:
    line = lines.get(key) or lines.get(key[:1])
    return f"{path}:{line}" if line else str(path)


def _build(cls: type, data: dict[str, Any], path: Path, lines: dict, prefix: tuple[str, ...]
           ) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        where = (*prefix, key)
        if key not in fields:
            section = ".".join(prefix) or "the top level"
            raise ConfigError(
                f"{_where(path, lines, where)}: unknown key {key!r} in {section}; allowed: "
                f"{', '.join(fields)}.{did_you_mean(key, fields)}")
        kind = fields[key].default_factory if fields[key].default_factory is not \
            dataclasses.MISSING else None
        sample = kind() if kind else None
        if dataclasses.is_dataclass(sample):
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(path, lines, where)}: {key!r} must be a mapping of "
                                  f"{', '.join(f.name for f in dataclasses.fields(sample))}.")
            values[key] = _build(type(sample), value, path, lines, where)
        else:
            values[key] = value
    return cls(**values)


def _check_semantics(config: TrainConfig, path: Path, lines: dict) -> None:
    from agentgym.registry import spec
    from rewards import MissingChannelError, RewardSpecError, from_dict

    try:
        env_class = spec(config.env.id).load()
    except KeyError as exc:
        raise ConfigError(f"{_where(path, lines, ('env', 'id'))}: {exc}") from exc
    if config.model.name != "tiny":
        from trainers.models import resolve_model

        try:
            resolve_model(config.model.name)
        except InvalidOptionError as exc:
            raise ConfigError(f"{_where(path, lines, ('model', 'name'))}: {exc}") from exc
    try:
        reward = from_dict(config.reward)
        reward(_declared_episode(env_class))
    except MissingChannelError as exc:
        raise ConfigError(
            f"{_where(path, lines, ('reward',))}: the reward spec names a channel "
            f"{config.env.id} does not record. {exc} Turn channels: "
            f"{', '.join(env_class.turn_channels)}; outcome channels: "
            f"{', '.join(env_class.outcome_channels)}.") from exc
    except RewardSpecError as exc:
        if "gold" not in str(exc):  # specs that read turn info are checked at run time
            raise ConfigError(f"{_where(path, lines, ('reward',))}: {exc}") from exc
    try:
        make_estimator(config.estimator)
    except ConfigError as exc:
        raise ConfigError(f"{_where(path, lines, ('estimator',))}: {exc}") from exc
    if config.sampling.engine not in ENGINES:
        raise ConfigError(f"{_where(path, lines, ('sampling', 'engine'))}: unknown engine "
                          f"{config.sampling.engine!r}; engines: {', '.join(ENGINES)}.")


def _declared_episode(env_class: type) -> Any:
    from agentgym.records import Episode, Outcome, Turn

    turns = [Turn(index=i, observation="", action="",
                  reward_channels=dict.fromkeys(env_class.turn_channels, 0.0)) for i in range(2)]
    return Episode(env_id="check", task_id="check", turns=turns,
                   outcome=Outcome(channels=dict.fromkeys(env_class.outcome_channels, 0.0)))


def make_estimator(config: dict[str, Any] | str) -> Any:
    """An advantage estimator from its config: ``{"type": "salt", "base": "grpo", ...}``.

    Types: ``grpo``, ``dr_grpo``, ``rloo``, ``reinforce_pp``, ``gigpo`` and ``salt`` (whose
    ``base`` is another type; ``match`` is ``state_key``, ``observation`` or ``prefix``).
    """
    from trainers import GRPO, RLOO, SALT, DrGRPO, GiGPO, ReinforcePP
    from trainers.graph import ObservationMatch, PrefixMatch, StateKeyMatch

    plain = {"grpo": GRPO, "dr_grpo": DrGRPO, "rloo": RLOO, "reinforce_pp": ReinforcePP,
             "gigpo": GiGPO}
    config = {"type": config} if isinstance(config, str) else dict(config)
    kind = config.pop("type", None)
    try:
        if kind == "salt":
            matchers = {"state_key": StateKeyMatch, "observation": ObservationMatch,
                        "prefix": PrefixMatch}
            base = make_estimator(config.pop("base", "grpo"))
            matcher = matchers[config.pop("match", "state_key")]()
            return SALT(base=base, matcher=matcher, **config)
        if kind in plain:
            return plain[kind](**config)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"bad estimator settings {config!r}: {exc}") from exc
    raise ConfigError(f"unknown estimator {kind!r}; types: {', '.join([*plain, 'salt'])}."
                      f"{did_you_mean(str(kind), [*plain, 'salt'])}")
