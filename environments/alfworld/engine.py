"""ALFWorld's engine: TextWorld's PDDL env with alfworld's demangler, made fast by caching.

The stock engine re-translates the PDDL problem with Fast Downward on every reset (twice:
once plain, once optimised for replanning) and re-parses every command template with TatSu on
every step. Both are pure functions of text that never changes within a game, so
:func:`engine_caches` memoizes them around our engine's calls: same engine, same code paths,
byte-identical transcripts, several times the steps per second.

Two command dialects share one engine: ``"0.4"`` is alfworld 0.4's grammar (``move X to Y``,
"You arrive at cabinet 1."); ``"legacy"`` is the grammar of ReAct-era prompts and papers
(``put X in/on Y``, "You arrive at loc 8."), which the official ``json_2.1.1`` game files are
written in. ``"auto"`` plays each game file in the grammar it is written in, as the stock
engine does (:func:`detect_dialect`); a named dialect rewrites the file's grammar into it.
"""

from __future__ import annotations

import collections
import copy
import ctypes
import importlib
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from agentgym.errors import InvalidOptionError, did_you_mean

DIALECTS: tuple[str, ...] = ("0.4", "legacy")
CHOICES: tuple[str, ...] = ("auto", *DIALECTS)
_SPOKEN = {"legacy": 'template :: "put {o} in/on {r}";', "0.4": 'template :: "move {o} to {r}";'}

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
    """``dialect`` if it is one we take (``auto`` or a dialect), else an error naming them."""
    if dialect not in CHOICES:
        raise InvalidOptionError(f"Unknown ALFWorld dialect {dialect!r}. Dialects: "
                                 f"{', '.join(CHOICES)}.{did_you_mean(dialect, CHOICES)}")
    return dialect


def detect_dialect(grammar: str) -> str:
    """The dialect a game file's grammar is written in (``"0.4"`` or ``"legacy"``)."""
    for dialect, template in _SPOKEN.items():
        if template in grammar:
            return dialect
    raise InvalidOptionError("This ALFWorld grammar has neither a 'move {o} to {r}' nor a "
                             "'put {o} in/on {r}' template: it is neither alfworld 0.4's "
                             "grammar nor the legacy one.")


