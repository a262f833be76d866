"""The training configuration: one YAML file, checked by pydantic before any model loads.

Sections (all optional but ``env``): ``env``, ``model``, ``sampling``, ``reward`` (a
:mod:`rewards` spec), ``estimator``, ``sft``, ``rl``, ``optim``, ``loss``, ``lora``, ``eval``,
plus ``seed``, ``output`` and ``checkpoint_every``. Every field has a type, a range or a set of
allowed values; a mistake is reported with the file and line, what was given and what is
allowed, and nothing runs. ``key=value`` overrides (``rl.steps=3``) are checked the same way.
:func:`config_reference` writes the reference of every field (``docs/config.md``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from agentgym.errors import AgentGymError, InvalidOptionError, did_you_mean
from rewards import MissingChannelError, RewardSpec, RewardSpecError, from_dict
from trainers.estimator_specs import estimator_from_dict, estimator_to_dict


class ConfigError(AgentGymError, ValueError):
    """A training config that cannot be used; the message names the file and line."""


class Section(BaseModel):
    """A config section: unknown keys refused, values checked, documented field by field."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True,
                              validate_assignment=True)


# ------------------------------------------------------------------ sections
class EnvConfig(Section):
    """Which env to train on (one of several, in a list)."""

    id: str = "TextWorld-v0"
    """A registered env id."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments for ``agentgym.make``."""
    train_split: str = "train"
    """Split the policy trains on."""
    test_split: str = "test"
    """Held-out split for evaluation."""
    weight: float = Field(1.0, gt=0.0)
    """With several envs: its share of each update's tasks (weights need not sum to 1)."""
    name: str | None = None
    """With several envs: the name its metrics carry (default: the id)."""

    @property
    def label(self) -> str:
        """The name metrics use: ``name``, else the id."""
        return self.name or self.id


class ModelConfig(Section):
    """The policy model: ``tiny`` (built here) or a local folder."""

    name: str = "tiny"
    """``tiny`` or the path of a ``save_pretrained`` folder."""
    hidden: int = Field(64, ge=8)
    """Tiny model: hidden size."""
    layers: int = Field(2, ge=1)
    """Tiny model: transformer layers."""
    heads: int = Field(4, ge=1)
    """Tiny model: attention heads."""
    vocab_size: int = Field(1024, ge=300)
    """Tiny model: tokenizer vocabulary, trained on the env's text."""


class TreeConfig(Section):
    """Groups sampled as trees (``agentgym.Tree``).

    Each group's ``rl.group_size`` leaves share the turns before they split, so SALT's
    graph has shared steps to work with.
    """

    width: int = Field(2, ge=2)
    """Continuations a path splits into at a branch turn."""
    every: int | None = Field(None, ge=1)
    """Branch every this many turns (turn 0 included) ..."""
    at: list[int] = []
    """... or at these turns ..."""
    uncertain: bool = False
    """... or where the policy was least sure (highest mean token surprisal of the reply),
    state after state until the group has its leaves."""

    @model_validator(mode="after")
    def _says_where(self) -> TreeConfig:
        if [self.every is not None, bool(self.at), self.uncertain].count(True) != 1:
            raise ValueError("say where a tree branches: every (a number of turns), at "
                             "(a list of turns) or uncertain: true, one of them")
        if any(turn < 0 for turn in self.at):
            raise ValueError(f"branch turns count from 0, got {self.at}")
        return self


class SamplingConfig(Section):
    """How the policy samples during training rollouts."""

    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling."""
    max_new_tokens: int = Field(32, ge=1)
    """Longest action."""
    stop: list[str] = []
    """Strings that end an action (e.g. ``</action>``); the text after them is dropped."""
    history_window: int | None = Field(None, ge=0)
    """How many past replies the policy sees (``None``: all). Training, SFT data and
    evaluation use it alike; windowed episodes are trained one row per reply, each with the
    context its reply was generated from."""
    tree: TreeConfig | None = None
    """Sample each group as a tree (see its section; ``None``: independent episodes). Turns
    a group's leaves share are stepped, generated and trained once."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """Rollout engine: ``transformers`` (the training model itself) or ``vllm`` (vLLM's
    offline engine, given the trainer's weights after every update)."""

    @field_validator("engine")
    @classmethod
    def _engine_installed(cls, engine: str) -> str:
        if engine == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("engine 'vllm' needs the vllm package, which is not installed "
                             "here (pip install 'agentgym[vllm]', see `./run test-vllm`); "
                             "use engine 'transformers'")
        return engine


