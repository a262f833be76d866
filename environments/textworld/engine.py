"""The adapter to the TextWorld engine: starting games, cleaning text, fingerprinting state."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_BANNER_LINE = re.compile(r"\$\$|^[\s_|\\/]+$")
ENGINE_LOCK = threading.RLock()
"""Held while TextWorld makes or loads a game: it parses logic with one shared, unsafe parser."""


def clean_feedback(text: str) -> str:
    """Drop TextWorld's ASCII-art banner and its status-bar line (``>   -= Room =-0/1``)."""
    prompt = text.rfind("\n>")
    if prompt >= 0 and text[prompt + 2:prompt + 10].isspace():
        text = text[:prompt]
    if "$$" in text:  # the banner only comes with the first observation
        text = "\n".join(ln for ln in text.splitlines()
                         if not (ln.strip() and _BANNER_LINE.search(ln)))
    return text.strip()


def start_engine(path: Path, infos: Any) -> Any:
    """Start TextWorld on a game file, without jericho's "not fully supported" warning.

    TextWorld tracks score and state itself, so jericho's own detection is not needed. One
    game loads at a time per process: TextWorld's logic parser is shared and not thread-safe
    (envs of a rollout, or sessions of ``agentgym serve``, load games from several threads).
    """
    import textworld

    with ENGINE_LOCK, quiet_engine():
        return textworld.start(str(path), request_infos=infos)


@contextmanager
def quiet_engine() -> Iterator[None]:
    """Silence jericho's "not fully supported" warning: TextWorld tracks state itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is not fully supported")
        yield


_LIVE = ("_wrapped_env", "_jericho")  # a layer's links to the running interpreter


def saved_state(engine: Any) -> list[Any]:
    """The running game's whole state.

    The interpreter's memory, and each TextWorld layer's own attributes (its state tracking,
    with the world's facts and quest progress). In-process only: the layers hold the loaded
    game. Later steps never change it.
    """
    saved: list[Any] = []
    layer = engine
    while layer is not None:
        saved.append({k: _detached(v) for k, v in vars(layer).items() if k not in _LIVE})
        if getattr(layer, "_jericho", None) is not None:
            saved.append(layer._jericho.get_state())
        layer = getattr(layer, "_wrapped_env", None)
    return saved


def load_saved_state(engine: Any, saved: list[Any]) -> None:
    """Put the running game (of the same file) back into a :func:`saved_state`."""
    entries, layer = iter(saved), engine
    while layer is not None:
        vars(layer).update({k: _detached(v) for k, v in next(entries).items()})
        if getattr(layer, "_jericho", None) is not None:
            layer._jericho.set_state(next(entries))
        layer = getattr(layer, "_wrapped_env", None)


def _detached(value: Any) -> Any:
    """A copy of what a step changes in place (quest progress, lists); the rest as is.

    Game states are replaced by each step, never changed after it.
    """
    from textworld.generator.game import GameProgression

    if isinstance(value, GameProgression):
        copied = copy.copy(value)
        copied.state = value.state.copy()
        copied.quest_progressions = [q.copy() for q in value.quest_progressions]
        return copied
    return list(value) if isinstance(value, list) else value


def request_infos() -> Any:
    """The game-state fields the env asks TextWorld for on every step."""
    import textworld

    return textworld.EnvInfos(admissible_commands=True, policy_commands=True, facts=True,
                              won=True, lost=True, score=True, max_score=True, objective=True)


def state_fingerprint(facts: list[Any]) -> str:
    """A canonical key of the world state: a hash of its sorted logical facts.

    Built from each fact's predicate and typed arguments (not ``str(fact)``, which is twice
    as slow), and hashed with SHA-1 so that keys agree across processes.
    """
    blob = "\n".join(sorted(
        f"{fact.name}({','.join(f'{arg.name}:{arg.type}' for arg in fact.arguments)})"
        for fact in facts
    ))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
