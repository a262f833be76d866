"""ALFWorld's engine: TextWorld's PDDL env with alfworld's demangler, made fast by caching.

The stock engine re-translates the PDDL problem with Fast Downward on every reset (twice:
once plain, once optimised for replanning) and re-parses every command template with TatSu on
every step. Both are pure functions of text that never changes within a game, so
:func:`engine_caches` memoizes them around our engine's calls: same engine, same code paths,
byte-identical transcripts, several times the steps per second.

Two command dialects share one engine: ``"0.4"`` is alfworld 0.4's grammar (``move X to Y``,
"You arrive at cabinet 1."); ``"legacy"`` is the grammar of ReAct-era prompts and papers
(``put X in/on Y``, "You arrive at loc 8.").
"""

from __future__ import annotations

import copy
import importlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from agentgym.errors import InvalidOptionError, did_you_mean

DIALECTS: tuple[str, ...] = ("0.4", "legacy")

# (pattern in either dialect's grammar, replacement per dialect)
_DIALECT_RULES = (
    (r'template :: "(?:move \{o\} to \{r\}|put \{o\} in/on \{r\})";',
     {"0.4": 'template :: "move {o} to {r}";', "legacy": 'template :: "put {o} in/on {r}";'}),
    (r'"rhs": "You (?:move the \{o\.name\} to|put the \{o\.name\} in/on) the \{r\.name\}\."',
     {"0.4": '"rhs": "You move the {o.name} to the {r.name}."',
      "legacy": '"rhs": "You put the {o.name} in/on the {r.name}."'}),
    (r'"rhs": "You arrive at \{(?:r|lend)\.name\}\. #examineReceptacle\.feedback#"',
     {"0.4": '"rhs": "You arrive at {r.name}. #examineReceptacle.feedback#"',
      "legacy": '"rhs": "You arrive at {lend.name}. #examineReceptacle.feedback#"'}),
)


def check_dialect(dialect: str) -> str:
    """``dialect`` if it is one we speak, else an error naming them."""
    if dialect not in DIALECTS:
        raise InvalidOptionError(f"Unknown ALFWorld dialect {dialect!r}. Dialects: "
                                 f"{', '.join(DIALECTS)}.{did_you_mean(dialect, DIALECTS)}")
    return dialect


def in_dialect(grammar: str, dialect: str) -> str:
    """``grammar`` (either dialect) rewritten to speak ``dialect``."""
    check_dialect(dialect)
    for pattern, replacement in _DIALECT_RULES:
        grammar, count = re.subn(pattern, replacement[dialect], grammar)
        if count == 0:
            raise ValueError(f"This ALFWorld grammar has no line matching {pattern!r}; "
                             "it is neither alfworld 0.4's nor the legacy grammar.")
    return grammar


def translate_command(command: str, dialect: str) -> str:
    """A command of either dialect spelled the ``dialect`` way (``move X to Y`` <-> ``put``)."""
    put = re.fullmatch(r"put (.+) in/on (.+)", command)
    move = re.fullmatch(r"move (.+) to (.+)", command)
    if dialect == "legacy" and move:
        return f"put {move[1]} in/on {move[2]}"
    if dialect == "0.4" and put:
        return f"move {put[1]} to {put[2]}"
    return command


@cache
def domain_text() -> str:
    """Alfworld's PDDL domain (``alfred.pddl``)."""
    from alfworld.info import ALFRED_PDDL_PATH

    return Path(ALFRED_PDDL_PATH).read_text()


@cache
def grammar_text() -> str:
    """Alfworld's text grammar (``alfred.twl2``) with its ``UNKNOWN GOAL`` placeholder."""
    from alfworld.info import ALFRED_TWL2_PATH

    return Path(ALFRED_TWL2_PATH).read_text()


# ---------------------------------------------------------------------------- caches
_cache_lock = threading.Lock()
_cache_users = 0
_originals: dict[str, Any] = {}
_sas: dict[tuple, Any] = {}
_logic: dict[str, Any] = {}
_symbols: dict[str, Any] = {}
_queries: dict[tuple, Any] = {}


def _memo_pddl2sas(domain: str, problem: str, verbose: bool = False,
                   optimize: bool = False) -> Any:
    key = (domain, problem, optimize)
    if key not in _sas:
        _sas[key] = _originals["pddl2sas"](domain, problem, verbose=verbose, optimize=optimize)
    return _sas[key]


