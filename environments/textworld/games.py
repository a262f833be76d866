"""TextWorld games: presets, seeded generation through TextWorld's Python API, a disk cache.

Generating and compiling a game takes one to three seconds, so every game is built once per
(knobs, seed) and kept in the cache folder. Two processes filling the cache at once are safe:
:mod:`agentgym.cache` serialises the builders and publishes each game by an atomic rename,
so a reader never sees half a game.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from agentgym.cache import cache_root, cached_folder
from agentgym.errors import InvalidOptionError, TaskDataError, did_you_mean
from environments.textworld.engine import ENGINE_LOCK, quiet_engine, start_engine

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class GameSpec:
    """The knobs of a generated game.

    Attributes:
        name: Shown in task ids (``"easy/train/3"``).
        kind: ``"custom"`` (TextWorld's ``tw-make custom``) or ``"cooking"`` (the First
            TextWorld Problems cooking challenge).
        world_size: Number of rooms.
        nb_objects: Number of objects in the world (custom games).
        quest_length: Number of actions in the winning walkthrough (custom games).
        recipe: Ingredients in the recipe (cooking).
        take: Ingredients to fetch (cooking; at most ``recipe``).
        cook: Some ingredients must be cooked (cooking).
        cut: Some ingredients must be cut (cooking).
        open: Containers and doors must be opened (cooking).
    """

    name: str
    kind: Literal["custom", "cooking"] = "custom"
    world_size: int = 2
    nb_objects: int = 4
    quest_length: int = 2
    recipe: int = 1
    take: int = 1
    cook: bool = False
    cut: bool = False
    open: bool = False

    def cache_tag(self) -> str:
        """A short hash of the knobs and the TextWorld version: the cache folder name."""
        import textworld

        blob = json.dumps({**asdict(self), "textworld": textworld.__version__}, sort_keys=True)
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


PRESETS: dict[str, GameSpec] = {
    # 2 rooms, 4 objects, a 2-step quest: solvable by chance, learnable by a tiny model
    "easy": GameSpec("easy", world_size=2, nb_objects=4, quest_length=2),
    # 5 rooms, 10 objects, a 5-step quest: the practitioner's-guide scale (w5-o10-q5)
    "medium": GameSpec("medium", world_size=5, nb_objects=10, quest_length=5),
    # 10 rooms, 20 objects, a 10-step quest: random play essentially never wins
    "hard": GameSpec("hard", world_size=10, nb_objects=20, quest_length=10),
    # a cooking-challenge kitchen: 6 rooms, a 2-ingredient recipe that needs cooking and cutting
    "cooking": GameSpec("cooking", kind="cooking", world_size=6, recipe=2, take=2,
                        cook=True, cut=True, open=True),
}


def preset(name: str) -> GameSpec:
    """The named preset.

    Raises:
        InvalidOptionError: naming the presets that exist.
    """
    if name not in PRESETS:
        raise InvalidOptionError(
            f"Unknown TextWorld preset {name!r}. Presets: {', '.join(PRESETS)}."
            f"{did_you_mean(name, PRESETS)}"
        )
    return PRESETS[name]


def game_seed(split: str, index: int) -> int:
    """The generation seed of task ``index`` of a split.

    Train games use even seeds and test games odd ones, so the splits never share a game.
    """
    if split not in SPLITS:
        raise InvalidOptionError(f"Unknown split {split!r}. Splits: {', '.join(SPLITS)}.")
    if index < 0:
        raise InvalidOptionError(f"Task index must be >= 0, got {index}.")
    return 2 * index + SPLITS.index(split)


def default_cache_dir() -> Path:
    """``$AGENTGYM_CACHE/textworld``, else ``~/.cache/agentgym/textworld``."""
    return cache_root() / "textworld"


def ensure_game(spec: GameSpec, seed: int, cache_dir: Path | None = None) -> Path:
    """The path of the compiled game for (spec, seed), building it if it is not cached."""
    folder = (cache_dir or default_cache_dir()) / spec.cache_tag() / f"seed-{seed}"

    def build(staging: Path) -> None:
        with ENGINE_LOCK:  # games of a rollout's envs are made from several threads
            _compile(spec, seed, staging / "game.z8")

    cached_folder(folder, build)
    return folder / "game.z8"


MAX_ATTEMPTS = 50


def _compile(spec: GameSpec, seed: int, path: Path) -> None:
    """Build the first valid game from the attempts of ``seed`` (deterministic)."""
    for attempt in range(MAX_ATTEMPTS):
        with quiet_engine():  # the cooking maker compiles a probe game of its own
            game = _make_game(spec, seed * 1000 + attempt)
        if not _ambiguous_names(game) and _walkthrough_wins(game, path):
            return
    raise TaskDataError(
        f"No valid {spec.name} game in {MAX_ATTEMPTS} attempts for seed {seed}; "
        "loosen the preset's knobs."
    )


def _make_game(spec: GameSpec, seed: int) -> Any:
    import textworld.generator
    from textworld import GameOptions

    options = GameOptions()
    options.seeds = seed
    options.nb_rooms = spec.world_size
    options.nb_objects = spec.nb_objects
    options.quest_length = spec.quest_length
    if spec.kind != "cooking":
        return textworld.generator.make_game(options)
    from textworld.challenges.tw_cooking import cooking

    settings = {"recipe": spec.recipe, "take": spec.take, "go": spec.world_size,
                "open": spec.open, "cook": spec.cook, "cut": spec.cut, "drop": False,
                "split": "train", "recipe_seed": seed + 1}
    return cooking.make(settings, options)


def _ambiguous_names(game: Any) -> bool:
    """Whether one entity's name is contained in another's ("locker" / "type 0 locker").

    The game's parser then asks "Which do you mean?" and the walkthrough's commands stall.
    """
    names = {info.name for info in game.infos.values() if info.name}
    words = [frozenset(name.split()) for name in names]
    return any(a < b for a in words for b in words)


def _walkthrough_wins(game: Any, path: Path) -> bool:
    """Compile ``game`` to ``path`` and prove it: the walkthrough must win it."""
    import textworld
    import textworld.generator
    from textworld import GameOptions

    options = GameOptions()
    options.path = str(path)
    options.force_recompile = True
    with quiet_engine():
        textworld.generator.compile_game(game, options)
    engine = start_engine(path, textworld.EnvInfos(won=True))
    try:
        state = engine.reset()
        if state["won"]:
            return False
        for command in game.walkthrough or []:
            state, _, done = engine.step(command)
            if done:
                break
        return bool(state["won"])
    finally:
        engine.close()
