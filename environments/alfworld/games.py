"""ALFWorld games: generated offline and proved solvable, cached on disk; official data loaded.

A generated task is a ``game.tw-pddl`` file (alfworld's format: PDDL domain, text grammar
with the task text filled in, PDDL problem, ``solvable`` and ``walkthrough``) next to a
``traj_data.json`` (task type and ``pddl_params``), laid out like alfworld's own data. Every
game is proved before it is used: the expert plays it to a win on the real engine, and that
winning command list is stored as its walkthrough.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.errors import InvalidOptionError, TaskDataError, TaskNotFoundError
from environments.alfworld.engine import AlfredEngine, domain_text, grammar_text
from environments.alfworld.expert import World, next_command
from environments.alfworld.scenes import (
    Scene,
    item_types_of,
    plans_of_split,
    receptacles_of,
    room_of,
)
from environments.alfworld.tasks import (
    ROOM_TASKS,
    TASK_TYPES,
    Goal,
    candidate_goals,
    populate,
    problem_pddl,
    task_text,
)

GENERATED_SPLITS = ("train", "test")
OFFICIAL_SPLITS = ("train", "valid_seen", "valid_unseen")
MAX_WALKTHROUGH = 60
MAX_ATTEMPTS = 20
GENERATOR_VERSION = 1  # bump when generated games change, so caches are rebuilt


@dataclass(frozen=True)
class GameRef:
    """Where one task's files are, and its goal."""

    folder: Path
    goal: Goal

    def game(self) -> dict[str, Any]:
        """The ``game.tw-pddl`` content."""
        return json.loads((self.folder / "game.tw-pddl").read_text())


# ---------------------------------------------------------------------------- generation
def generate(floor_plan: int, task_type: str, seed: int) -> tuple[dict, dict] | None:
    """A game of ``task_type`` in ``floor_plan`` from ``seed``, or None if the scene can't host it.

    Returns ``(game, traj_data)``; the game is not proved yet (see :func:`prove`).
    """
    rng = random.Random(seed)
    scene, item_types, goals = _goals_of(floor_plan, task_type)
    if not goals:
        return None
    goal = rng.choice(goals)
    populate(scene, item_types, goal, rng)
    name = f"agentgym_{task_type}_{floor_plan}_{seed}"
    game = {"pddl_domain": domain_text(),
            "grammar": grammar_text().replace("UNKNOWN GOAL", task_text(goal, rng)),
            "pddl_problem": problem_pddl(scene, goal, name)}
    traj = {"task_type": task_type, "pddl_params": goal.pddl_params(),
            "scene": {"floor_plan": f"FloorPlan{floor_plan}", "scene_num": floor_plan},
            "task_id": name}
    return game, traj


def _goals_of(floor_plan: int, task_type: str) -> tuple[Scene, list[str], list[Goal]]:
    """An empty scene of the floor plan, its object types, and the goals it can host."""
    scene = Scene(floor_plan, receptacles_of(floor_plan))
    item_types = item_types_of(floor_plan)
    return scene, item_types, candidate_goals(scene, item_types, task_type)


@cache
def hosts(floor_plan: int, task_type: str) -> bool:
    """Whether a floor plan has what ``task_type`` needs (a lamp, a sink, a whitelisted pair)."""
    return bool(_goals_of(floor_plan, task_type)[2])


def prove(game: dict, goal: Goal, dialect: str = "0.4",
          engine: AlfredEngine | None = None) -> list[str] | None:
    """The expert's winning command list on the real engine, or None if it does not win."""
    engine = engine or AlfredEngine(dialect)
    try:
        engine.load(game)
    except KeyError:
        # Fast Downward proved the goal unreachable and wrote a trivial task that TextWorld
        # cannot read back (its placeholder atom "val1" has no type)
        return None
    state = engine.reset()
    if state["won"]:
        return None  # already won: not a task
    commands = []
    names = engine.names()
    for _ in range(MAX_WALKTHROUGH):
        command = next_command(World.from_facts(state["_facts"]), goal, names, dialect)
        commands.append(command)
        state = engine.step(command)
        if state["won"]:
            return commands
    return None


def build_task(folder: Path, floor_plan: int, task_type: str, seed: int) -> bool:
    """Generate, prove and write one task into ``folder``; False if none could be made."""
    made = generate(floor_plan, task_type, seed)
    if made is None:
        return False
    game, traj = made
    goal = Goal.from_traj_data(traj)
    walkthrough = prove(game, goal)
    if walkthrough is None:
        return False
    game.update(solvable=True, walkthrough=walkthrough)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "game.tw-pddl").write_text(json.dumps(game))
    (folder / "traj_data.json").write_text(json.dumps(traj, indent=1))
    return True


