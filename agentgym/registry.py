"""The env registry: ``make``, ``register``, ``list_envs``.

Built-in families are named here by import string, so ``import agentgym`` never imports an
engine; third-party envs register through the ``agentgym.envs`` entry-point group or by calling
:func:`register`. Every id is also registered with Gymnasium as ``agentgym/<id>``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import gymnasium

from agentgym.errors import InvalidOptionError, UnknownEnvError, check_options, did_you_mean

if TYPE_CHECKING:
    from agentgym.core import AgentEnv

_DEFAULT = object()  # make(): the env class's own step_timeout


@dataclass(frozen=True)
class EnvSpec:
    """How to build one registered env, and how the replay viewer shows its observations.

    Attributes:
        id: The env id, e.g. ``"Search-v0"``.
        entry_point: ``"module:Class"`` (or a factory) that builds the env.
        description: One line for ``agentgym list``.
        kwargs: Constructor defaults.
        renderer: ``"module:function"`` taking ``(observation_text, reference)`` and returning
            a rich renderable, for ``agentgym replay`` and the viewer; ``None``: plain text.
    """

    id: str
    entry_point: str
    description: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    renderer: str | None = None

    def load(self) -> type:
        """Import and return the env class (or factory)."""
        return _import(self.entry_point)

    def load_renderer(self) -> Callable[[str, dict[str, Any]], Any] | None:
        """Import and return the observation renderer, if the family has one."""
        return _import(self.renderer) if self.renderer else None


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


_REGISTRY: dict[str, EnvSpec] = {}
_entry_points_loaded = False

BUILTIN = [
    EnvSpec(
        "TextWorld-v0",
        "environments.textworld:TextWorldEnv",
        "Generated TextWorld text adventures (presets easy/medium/hard/cooking) on the real "
        "TextWorld engine.",
    ),
    EnvSpec(
        "ALFWorld-v0",
        "environments.alfworld:ALFWorldEnv",
        "ALFWorld households (six task types) on alfworld's own PDDL engine, tasks generated "
        "offline; official data when ALFWORLD_DATA points to it.",
    ),
    EnvSpec(
        "SWE-v0",
        "environments.swe:SWEEnv",
        "Fix bugs injected into real Python projects with bash/view/str_replace/create tools, in "
        "docker or bubblewrap sandboxes, judged by the project's tests.",
    ),
    EnvSpec(
        "Search-v0",
        "environments.search:SearchEnv",
        "Search-R1-style retrieval QA over a generated fictional encyclopedia (BM25, offline).",
        renderer="environments.search.render:observation",
    ),
    EnvSpec(
        "WebShop-v0",
        "environments.webshop:WebShopEnv",
        "WebShop: search, browse and buy from a generated catalog, scored by WebShop's reward.",
        renderer="environments.webshop.render:observation",
    ),
]


def register(spec: EnvSpec) -> None:
    """Register an env under ``spec.id`` here and as ``agentgym/<id>`` in Gymnasium."""
    _REGISTRY[spec.id] = spec
    gym_id = f"agentgym/{spec.id}"
    if gym_id not in gymnasium.registry:
        gymnasium.register(id=gym_id, entry_point=spec.entry_point, kwargs=dict(spec.kwargs))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="agentgym.envs"):
        if ep.name not in _REGISTRY:
            register(EnvSpec(ep.name, ep.value))


def spec(env_id: str) -> EnvSpec:
    """The :class:`EnvSpec` of a registered id.

    Raises:
        UnknownEnvError: naming the known ids and the closest match.
    """
    if env_id.startswith("agentgym/"):
        env_id = env_id.removeprefix("agentgym/")
    if ":" in env_id and env_id not in _REGISTRY:
        return _unregistered(env_id)
    if env_id not in _REGISTRY:
        _load_entry_points()
    if env_id not in _REGISTRY:
        known = sorted(_REGISTRY)
        raise UnknownEnvError(
            f"No environment {env_id!r}. Known ids: {', '.join(known)}."
            f"{did_you_mean(env_id, known)}"
        )
    return _REGISTRY[env_id]


def _unregistered(target: str) -> EnvSpec:
    """A spec for ``module:Class``, an env class that no registry entry names."""
    module_name, _, attr = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownEnvError(f"Cannot load {target!r} ({exc}); write module:Class with an "
                              "importable module, e.g. my_envs:CoinEnv.") from None
    return EnvSpec(getattr(found, "env_id", "") or target, target)


def make(env_id: str, *, step_timeout: float | None | object = _DEFAULT,
         **kwargs: Any) -> AgentEnv:
    """Build a registered env, e.g. ``make("TextWorld-v0", preset="easy")``.

    Args:
        env_id: A registered id (``agentgym.list_envs()`` lists them),
            ``"remote:http://host:port/ID"`` for an env served by ``agentgym serve``, or
            ``"module:Class"`` for an env class that is not registered.
        step_timeout: Seconds one step may take before the episode is stopped and the
            engine replaced (see ``AgentEnv.step_timeout``; ``None``: unbounded).
        **kwargs: Passed to the env's constructor, over the spec's defaults.

    Raises:
        UnknownEnvError: for an id that is not registered.
        InvalidOptionError: for a keyword the env does not accept.
    """
    if env_id.startswith("remote:"):
        from agentgym.remote import RemoteEnv

        return RemoteEnv(env_id.removeprefix("remote:"), **kwargs)
    env_spec = spec(env_id)
    factory = env_spec.load()
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        check_options(kwargs, [n for n in params if n != "self"], f"argument of {env_spec.id}")
    env = factory(**{**env_spec.kwargs, **kwargs})
    env.unwrapped.env_id = env_spec.id  # records say which env, custom ones included
    if step_timeout is not _DEFAULT:
        if step_timeout is not None and not (isinstance(step_timeout, (int, float))
                                             and step_timeout > 0):
            raise InvalidOptionError(f"step_timeout must be a positive number of seconds or "
                                     f"None, got {step_timeout!r}.")
        env.unwrapped.step_timeout = step_timeout
    return env


def list_envs() -> dict[str, str]:
    """Every registered id with its one-line description."""
    _load_entry_points()
    return {k: _REGISTRY[k].description for k in sorted(_REGISTRY)}


for _spec in BUILTIN:
    register(_spec)