class SFTConfig(Section):
    """Supervised warm-up on expert episodes."""

    episodes: int = Field(16, ge=0)
    """Expert episodes (on training tasks) to fit; 0 skips SFT."""
    epochs: int = Field(20, ge=0)
    """Passes over them."""
    lr: float = Field(3e-3, gt=0.0)
    """Learning rate of the warm-up's first epoch, cosine-decayed to a tenth by its last;
    rows are shuffled every epoch."""
    minibatch_size: int | None = Field(None, ge=1)
    """Rows per optimiser step of the warm-up; ``None``: ``optim.minibatch_size``. A model
    trained from scratch learns more per pass from more, smaller steps."""
    start_from: str | None = None
    """A warm-up checkpoint to start RL from instead of running SFT here (another run's
    ``checkpoints/sft``; ``{seed}`` is replaced by this run's seed), so the arms of an
    experiment share each seed's warm-up. Keep ``episodes`` as in the run that made it:
    RL's tasks are numbered after SFT's."""


class RLConfig(Section):
    """The RL schedule."""

    steps: int = Field(20, ge=0)
    """Policy updates."""
    tasks: int = Field(4, ge=1)
    """Tasks per update."""
    group_size: int = Field(8, ge=1)
    """Episodes per task (G)."""
    parallel_envs: int = Field(8, ge=1)
    """Episodes generated at once (one batched generate call serves them)."""
    max_length: int = Field(2048, ge=16)
    """Longest token row; longer episodes keep their first whole turns."""
    env_steps: int | None = Field(None, ge=1)
    """Stop once the updates have spent this many env steps (rollouts, each tree's shared
    steps once, and Vine's continuations), ``steps`` being the most updates; for comparing
    estimators at an equal budget. ``None``: ``steps`` updates."""
    skip_zero_advantage: bool = False
    """Leave out of the update the rows whose every advantage is 0 (groups of equal
    returns), and take no optimiser step when none is left, as DAPO's dynamic sampling
    drops such groups: they carry no policy gradient, only cost, and under ``token-mean``
    they dilute the rows that do. Needs ``loss.kl_coef: 0`` (the KL term is a gradient)."""


