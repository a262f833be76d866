"""The reward-spec interface: an Episode in, one float per turn out.

A spec is a small frozen dataclass. It reads the named channels an env recorded (per turn in
``turn.reward_channels``, per episode in ``episode.outcome.channels``) and returns per-turn
rewards; outcome terms land on the last turn unless a spec says otherwise. Specs nest, print
as readable trees (their ``repr``), and round-trip through plain dicts and YAML::

    spec = GatedAccumulation(high="resolved", threshold=1.0, immediate=Weighted({"format": 0.1}))
    spec.to_dict()  # {"type": "gated", "high": "resolved", "threshold": 1.0, "immediate": {...}}
    from_dict(spec.to_dict()) == spec
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.errors import AgentGymError, did_you_mean
from agentgym.records import Episode


class RewardSpecError(AgentGymError, ValueError):
    """A spec that cannot be built or applied: bad config, missing channel, bad value."""


class MissingChannelError(RewardSpecError, KeyError):
    """A spec names a channel the episode did not record."""

    def __str__(self) -> str:
        return str(self.args[0])


_SPEC_TYPES: dict[str, type[RewardSpec]] = {}


@dataclasses.dataclass(frozen=True)
class RewardSpec:
    """Base class of reward specs. Subclasses set ``type_name`` and implement ``rewards``."""

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            _SPEC_TYPES[cls.type_name] = cls

    def __call__(self, episode: Episode) -> list[float]:
        """Per-turn rewards of ``episode`` (one float per turn, all finite)."""
        if not episode.turns:
            return []
        rewards = self.rewards(episode)
        bad = [i for i, r in enumerate(rewards) if not math.isfinite(r)]
        if bad:
            raise RewardSpecError(
                f"{self!r} produced a non-finite reward on turn(s) {bad} of episode "
                f"{episode.episode_id}; check the recorded channels for NaN/inf."
            )
        return rewards

    def rewards(self, episode: Episode) -> list[float]:
        """Compute per-turn rewards (episode has at least one turn)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data: ``{"type": ..., <fields>}``, nested specs as dicts."""
        data: dict[str, Any] = {"type": self.type_name}
        for field in dataclasses.fields(self):
            data[field.name] = _plain(getattr(self, field.name))
        return data

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RewardSpec:
        """Build this spec from its fields as plain data (nested specs as dicts)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in config if k not in names]
        if unknown:
            raise RewardSpecError(
                f"{cls.__name__} has no key {unknown[0]!r}; its keys are {', '.join(names)}."
                f"{did_you_mean(unknown[0], names)}"
            )
        return cls(**{k: _nested(v) for k, v in config.items()})

    def __add__(self, other: RewardSpec) -> RewardSpec:
        from rewards.basic import Sum

        return Sum(terms=(self, other))


def _plain(value: Any) -> Any:
    if isinstance(value, RewardSpec):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def spec_types() -> dict[str, type[RewardSpec]]:
    """Every spec type name with its class."""
    import rewards  # noqa: F401  (importing the package registers every spec)

    return dict(_SPEC_TYPES)


def from_dict(data: Mapping[str, Any] | RewardSpec) -> RewardSpec:
    """Build a spec from :meth:`RewardSpec.to_dict` output (or pass a spec through).

    Raises:
        RewardSpecError: for an unknown ``type`` or key, naming what exists.
    """
    if isinstance(data, RewardSpec):
        return data
    if not isinstance(data, Mapping) or "type" not in data:
        raise RewardSpecError(f"A reward spec is a mapping with a 'type' key; got {data!r}.")
    types = spec_types()
    kind = data["type"]
    if kind not in types:
        raise RewardSpecError(
            f"Unknown reward spec type {kind!r}. Known types: {', '.join(sorted(types))}."
            f"{did_you_mean(str(kind), types)}"
        )
    cls = types[kind]
    return cls.from_config({k: v for k, v in data.items() if k != "type"})


def _nested(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return from_dict(value)
    if isinstance(value, list) and value and all(isinstance(v, Mapping) and "type" in v
                                                 for v in value):
        return tuple(from_dict(v) for v in value)
    return value


def to_yaml(spec: RewardSpec) -> str:
    """The spec as a YAML document."""
    import yaml

    return yaml.safe_dump(spec.to_dict(), sort_keys=False)


def from_yaml(text: str) -> RewardSpec:
    """A spec from a YAML document (see :func:`to_yaml`)."""
    import yaml

    return from_dict(yaml.safe_load(text))


# ---------------------------------------------------------------- reading channels
def turn_channel(episode: Episode, name: str) -> list[float]:
    """The values of a turn channel, one per turn.

    Raises:
        MissingChannelError: naming the channel and the ones the episode has.
    """
    values = []
    for turn in episode.turns:
        if name not in turn.reward_channels:
            have = sorted(turn.reward_channels)
            raise MissingChannelError(
                f"Turn {turn.index} of episode {episode.episode_id} ({episode.env_id}) has no "
                f"reward channel {name!r}; it has: {', '.join(have) or '(none)'}."
                f"{did_you_mean(name, have)}"
            )
        values.append(float(turn.reward_channels[name]))
    return values


def outcome_channel(episode: Episode, name: str) -> float:
    """The value of an outcome channel.

    Raises:
        MissingChannelError: naming the channel and the ones the episode has.
    """
    channels = episode.outcome.channels
    if name not in channels:
        have = sorted(channels)
        why = f" (the rollout failed: {episode.error['type']})" if episode.error else ""
        raise MissingChannelError(
            f"Episode {episode.episode_id} ({episode.env_id}) has no outcome channel {name!r}"
            f"{why}; it has: {', '.join(have) or '(none)'}.{did_you_mean(name, have)}"
        )
    return float(channels[name])


def check_number(value: Any, what: str) -> float:
    """``value`` as a float, or a :class:`RewardSpecError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RewardSpecError(f"{what} must be a number, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise RewardSpecError(f"{what} must be finite, got {value!r}.")
    return float(value)


def on_last_turn(value: float, n_turns: int) -> list[float]:
    """``value`` placed on the last of ``n_turns`` turns, zeros elsewhere."""
    return [0.0] * (n_turns - 1) + [value]


def add(*columns: Sequence[float]) -> list[float]:
    """Element-wise sum of per-turn reward lists."""
    return [sum(values) for values in zip(*columns, strict=True)]