def in_dialect(grammar: str, dialect: str) -> str:
    """``grammar`` (either dialect) rewritten to speak ``dialect``."""
    if dialect not in DIALECTS:
        raise InvalidOptionError(f"Cannot rewrite a grammar into {dialect!r}; dialects: "
                                 f"{', '.join(DIALECTS)}.")
    for pattern, replacement in _DIALECT_RULES:
        grammar, count = re.subn(pattern, replacement[dialect], grammar)
        if count == 0:
            raise InvalidOptionError(f"This ALFWorld grammar has no line matching {pattern!r}; "
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
_ENGINE = threading.RLock()  # one engine call at a time: TatSu's parsers are shared, unsafe
GAMES_CACHED = 32  # games whose translations stay in memory (a few MB each)
_cache_lock = threading.Lock()
_cache_users = 0
_originals: dict[str, Any] = {}  # "module.attribute" -> the function our patch replaced
_memos: list[OrderedDict] = []
_evictions = 0


def _memoized(target: str, key: Callable[..., Any], size: int,
              copies: bool = False) -> Callable[..., Any]:
    """``target`` ("module.function") answering repeated calls with the same key from memory.

    The ``size`` most recently used results are kept (a long task stream would otherwise
    hold every game it ever saw). ``copies``: hand each caller a deep copy (for results the
    engine writes into).
    """
    memo: OrderedDict[Any, Any] = OrderedDict()
    _memos.append(memo)

    def call(*args: Any, **kwargs: Any) -> Any:
        found = key(*args, **kwargs)
        if found in memo:
            memo.move_to_end(found)
        else:
            memo[found] = _originals[target](*args, **kwargs)
            if len(memo) > size:
                memo.popitem(last=False)
                _evicted()
        return copy.deepcopy(memo[found]) if copies else memo[found]

    return call


def _evicted() -> None:
    """Count an eviction; now and then hand freed memory back to the system."""
    global _evictions
    _evictions += 1
    if _evictions % 64 == 0:
        release_memory()


def release_memory() -> None:
    """Return the C heap's free pages to the system (glibc keeps them otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _by_text(text: str, **kwargs: Any) -> tuple:
    return text, tuple(sorted(kwargs.items()))


def _by_task(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> tuple:
    return domain, problem, optimize


def _shallow_context(context: dict[str, Any]) -> dict[str, Any]:
    # the generator deep-copies entity infos it only reads; fresh dicts keep its updates apart
    return {"state": context["state"], "facts": context["facts"],
            "variables": dict(context["variables"]), "mapping": dict(context["mapping"]),
            "entity_infos": context["entity_infos"]}


_PATCHES: dict[str, Callable[..., Any]] = {
    # Fast Downward's PDDL -> SAS translation: seconds per kitchen, on every reset
    "fast_downward.pddl2sas": _memoized("fast_downward.pddl2sas", _by_task, GAMES_CACHED * 2),
    # the grammar file (parsed actions and rules are read-only to the engine)
    "textworld.envs.pddl.logic._parse_and_convert":
        _memoized("textworld.envs.pddl.logic._parse_and_convert", _by_text, GAMES_CACHED),
    # command templates (the engine writes a context into the symbols: each caller a copy)
    "textworld.envs.pddl.textgen._parse_and_convert":
        _memoized("textworld.envs.pddl.textgen._parse_and_convert", _by_text, 4096,
                  copies=True),
    # the text generator's conditions ("holds(a:agent, o:object)"), read-only rules
    "textworld.logic._parse_and_convert":
        _memoized("textworld.logic._parse_and_convert", _by_text, 4096),
    "textworld.envs.pddl.textgen.copy_context": _shallow_context,
}


INTERNED_LIMIT = 50_000  # TextWorld's interned signatures and propositions kept at most


def forget_interned(limit: int | None = None) -> bool:
    """Drop TextWorld's interned logic objects once there are more than ``limit``.

    TextWorld interns every ``Signature`` and ``Proposition`` it ever builds in a global dict
    (``mementos``) that is never emptied: about 1,500 objects per distinct game, forever.
    They compare and hash by value, so interning only saves memory; forgetting them is safe
    (live games keep their objects, new ones are built afresh). Whether it forgot.
    """
    from mementos import core

    if len(core._memento_cache) <= (INTERNED_LIMIT if limit is None else limit):
        return False
    core._memento_cache.clear()
    release_memory()
    return True


def clear_engine_caches() -> None:
    """Forget every memoized translation and parse (benchmarks measure cold starts with it)."""
    for memo in _memos:
        memo.clear()
    release_memory()


def _swap(target: str, replacement: Callable[..., Any]) -> Callable[..., Any]:
    module, _, attribute = target.rpartition(".")
    owner = importlib.import_module(module)
    previous = getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    return previous


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
            for target, replacement in _PATCHES.items():
                _originals[target] = _swap(target, replacement)
        _cache_users += 1
    try:
        yield
    finally:
        with _cache_lock:
            _cache_users -= 1
            if _cache_users == 0:
                for target, original in _originals.items():
                    _swap(target, original)


# ---------------------------------------------------------------------------- engine
class AlfredEngine:
    """One ALFWorld game on the real engine: ``load``, ``reset``, ``step``.

    States are TextWorld ``GameState`` dicts with ``feedback``, ``admissible_commands``,
    ``won`` and the PDDL facts (``_facts``).
    """

    def __init__(self, dialect: str = "auto") -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        self.dialect = check_dialect(dialect)
        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=False)
        self._env = AlfredDemangler(PddlEnv(infos))
        self.game: dict[str, Any] | None = None
        self.playing = "0.4" if dialect == "auto" else dialect
        """The dialect of the loaded game (``auto`` resolved)."""

    def load(self, game: dict[str, Any]) -> None:
        """Load a game (the JSON content of a ``game.tw-pddl`` file)."""
        forget_interned()
        if self.dialect == "auto":
            self.playing = detect_dialect(game["grammar"])
        else:
            game = dict(game, grammar=in_dialect(game["grammar"], self.dialect))
        with _ENGINE, engine_caches():
            self._env.load(game)
        self.game = game

    def reset(self) -> Any:
        """Start the loaded game over; its first state."""
        with _ENGINE, engine_caches():
            return self._env.reset()

    def step(self, command: str) -> Any:
        """Play one command; the next state."""
        with _ENGINE, engine_caches():
            state, _, _ = self._env.step(command)
        return state

    def names(self) -> dict[str, str]:
        """PDDL id -> the name the text uses ("apple 1")."""
        return {key: info.name.strip() for key, info in self._env._entity_infos.items()}

    # ------------------------------------------------------------------ saved states
    def saved(self) -> tuple:
        """The game's state now, for :meth:`load_saved` while this game stays loaded.

        The planner's current state is an id in its state registry, which lives as long as
        the loaded problem (a reset loads it anew); the Python side is copied.
        """
        layer = self._env
        pddl = layer._wrapped_env
        problem = pddl._pddl_state
        if not hasattr(problem, "agentgym_load"):  # names this load of the problem
            problem.agentgym_load = uuid.uuid4().hex
        return (problem.agentgym_load, _downward(pddl).get_state_id(), dict(vars(layer)),
                {k: vars(pddl)[k] for k in ("state", "prev_state", "_last_action", "_moves")},
                {"_facts": {k: set(v) for k, v in problem._facts.items()},
                 "_vars_by_name": dict(problem._vars_by_name),
                 "_vars_by_type": {k: set(v) for k, v in problem._vars_by_type.items()},
                 "_var_counts": problem._var_counts.copy(),
                 "_operators": dict(getattr(problem, "_operators", {}))})

    def load_saved(self, saved: tuple) -> bool:
        """Go back to a :meth:`saved` state; False if the problem it belongs to is gone."""
        load, state_id, layer_vars, env_vars, problem_vars = saved
        pddl = self._env._wrapped_env
        problem = pddl._pddl_state
        if getattr(problem, "agentgym_load", None) != load:
            return False
        with _ENGINE:
            _downward(pddl).set_state_id(state_id)
        vars(self._env).update({k: v for k, v in layer_vars.items() if k != "_wrapped_env"})
        vars(pddl).update(env_vars)
        problem._facts = collections.defaultdict(set, {k: set(v) for k, v in
                                                       problem_vars["_facts"].items()})
        problem._vars_by_name = dict(problem_vars["_vars_by_name"])
        problem._vars_by_type = collections.defaultdict(set, {
            k: set(v) for k, v in problem_vars["_vars_by_type"].items()})
        problem._var_counts = problem_vars["_var_counts"].copy()
        problem._operators = dict(problem_vars["_operators"])
        return True


def _downward(pddl: Any) -> Any:
    """The planner library of a ``PddlEnv``, with its state-id calls typed."""
    lib = pddl.downward_lib
    if lib.set_state_id.argtypes is None:
        lib.get_state_id.argtypes, lib.get_state_id.restype = [], ctypes.c_int
        lib.set_state_id.argtypes, lib.set_state_id.restype = [ctypes.c_int], None
    return lib