class OptimConfig(Section):
    """AdamW and the update schedule."""

    lr: float = Field(1e-3, gt=0.0)
    """Learning rate."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0.0)
    """Gradient clipping norm."""
    minibatch_size: int = Field(8, ge=1)
    """Rows per forward/backward pass."""
    grad_accum: int = Field(1, ge=1)
    """Minibatches accumulated per optimiser step."""


class LossConfig(Section):
    """The RL objective."""

    clip: float = Field(0.2, gt=0.0)
    """PPO ratio clip epsilon."""
    kl_coef: float = Field(0.0, ge=0.0)
    """Weight of KL(pi || pi_ref); 0 keeps no reference model."""
    kl_estimator: Literal["k1", "k3"] = "k3"
    """``k1`` (log ratio) or ``k3`` (the non-negative, unbiased ``exp(-x) + x - 1``)."""
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = \
        "token-mean"
    """How per-token losses become one: over all tokens, per sequence then over sequences,
    or summed and divided by a constant (Dr.GRPO)."""
    epochs: int = Field(1, ge=1)
    """Passes over each batch of rollouts."""
    tis_cap: float | None = Field(None, gt=0.0)
    """Truncated importance sampling: weight each token's surrogate by the trainer/sampler
    probability ratio, capped here (e.g. 2.0); null leaves the surrogate as it is."""


class LoraConfig(Section):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    r: int = Field(0, ge=0)
    """Adapter rank; 0 trains every weight."""
    alpha: int = Field(16, ge=1)
    """Scale of the adapters' update (``alpha / r``)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapters' input."""
    target_modules: list[str] | None = None
    """Module names to adapt; null lets peft pick the attention projections it knows."""


class EvalConfig(Section):
    """Evaluation on the held-out split."""

    every: int = Field(5, ge=1)
    """Evaluate every this many updates (and at the start and the end)."""
    tasks: int = Field(16, ge=0)
    """Held-out tasks per evaluation; 0 skips evaluation."""
    temperature: float = Field(0.0, ge=0.0)
    """0 evaluates greedily."""


def _reward(value: Any) -> Any:
    try:
        return value if isinstance(value, RewardSpec) else from_dict(value)
    except RewardSpecError as exc:
        raise ValueError(str(exc)) from None


def _estimator(value: Any) -> Any:
    if isinstance(value, (str, dict)):
        try:
            return estimator_from_dict(value)
        except InvalidOptionError as exc:
            raise ValueError(str(exc)) from None
    return value


RewardField = Annotated[RewardSpec, BeforeValidator(_reward),
                        PlainSerializer(lambda spec: spec.to_dict())]
EstimatorField = Annotated[Any, BeforeValidator(_estimator),
                           PlainSerializer(estimator_to_dict)]


class WandbConfig(Section):
    """wandb, when ``logging`` lists it."""

    project: str = "agentgym"
    """The wandb project."""
    mode: Literal["offline", "online"] = "offline"
    """``offline``: the run is written to ``OUTPUT/wandb`` only (``wandb sync`` uploads it
    later); ``online`` needs ``wandb login``."""


class TrainConfig(Section):
    """Everything one training run needs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    env: EnvConfig | list[EnvConfig] = EnvConfig()
    """The env to train on (see its section), or a list of envs with weights trained on
    together (each update's tasks drawn by weight; see ``trainers.env_mix``)."""
    model: ModelConfig = ModelConfig()
    """The policy model."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling during rollouts."""
    reward: RewardField = from_dict({"type": "outcome", "channel": "success"})
    """A reward spec (``{type: ..., ...}``, see ``rewards``): the env's channels to per-turn
    rewards."""
    estimator: EstimatorField = estimator_from_dict({"type": "salt", "base": "grpo"})
    """An advantage estimator: ``{type: grpo | dr_grpo | rloo | reinforce_pp | gigpo |
    salt, ...}``; SALT takes ``base`` (another estimator), ``match`` (``state_key``,
    ``observation``, ``prefix``) and ``count`` (``trajectory``, ``occurrence``)."""
    sft: SFTConfig = SFTConfig()
    """Supervised warm-up."""
    rl: RLConfig = RLConfig()
    """The RL schedule."""
    optim: OptimConfig = OptimConfig()
    """The optimiser."""
    loss: LossConfig = LossConfig()
    """The RL objective."""
    lora: LoraConfig = LoraConfig()
    """LoRA adapters."""
    eval: EvalConfig = EvalConfig()
    """Held-out evaluation."""
    seed: int = Field(0, ge=0)
    """Seeds the model, task order and sampling."""
    seeds: list[Annotated[int, Field(ge=0)]] = []
    """Run the config once per seed instead, each in ``OUTPUT/seed-N`` with ``seed: N``
    (``agentgym plot OUTPUT`` draws their mean with a 95% band); empty: one run."""
    output: str = "runs/train"
    """Folder the run writes (config, metrics, episodes, checkpoints)."""
    checkpoint_every: int = Field(10, ge=1)
    """Save a checkpoint every this many updates (and at the end)."""
    logging: list[Literal["jsonl", "tensorboard", "wandb"]] = ["jsonl"]
    """Where metrics go besides ``OUTPUT/metrics.jsonl`` (always written: resuming, plots
    and eval read it): ``tensorboard`` (``OUTPUT/tensorboard``), ``wandb`` (``OUTPUT/wandb``)."""
    wandb: WandbConfig = WandbConfig()
    """wandb's project and mode."""

    @model_validator(mode="after")
    def _skips_only_rows_without_gradient(self) -> TrainConfig:
        if self.rl.skip_zero_advantage and self.loss.kl_coef > 0:
            raise ValueError(f"rl.skip_zero_advantage drops rows with no policy gradient, "
                             f"but with loss.kl_coef {self.loss.kl_coef} every row has the KL "
                             f"term's: set kl_coef to 0 or skip_zero_advantage to false")
        return self

    @model_validator(mode="after")
    def _fits_the_env(self) -> TrainConfig:
        check_against_env(self)
        return self

    @property
    def envs(self) -> list[EnvConfig]:
        """The envs trained on: ``env``, or each env of its list."""
        return self.env if isinstance(self.env, list) else [self.env]

    @field_validator("env")
    @classmethod
    def _named_apart(cls, env: EnvConfig | list[EnvConfig]) -> EnvConfig | list[EnvConfig]:
        if isinstance(env, list):
            labels = [e.label for e in env]
            if not labels:
                raise ValueError("list at least one env")
            if len(set(labels)) < len(labels):
                raise ValueError(f"envs need distinct names (metrics carry them), got "
                                 f"{labels}: give repeated ids a name: ...")
        return env

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds must differ (each names a run folder), got {seeds}")
        return seeds

    def for_seeds(self) -> list[TrainConfig]:
        """One config per seed of ``seeds`` (its own output folder), or just this one."""
        if not self.seeds:
            return [self]
        return [self.model_copy(update={"seed": seed, "seeds": [],
                                        "output": str(Path(self.output) / f"seed-{seed}")})
                for seed in self.seeds]

    @property
    def warm_up_folder(self) -> Path | None:
        """The warm-up checkpoint RL starts from (``sft.start_from`` for this seed), if any."""
        start = self.sft.start_from
        return None if start is None else Path(start.replace("{seed}", str(self.seed)))

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what ``config.json`` holds; loads back the same)."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------ checks across sections
def check_against_env(config: TrainConfig) -> None:
    """The env exists, the model folder exists, and the reward reads channels the env has."""
    from agentgym.registry import spec

    if config.model.name != "tiny":
        from trainers.models import resolve_model

        try:
            resolve_model(config.model.name)
        except InvalidOptionError as exc:
            raise _AtKey(("model", "name"), str(exc)) from None
    listed = isinstance(config.env, list)
    for n, env in enumerate(config.envs):
        at: tuple[str, ...] = ("env", str(n)) if listed else ("env",)
        try:
            env_class: Any = spec(env.id).load()
        except KeyError as exc:
            raise _AtKey((*at, "id"), str(exc)) from None
        _check_reward(config, env.id, env_class)