# ---------------------------------------------------------------------------- task sets
@dataclass(frozen=True)
class TaskSpace:
    """Which generated tasks a split holds: task types crossed with the split's floor plans."""

    split: str
    task_types: tuple[str, ...] = TASK_TYPES
    rooms: tuple[str, ...] | None = None
    floor_plans: tuple[int, ...] | None = None

    def plans(self) -> list[int]:
        """The floor plans of this split that the filters keep."""
        plans = plans_of_split(self.split, list(self.rooms) if self.rooms else None)
        if self.floor_plans:
            for plan in self.floor_plans:
                room_of(plan)
            plans = [p for p in plans if p in self.floor_plans]
            if not plans:
                raise InvalidOptionError(
                    f"None of floor plans {list(self.floor_plans)} belongs to the {self.split!r} "
                    f"split (test plans are 1-6, 201-206, 301-306, 401-406; the rest train)."
                )
        return plans

    def slot(self, index: int) -> tuple[int, str]:
        """Task ``index``'s (floor plan, task type): types cycle fastest, then plans."""
        pairs = [(plan, t) for plan in self.plans() for t in self.task_types
                 if t in ROOM_TASKS[room_of(plan)] and hosts(plan, t)]
        if not pairs:
            raise InvalidOptionError(
                f"No floor plan of the {self.split!r} split hosts task types "
                f"{list(self.task_types)} (look_at is in living rooms and bedrooms; heat and "
                "cool in kitchens; clean in kitchens and bathrooms)."
            )
        rng = random.Random(f"{self.split}-{index // len(pairs)}")
        order = list(range(len(pairs)))
        rng.shuffle(order)
        return pairs[order[index % len(pairs)]]


def default_cache_dir() -> Path:
    """``$AGENTGYM_CACHE/alfworld``."""
    return cache_root() / "alfworld"


def task_at(space: TaskSpace, index: int) -> tuple[str, int, str, int]:
    """Task ``index`` of a generated split as ``(split, floor plan, task type, seed)``."""
    plan, task_type = space.slot(index)
    return space.split, plan, task_type, 2 * index + GENERATED_SPLITS.index(space.split)


def task_id(split: str, floor_plan: int, task_type: str, seed: int) -> str:
    """A generated task's id, laid out like an official one: ``split/folder/trial``."""
    return f"{split}/{task_type}-FloorPlan{floor_plan}/trial_{seed}"


def parse_task_id(text: str) -> tuple[str, int, str, int] | None:
    """``(split, floor plan, task type, seed)`` of a generated task id, else None."""
    match = re.fullmatch(r"(train|test)/(\w+)-FloorPlan(\d+)/trial_(\d+)", text)
    if not match or match[2] not in TASK_TYPES:
        return None
    room_of(int(match[3]))
    return match[1], int(match[3]), match[2], int(match[4])


def ensure_task(split: str, floor_plan: int, task_type: str, seed: int,
                cache_dir: Path | None = None) -> GameRef:
    """A generated task, generating and proving it if it is not cached."""
    folder = (cache_dir or default_cache_dir()) / _version_tag() / task_id(
        split, floor_plan, task_type, seed)

    def build(staging: Path) -> None:
        for attempt in range(MAX_ATTEMPTS):
            if build_task(staging, floor_plan, task_type, seed * 100 + attempt):
                return
        raise TaskDataError(f"No solvable {task_type} game in FloorPlan{floor_plan} "
                           f"after {MAX_ATTEMPTS} attempts (seed {seed}).")

    cached_folder(folder, build)
    return GameRef(folder, Goal.from_traj_data(json.loads((folder / "traj_data.json").read_text())))


def _version_tag() -> str:
    from alfworld.info import __version__

    blob = f"{GENERATOR_VERSION}-{__version__}-{grammar_text()}-{domain_text()}"
    return "gen-" + hashlib.sha1(blob.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------- official data
def official_tasks(root: Path, split: str, task_types: tuple[str, ...]) -> list[GameRef]:
    """The solvable games of a split of an official ``json_2.1.1`` folder, sorted by folder.

    Like alfworld's loader, skips movable-receptacle and sliced tasks and games not marked
    solvable.
    """
    if split not in OFFICIAL_SPLITS:
        raise InvalidOptionError(f"Unknown ALFWorld data split {split!r}. With official data "
                                 f"the splits are: {', '.join(OFFICIAL_SPLITS)}.")
    root = root / split
    if not root.is_dir():
        raise TaskNotFoundError(
            f"No ALFWorld split folder {str(root)!r}. Point ALFWORLD_DATA (or data_dir=) at the "
            "folder holding json_2.1.1/{train,valid_seen,valid_unseen} (alfworld-download)."
        )
    refs = []
    for traj_path in sorted(root.glob("*/*/traj_data.json")):
        folder = traj_path.parent
        if "movable" in str(folder) or "Sliced" in str(folder):
            continue
        traj = json.loads(traj_path.read_text())
        game_path = folder / "game.tw-pddl"
        if traj["task_type"] not in task_types or not game_path.exists():
            continue
        if json.loads(game_path.read_text()).get("solvable"):
            refs.append(GameRef(folder, Goal.from_traj_data(traj)))
    if not refs:
        raise TaskNotFoundError(f"No solvable games of types {list(task_types)} under "
                                f"{str(root)!r}.")
    return refs


def json_root(data_dir: Path) -> Path | None:
    """The ``json_2.1.*`` folder in (or at) an official data folder, else None."""
    if data_dir.name.startswith("json_2.1") or (data_dir / "train").is_dir():
        return data_dir
    candidates = sorted(data_dir.glob("json_2.1.*")) if data_dir.is_dir() else []
    return candidates[0] if candidates else None