def _memo_logic_parse(text: str, **kwargs: Any) -> Any:
    # parsed actions and grammar are read-only to the engine, so sharing them is safe
    if text not in _logic:
        _logic[text] = _originals["logic_parse"](text, **kwargs)
    return _logic[text]


def _memo_symbols_parse(text: str, **kwargs: Any) -> Any:
    # the engine writes a context into the symbols it derives, so each caller gets a copy
    if text not in _symbols:
        _symbols[text] = _originals["symbols_parse"](text, **kwargs)
    return copy.deepcopy(_symbols[text])


def _memo_query_parse(text: str, **kwargs: Any) -> Any:
    # the text generator's conditions ("holds(a:agent, o:object)"), parsed into read-only rules
    key = (text, tuple(sorted(kwargs.items())))
    if key not in _queries:
        _queries[key] = _originals["query_parse"](text, **kwargs)
    return _queries[key]


def _shallow_context(context: dict[str, Any]) -> dict[str, Any]:
    # the generator deep-copies entity infos it only reads; fresh dicts keep its updates apart
    return {"state": context["state"], "facts": context["facts"],
            "variables": dict(context["variables"]), "mapping": dict(context["mapping"]),
            "entity_infos": context["entity_infos"]}


def clear_engine_caches() -> None:
    """Forget every memoized translation and parse (benchmarks measure cold starts with it)."""
    for memo in (_sas, _logic, _symbols, _queries):
        memo.clear()


_PATCHES = (  # (module, attribute, replacement)
    ("fast_downward", "pddl2sas", _memo_pddl2sas),
    ("textworld.envs.pddl.logic", "_parse_and_convert", _memo_logic_parse),
    ("textworld.envs.pddl.textgen", "_parse_and_convert", _memo_symbols_parse),
    ("textworld.logic", "_parse_and_convert", _memo_query_parse),
    ("textworld.envs.pddl.textgen", "copy_context", _shallow_context),
)
_ORIGINAL_NAMES = ("pddl2sas", "logic_parse", "symbols_parse", "query_parse", "copy_context")


@contextmanager
def engine_caches() -> Iterator[None]:
    """Memoize Fast Downward's translation and TatSu's parsing while the block runs.

    The memoized functions return what the originals return for the same text, and the text
    generator's contexts are copied one level deep instead of deeply (it never writes into
    the entity infos it copies), so results are unchanged; the originals are back once the
    last block exits.
    """
    global _cache_users
    with _cache_lock:
        if _cache_users == 0:
            for (module, attribute, replacement), name in zip(_PATCHES, _ORIGINAL_NAMES):
                target = importlib.import_module(module)
                _originals[name] = getattr(target, attribute)
                setattr(target, attribute, replacement)
        _cache_users += 1
    try:
        yield
    finally:
        with _cache_lock:
            _cache_users -= 1
            if _cache_users == 0:
                for (module, attribute, _), name in zip(_PATCHES, _ORIGINAL_NAMES):
                    setattr(importlib.import_module(module), attribute, _originals[name])


# ---------------------------------------------------------------------------- engine
class AlfredEngine:
    """One ALFWorld game on the real engine: ``load``, ``reset``, ``step``.

    States are TextWorld ``GameState`` dicts with ``feedback``, ``admissible_commands``,
    ``won`` and the PDDL facts (``_facts``).
    """

    def __init__(self, dialect: str = "0.4") -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        self.dialect = check_dialect(dialect)
        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=False)
        self._env = AlfredDemangler(PddlEnv(infos))
        self.game: dict[str, Any] | None = None

    def load(self, game: dict[str, Any]) -> None:
        """Load a game (the JSON content of a ``game.tw-pddl`` file)."""
        game = dict(game, grammar=in_dialect(game["grammar"], self.dialect))
        with engine_caches():
            self._env.load(game)
        self.game = game

    def reset(self) -> Any:
        """Start the loaded game over; its first state."""
        with engine_caches():
            return self._env.reset()

    def step(self, command: str) -> Any:
        """Play one command; the next state."""
        with engine_caches():
            state, _, _ = self._env.step(command)
        return state

    def names(self) -> dict[str, str]:
        """PDDL id -> the name the text uses ("apple 1")."""
        return {key: info.name.strip() for key, info in self._env._entity_infos.items()}