def _check_reward(config: TrainConfig, env_id: str, env_class: Any) -> None:
    """The reward spec reads only channels ``env_class`` records."""
    try:
        config.reward(_declared_episode(env_class))
    except MissingChannelError as exc:
        raise _AtKey(("reward",), (
            f"the reward spec names a channel {env_id} does not record. {exc} Turn "
            f"channels: {', '.join(env_class.turn_channels)}; outcome channels: "
            f"{', '.join(env_class.outcome_channels)}.")) from None
    except RewardSpecError as exc:
        if "gold" not in str(exc):  # specs that read turn info are checked at run time
            raise _AtKey(("reward",), str(exc)) from None


class _AtKey(ValueError):
    """A cross-section problem, raised at the key it is about."""

    def __init__(self, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


def _declared_episode(env_class: Any) -> Any:
    from agentgym.records import Episode, Outcome, Turn

    turns = [Turn(index=i, observation="", action="",
                  reward_channels=dict.fromkeys(env_class.turn_channels, 0.0)) for i in range(2)]
    return Episode(env_id="check", task_id="check", turns=turns,
                   outcome=Outcome(channels=dict.fromkeys(env_class.outcome_channels, 0.0)))


# ------------------------------------------------------------------ loading
def load_config(path: str | Path, overrides: Sequence[str] | dict[str, Any] = ()) -> TrainConfig:
    """Read and check a YAML config, then apply ``key=value`` overrides.

    Args:
        path: The YAML file.
        overrides: ``["rl.steps=3", "loss.kl_coef=0.1"]`` (values read as YAML) or a dict
            ``{"rl.steps": 3}``; each sets one field, at any depth.

    Raises:
        ConfigError: naming the file and line (or the override), the key, what was given
            and what is allowed.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file.")
    text = path.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections; got {type(data).__name__}.")
    lines = {key: f"{path}:{line}" for key, line in _key_lines(node).items()}
    for key, value in _parse_overrides(overrides).items():
        _set(data, key, value)
        lines[key] = f"override {'.'.join(key)}={value!r}"
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, lines)) from None


def _parse_overrides(overrides: Sequence[str] | dict[str, Any]) -> dict[tuple[str, ...], Any]:
    import yaml

    if isinstance(overrides, dict):
        return {tuple(k.split(".")): v for k, v in overrides.items()}
    parsed = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: write key=value, e.g. rl.steps=3 or "
                              "loss.kl_coef=0.1.")
        parsed[tuple(key.strip().split("."))] = yaml.safe_load(raw) if raw.strip() else ""
    return parsed


def _set(data: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    for part in key[:-1]:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"override {'.'.join(key)}: {part!r} is not a section.")
    data[key[-1]] = value


def _key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """``("rl", "steps") -> line`` for every key and list item in the YAML document.

    A list item's key is its index as text: ``("env", "1", "id")``.
    """
    lines: dict[tuple[str, ...], int] = {}
    if node is not None and hasattr(node, "value") and isinstance(node.value, list):
        for index, item in enumerate(node.value):
            key, value = item if isinstance(item, tuple) else (None, item)
            where = (*prefix, str(key.value if key is not None else index))
            lines[where] = (key or value).start_mark.line + 1
            lines.update(_key_lines(value, where))
    return lines


def _describe(exc: ValidationError, path: Path, lines: dict[tuple[str, ...], str]) -> str:
    """One line per problem: ``file:line: key: what is wrong (got ...)``."""
    out = []
    for error in exc.errors(include_url=False):
        key = tuple(str(part) for part in error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _AtKey):
            key, message = cause.key, str(cause)
        elif error["type"] == "extra_forbidden":
            message = _unknown_key(key)
        else:
            message = error["msg"].removeprefix("Value error, ")
            if not isinstance(error["input"], (dict, RewardSpec)) and error["type"] != \
                    "value_error":
                message += f" (got {error['input']!r})"
        where = next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines),
                     str(path))
        name = "" if error["type"] == "extra_forbidden" else f"{'.'.join(key) or 'config'}: "
        out.append(f"{where}: {name}{message}")
    return "\n".join(out)


def _unknown_key(key: tuple[str, ...]) -> str:
    model: Any = TrainConfig
    for part in key[:-1]:  # a section's fields
        model = model.model_fields[part].annotation
    allowed = list(model.model_fields)
    section = ".".join(key[:-1]) or "the top level"
    return (f"unknown key {key[-1]!r} in {section}; allowed: {', '.join(allowed)}."
            f"{did_you_mean(key[-1], allowed)}")


# ------------------------------------------------------------------ the reference
def config_reference() -> str:
    """Markdown: every section and field with its type, default and meaning."""
    lines = ["# Training config reference", "",
             "Generated from `trainers/config.py` by `agentgym config-reference`; "
             "`tests/test_config.py` checks it is current.", ""]
    top = [(name, field) for name, field in TrainConfig.model_fields.items()
           if _top_section(field.annotation) is None]
    lines += _table("Top level", top)
    for name, field in TrainConfig.model_fields.items():
        if (section := _top_section(field.annotation)) is not None:
            listed = section is not field.annotation
            lines += _section_tables(name + (" (one, or a list)" if listed else ""), section)
    return "\n".join(lines + _estimator_tables())


def _top_section(annotation: Any) -> Any:
    """The section class of a ``Section`` or ``Section | list[Section]`` field, else None."""
    if _is_section(annotation):
        return annotation
    options = typing.get_args(annotation)
    plain = [a for a in options if _is_section(a)]
    listed = [a for a in options if typing.get_args(a)[:1] == tuple(plain[:1])]
    return plain[0] if plain and listed and len(options) == 2 else None


def _section_tables(path: str, section: Any) -> list[str]:
    """A section's table, then the tables of the sections inside it (``sampling.tree``)."""
    summary = " ".join(section.__doc__.split("\n\n")[0].split())
    name, _, listed = path.partition(" ")
    lines = _table(f"`{name}`{' ' + listed if listed else ''}: {summary}",
                   list(section.model_fields.items()))
    for name, field in section.model_fields.items():
        if (inner := _optional_section(field.annotation)) is not None:
            lines += _section_tables(f"{path.partition(' ')[0]}.{name}", inner)
    return lines


def _optional_section(annotation: Any) -> Any:
    """The section class of a ``Section | None`` field, else ``None``."""
    return next((a for a in typing.get_args(annotation) if _is_section(a)), None)


def _estimator_tables() -> list[str]:
    from trainers.estimator_specs import ESTIMATORS

    rows = ["## Estimator settings", "",
            "`estimator: {type: NAME, ...}` takes these settings (SALT's `matcher` is written "
            "`match: state_key | observation | prefix`).", "",
            "| type | setting | type | default |", "|---|---|---|---|"]
    for kind, cls in ESTIMATORS.items():  # cls: Any (a pydantic dataclass)
        for name, default in estimator_to_dict(cls()).items():
            if name == "type":
                continue
            hints = typing.get_type_hints(cls, include_extras=True)
            annotation = _annotation_text(hints[name]) if name in hints else "str"  # match
            annotation = "estimator" if name == "base" else annotation.replace("|", "\\|")
            rows.append(f"| `{kind}` | `{name}` | {annotation} | `{default}` |")
    return [*rows, ""]


def _annotation_text(annotation: Any) -> str:
    """``int >= 1`` for ``Annotated[int, Field(ge=1)]``; other types as Python writes them."""
    if isinstance(annotation, type):
        return annotation.__name__
    if typing.get_origin(annotation) is not typing.Annotated:
        return str(annotation).replace("typing.", "")
    base, *marks = typing.get_args(annotation)
    bounds = [f"{sign} {getattr(rule, name)}" for mark in marks
              for rule in getattr(mark, "metadata", [])
              for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
              if getattr(rule, name, None) is not None]
    return " ".join([getattr(base, "__name__", str(base)), *bounds])


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Section)


def _table(title: str, fields: list[tuple[str, Any]]) -> list[str]:
    rows = [f"## {title}", "", "| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in fields:
        default = field.get_default(call_default_factory=True)
        shown = _plain(default)
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_name(field)} | `{shown}` | {meaning} |")
    return [*rows, ""]


def _plain(value: Any) -> Any:
    if isinstance(value, RewardSpec):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return estimator_to_dict(value)
    return value


def _type_name(field: Any) -> str:
    if (section := _optional_section(field.annotation)) is not None:
        return f"section ({section.__name__}) \\| None"
    text = str(field.annotation).replace("typing.", "")
    if "RewardSpec" in text:
        return "reward spec"
    if field.annotation is Any or "Estimator" in text:
        return "estimator"
    for bound in field.metadata:
        for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(bound, name, None) is not None:
                text += f" {sign} {getattr(bound, name)}"
    return text.replace("|", "\\|").replace("<class '", "").replace("'>", "")
