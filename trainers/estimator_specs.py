"""Estimators as plain data: ``{"type": "salt", "base": "grpo", "match": "state_key"}``.

:func:`estimator_from_dict` builds one (its settings checked by pydantic as the estimator is
built) and :func:`estimator_to_dict` writes one back, so configs and ``config.json``
round-trip. SALT's ``base`` is another estimator, its ``match`` names a state matcher.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ValidationError

from agentgym.errors import InvalidOptionError, did_you_mean
from trainers.estimators import GRPO, RLOO, DrGRPO, Estimator, ReinforcePP, Vine
from trainers.gigpo import GiGPO
from trainers.graph import ObservationMatch, PrefixMatch, StateKeyMatch
from trainers.salt import SALT

ESTIMATORS: dict[str, Any] = {cls.type_name: cls
                               for cls in (GRPO, DrGRPO, RLOO, ReinforcePP, GiGPO, SALT, Vine)}
MATCHERS: dict[str, type] = {"state_key": StateKeyMatch, "observation": ObservationMatch,
                             "prefix": PrefixMatch}


def estimator_from_dict(config: dict[str, Any] | str) -> Estimator:
    """Build an estimator from ``{"type": ..., <settings>}`` (or just its type name).

    Raises:
        InvalidOptionError: an unknown type, setting or value, naming what is allowed.
    """
    settings: dict[str, Any] = {"type": config} if isinstance(config, str) else dict(config)
    kind = settings.pop("type", None)
    if kind not in ESTIMATORS:
        raise InvalidOptionError(f"unknown estimator type {kind!r}; types: "
                                 f"{', '.join(ESTIMATORS)}.{did_you_mean(str(kind), ESTIMATORS)}")
    if kind == "salt":
        settings["base"] = estimator_from_dict(settings.get("base", "grpo"))
        match = settings.pop("match", "state_key")
        if match not in MATCHERS:
            raise InvalidOptionError(f"unknown SALT match {match!r}; matches: "
                                     f"{', '.join(MATCHERS)}.{did_you_mean(str(match), MATCHERS)}")
        settings["matcher"] = MATCHERS[match]()
    try:
        return ESTIMATORS[kind](**settings)
    except ValidationError as exc:
        raise InvalidOptionError(_settings_problem(kind, exc)) from None


def _settings_problem(kind: str, exc: ValidationError) -> str:
    allowed = [f.name for f in dataclasses.fields(ESTIMATORS[kind])]
    problems = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(p) for p in error["loc"])
        if error["type"] == "unexpected_keyword_argument":
            problems.append(f"unknown setting {name!r}; settings: {', '.join(allowed)}."
                            f"{did_you_mean(name, allowed)}")
        else:
            problems.append(f"{name}: {error['msg']} (got {error['input']!r})")
    return f"{kind}: " + " ".join(problems)


def estimator_to_dict(estimator: Any) -> dict[str, Any]:
    """The estimator as plain data that :func:`estimator_from_dict` builds back."""
    data: dict[str, Any] = {"type": estimator.type_name}
    for field in dataclasses.fields(estimator):
        value = getattr(estimator, field.name)
        if field.name == "base":
            value = estimator_to_dict(value)
        elif field.name == "matcher":
            data["match"] = next(name for name, cls in MATCHERS.items() if type(value) is cls)
            continue
        data[field.name] = value
    return data
