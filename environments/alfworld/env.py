"""``ALFWorld-v0``: household tasks on alfworld's own PDDL engine, generated offline."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from agentgym.core import AgentEnv, Transition
from agentgym.errors import InvalidOptionError, MissingDependencyError, TaskNotFoundError
from agentgym.protocols import ActionProtocol, ProtocolName, command_protocol
from environments.alfworld.engine import AlfredEngine, check_dialect
from environments.alfworld.expert import World, goal_stage, next_command
from environments.alfworld.games import (
    GENERATED_SPLITS,
    OFFICIAL_SPLITS,
    GameRef,
    TaskSpace,
    ensure_task,
    json_root,
    official_tasks,
    parse_task_id,
    task_at,
    task_id,
)
from environments.alfworld.scenes import check_rooms
from environments.alfworld.tasks import TASK_TYPES, check_task_types

NOTHING = "Nothing happens."
TASK_PREFIX = "Your task is to: "
# left out of the state key: predicates that never change in a game, and the bookkeeping
# ones that look/inventory/examine set without changing the world
_NOT_WORLD = frozenset({"receptacletype", "objecttype", "receptacleatlocation", "cancontain",
                        "openable", "pickupable", "cleanable", "heatable", "coolable",
                        "sliceable", "toggleable", "isreceptacleobject", "checked",
                        "examined"})


class ALFWorldEnv(AgentEnv):
    """ALFWorld's text households on its real engine, with tasks generated offline.

    With no data, tasks are generated from the alfworld wheel's floor plans and tables, proved
    solvable, and cached: ``train`` and ``test`` use disjoint floor plans (test rooms are never
    seen in training, like ALFWorld's unseen split). With the official data (``data_dir=`` or
    ``$ALFWORLD_DATA`` holding ``json_2.1.1``), ``split`` is ``train``, ``valid_seen`` or
    ``valid_unseen`` and the official games are played.

    Channels: turn ``progress`` (goal conditions newly satisfied this turn), ``format`` and
    ``invalid`` ("Nothing happens."); outcome ``success``. The scalar reward is 1 on success.

    Args:
        split: The default split.
        task_types: Which of the six task types to play (default all).
        rooms: Generated tasks only in these room types (kitchen, livingroom, bedroom,
            bathroom).
        floor_plans: Generated tasks only in these floor plans.
        dialect: ``"auto"`` plays each game in the grammar its file is written in (generated
            games speak ``"0.4"``, the official ``json_2.1.1`` files ``"legacy"``) and says
            which in ``info["dialect"]`` at reset; ``"0.4"`` (``move X to Y``) or
            ``"legacy"`` (``put X in/on Y``, the ReAct-era grammar) rewrites every game into
            that one. Observations, admissible commands and the expert follow it.
        source: ``"auto"`` (official data if found, else generated), ``"generated"`` or
            ``"official"``.
        data_dir: The official data folder (default ``$ALFWORLD_DATA``).
        num_tasks: Generated tasks per split that seeds map onto.
        protocol: ``"tags"``, ``"tags-lenient"``, ``"tools"`` or an ActionProtocol.
        max_turns: Truncate after this many turns (ALFWorld's usual budget is 50).
        max_invalid_actions: Truncate after this many consecutive malformed actions.
        show_admissible: Append the admissible commands to every observation.
        cache_dir: Where generated tasks are kept (default ``$AGENTGYM_CACHE/alfworld``).
        render_mode: ``None`` or ``"ansi"``.
    """

    env_id = "ALFWorld-v0"
    snapshot_kind = "native"
    native_snapshot_portable = False  # the planner's state lives in this process's library
    description = (
        "You are in a household. Read each observation, then act with one command such as "
        "'go to countertop 1', 'open fridge 1', 'take apple 1 from countertop 1', "
        "'move apple 1 to fridge 1', 'heat apple 1 with microwave 1', 'clean mug 1 with "
        "sinkbasin 1', 'cool mug 1 with fridge 1', 'use desklamp 1', 'examine drawer 1', "
        "'look' or 'inventory'. Complete the task you are given."
    )
    turn_channels = ("progress", "format", "invalid")
    outcome_channels: tuple[str, ...] = ("success",)
    splits: tuple[str, ...] = GENERATED_SPLITS

    def __init__(
        self,
        *,
        split: str = "train",
        task_types: list[str] | None = None,
        rooms: list[str] | None = None,
        floor_plans: list[int] | None = None,
        dialect: str = "auto",
        source: Literal["auto", "generated", "official"] = "auto",
        data_dir: str | Path | None = None,
        num_tasks: int = 1000,
        protocol: ProtocolName | ActionProtocol = "tags",
        max_turns: int | None = 50,
        max_invalid_actions: int | None = None,
        show_admissible: bool = False,
        cache_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        try:
            import alfworld  # noqa: F401
            import fast_downward  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("alfworld", "alfworld") from exc
        super().__init__(protocol=command_protocol(protocol), max_turns=max_turns,
                         max_invalid_actions=max_invalid_actions, render_mode=render_mode)
        self.task_types = tuple(check_task_types(list(task_types or TASK_TYPES)))
        self.rooms = tuple(check_rooms(list(rooms))) if rooms else None
        self.floor_plans = tuple(floor_plans) if floor_plans else None
        self.dialect = check_dialect(dialect)
        self.data_dir = _official_data(source, data_dir)
        if self.data_dir is not None:
            self.splits = OFFICIAL_SPLITS
        self.split = self.check_split(split)
        if num_tasks < 1:
            raise InvalidOptionError(f"num_tasks must be >= 1, got {num_tasks}.")
        self.num_tasks = num_tasks
        self.show_admissible = show_admissible
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._engine = AlfredEngine(dialect)
        self._loaded: Path | None = None
        self._ref: GameRef | None = None
        self._state: Any = None
        self._best_stage = 0
        self._task_text = ""
        self._official: dict[str, list[GameRef]] = {}
        if self.data_dir is None:
            self._space(self.split).plans()  # unknown floor plans fail here, not at reset

    # ------------------------------------------------------------------ tasks
    def _space(self, split: str) -> TaskSpace:
        return TaskSpace(split, self.task_types, self.rooms, self.floor_plans)

    def _refs(self, split: str) -> list[GameRef]:
        if split not in self._official:
            assert self.data_dir is not None
            self._official[split] = official_tasks(self.data_dir, split, self.task_types)
        return self._official[split]

    def task_ids(self, split: str | None = None, count: int = 10) -> list[str]:
        """The first ``count`` task ids of a split."""
        split = self.check_split(split or self.split)
        if self.data_dir is not None:
            return [self._official_id(split, ref) for ref in self._refs(split)[:count]]
        space = self._space(split)
        return [task_id(*task_at(space, i)) for i in range(min(count, self.num_tasks))]

    def _official_id(self, split: str, ref: GameRef) -> str:
        return f"{split}/{ref.folder.parent.name}/{ref.folder.name}"

    def _pick(self, options: dict[str, Any]) -> tuple[GameRef, str]:
        if "task_id" in options:
            return self._by_id(str(options["task_id"]))
        split = self.check_split(options.get("split", self.split))
        if self.data_dir is not None:
            refs = self._refs(split)
            ref = refs[self.task_index(len(refs))]
            return ref, self._official_id(split, ref)
        where = task_at(self._space(split), self.task_index(self.num_tasks))
        return ensure_task(*where, cache_dir=self.cache_dir), task_id(*where)

    def _by_id(self, wanted: str) -> tuple[GameRef, str]:
        split = wanted.partition("/")[0]
        if split in self.splits and self.data_dir is not None:
            for ref in self._refs(split):
                if self._official_id(split, ref) == wanted:
                    return ref, wanted
        elif self.data_dir is None and (where := parse_task_id(wanted)):
            return ensure_task(*where, cache_dir=self.cache_dir), wanted
        example = self.task_ids(count=1)
        raise TaskNotFoundError(f"Task id {wanted!r} is not a task of this env; ids look "
                                f"like {example[0]!r}.")

    # ------------------------------------------------------------------ hooks
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        """Start an episode (see :meth:`AgentEnv.reset`).

        ``info["dialect"]`` names the grammar the game is played in.
        """
        observation, info = super().reset(seed=seed, options=options)
        info["dialect"] = self._engine.playing
        return observation, info

    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        ref, picked = self._pick(options)
        if ref.folder != self._loaded:
            self._engine.load(ref.game())
            self._loaded = ref.folder
        self._ref = ref
        self._state = self._engine.reset()
        self._task_text = self._state["feedback"].rpartition(TASK_PREFIX)[2].strip().rstrip(".")
        self._best_stage = goal_stage(self._world(), ref.goal)
        return self._observation(), picked

    def _world(self) -> World:
        return World.from_facts(self._state["_facts"])

    def _observation(self) -> str:
        text = self._state["feedback"]
        if self.show_admissible:
            text += "\n\nAdmissible commands: " + ", ".join(self._admissible())
        return text

    def _apply(self, command: Any) -> Transition:
        assert self._ref is not None
        self._state = self._engine.step(str(command))
        stage = goal_stage(self._world(), self._ref.goal)
        progress, self._best_stage = max(0, stage - self._best_stage), max(stage, self._best_stage)
        invalid = self._state["feedback"].strip() == NOTHING
        return Transition(observation=self._observation(),
                          channels={"progress": float(progress), "invalid": float(invalid)},
                          terminated=bool(self._state["won"]))

    def _snapshot(self) -> tuple:
        return self._ref, self._engine.saved(), self._state, self._best_stage, self._task_text

    def _restore(self, native: tuple) -> bool:
        ref, saved, state, best_stage, task_text = native
        if ref.folder != self._loaded or not self._engine.load_saved(saved):
            return False  # the planner's state went with an earlier load: replay
        self._ref, self._state, self._best_stage, self._task_text = (ref, state, best_stage,
                                                                       task_text)
        return True

    def _instruction(self) -> str:
        return self._task_text

    def _state_key(self) -> str:
        facts = sorted(f"{fact.name}({','.join(v.name for v in fact.arguments)})"
                       for fact in self._state["_facts"]
                       # the engine keeps some negated atoms ("not_atlocation") once touched
                       if fact.name not in _NOT_WORLD and not fact.name.startswith("not_"))
        return hashlib.sha1("\n".join(facts).encode()).hexdigest()[:16]

    def _outcome(self) -> dict[str, float]:
        return {"success": float(bool(self._state["won"]))}

    def _final_reward(self, outcome: dict[str, float]) -> float:
        return outcome["success"]

    def _admissible(self) -> list[str]:
        return list(self._state["admissible_commands"] or [])

    def _expert(self) -> str | None:
        assert self._ref is not None
        command = next_command(self._world(), self._ref.goal, self._engine.names(),
                               self._engine.playing)
        return None if self._state["won"] else command

    def _task_source(self) -> GameRef | None:
        return self._ref

    def _task_kind(self) -> str | None:
        return self._ref.goal.task_type if self._ref else None

    def _reference(self) -> dict[str, Any] | None:
        return self._ref.goal.to_dict() if self._ref else None


def _official_data(source: str, data_dir: str | Path | None) -> Path | None:
    """The official ``json_2.1.*`` folder to play, or None for generated tasks.

    An explicit ``data_dir`` (or ``source="official"``) must hold the data; with
    ``source="auto"``, ``$ALFWORLD_DATA`` is used only when it does.
    """
    if source not in ("auto", "generated", "official"):
        raise InvalidOptionError(f"Unknown source {source!r}. Sources: auto, generated, "
                                 "official.")
    if source == "generated":
        return None
    given = data_dir or os.environ.get("ALFWORLD_DATA")
    root = json_root(Path(given)) if given else None
    if root is None and (source == "official" or data_dir is not None):
        raise TaskNotFoundError(
            f"No official ALFWorld data in {str(given or '')!r}: expected "
            "<data>/json_2.1.1/{train,valid_seen,valid_unseen} (what alfworld-download "
            "fetches). Pass data_dir= or set ALFWORLD_DATA, or use source='generated'."
        )
    return root
