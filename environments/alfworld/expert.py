"""An expert that reads the PDDL state and says the next command toward an ALFWorld goal.

alfworld 0.4's handcoded expert tracks its own progress by matching "put" in the last
command (the grammar now says "move"), and its planner expert replans with Fast Downward on
every step (minutes for pick-two). This one is a function of the current world state, so it
recovers from any detour an agent took, speaks both dialects, and costs microseconds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from environments.alfworld.tasks import Goal, treatment


@dataclass
class World:
    """The PDDL facts of one state, indexed the way the expert asks about them."""

    agent_at: str = ""
    holding: str | None = None
    inside: dict[str, str] = field(default_factory=dict)  # object -> receptacle
    location_of: dict[str, str] = field(default_factory=dict)  # receptacle -> location
    rtype: dict[str, str] = field(default_factory=dict)
    otype: dict[str, str] = field(default_factory=dict)
    accepts: set[tuple[str, str]] = field(default_factory=set)  # (rtype, otype)
    flags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def from_facts(cls, facts: list[Any]) -> World:
        """Index TextWorld propositions (``state["_facts"]``)."""
        world = cls()
        for fact in facts:
            args = [v.name for v in fact.arguments]
            if fact.name == "atlocation":
                world.agent_at = args[1]
            elif fact.name == "holds":
                world.holding = args[1]
            elif fact.name == "inreceptacle":
                world.inside[args[0]] = args[1]
            elif fact.name == "receptacleatlocation":
                world.location_of[args[0]] = args[1]
            elif fact.name == "receptacletype":
                world.rtype[args[0]] = args[1]
            elif fact.name == "objecttype":
                world.otype[args[0]] = args[1]
            elif fact.name == "cancontain":
                world.accepts.add((args[0], args[1]))
            elif len(args) == 1:
                world.flags[fact.name].add(args[0])
        return world

    def has(self, flag: str, entity: str) -> bool:
        """Whether a one-argument predicate (``opened``, ``isclean``, ...) holds."""
        return entity in self.flags.get(flag.lower(), ())

    def of_otype(self, type_name: str) -> list[str]:
        """Objects of a type (``"Apple"``), sorted."""
        return sorted(o for o, t in self.otype.items() if t == f"{type_name.lower()}type")

    def of_rtype(self, type_name: str) -> list[str]:
        """Receptacles of a type, sorted."""
        return sorted(r for r, t in self.rtype.items() if t == f"{type_name.lower()}type")


def goal_stage(world: World, goal: Goal) -> int:
    """How many of the goal's conditions hold (0 up to :func:`goal_stages`).

    Conditions, in order: a target is held or placed; (clean/heat/cool) a target is treated;
    a finished target is in the destination; (pick-two) a second one is; (look-at) the lamp
    is on where the agent stands holding the target.
    """
    if goal.task_type == "look_at_obj_in_light":
        held = world.holding in world.of_otype(goal.obj)
        return int(held) + int(held and _lamp_lit_here(world, goal))
    done = _finished(world, goal)
    rule = treatment(goal.task_type)
    treated = bool(rule) and bool(_treated(world, goal))
    touched = world.holding in world.of_otype(goal.obj) or bool(done) or treated
    stage = int(touched) + int(treated)
    needed = 2 if goal.task_type == "pick_two_obj_and_place" else 1
    return stage + min(len(done), needed)


def goal_stages(goal: Goal) -> int:
    """The number of conditions :func:`goal_stage` counts for this goal."""
    if goal.task_type == "look_at_obj_in_light":
        return 2
    return 2 + int(bool(treatment(goal.task_type))) + int(goal.task_type.startswith("pick_two"))


def _treated(world: World, goal: Goal) -> list[str]:
    rule = treatment(goal.task_type)
    targets = world.of_otype(goal.obj)
    return targets if rule is None else [o for o in targets if world.has(rule[1], o)]


def _finished(world: World, goal: Goal) -> list[str]:
    destinations = set(world.of_rtype(goal.recep)) if goal.recep else set()
    return [o for o in _treated(world, goal) if world.inside.get(o) in destinations]


def _lamp_lit_here(world: World, goal: Goal) -> bool:
    return any(world.has("istoggled", lamp)
               and world.location_of.get(world.inside.get(lamp, "")) == world.agent_at
               for lamp in world.of_otype(goal.toggle))


def next_command(world: World, goal: Goal, names: dict[str, str], dialect: str = "0.4") -> str:
    """The expert's next command in ``dialect`` ("look" once the goal holds)."""
    say = _Speaker(world, names, dialect)
    held = world.holding
    if held is not None:
        if held not in world.of_otype(goal.obj) or held in _finished(world, goal):
            return say.put_down(held, _any_home(world, held))
        return _with_target(world, goal, held, say)
    return _fetch(world, goal, say)


def _fetch(world: World, goal: Goal, say: _Speaker) -> str:
    done = set(_finished(world, goal))
    waiting = [o for o in world.of_otype(goal.obj) if o not in done and o in world.inside]
    if not waiting:
        return "look"
    # nearest first: one already here, else the first by name (deterministic)
    here = [o for o in waiting if world.location_of.get(world.inside[o]) == world.agent_at]
    target = (here or waiting)[0]
    return say.take(target, world.inside[target])


def _with_target(world: World, goal: Goal, held: str, say: _Speaker) -> str:
    if goal.task_type == "look_at_obj_in_light":
        lamp = world.of_otype(goal.toggle)[0]
        return say.at(world.inside[lamp], open_it=False) or f"use {say.name(lamp)}"
    rule = treatment(goal.task_type)
    if rule and not world.has(rule[1], held):
        appliance = world.of_rtype(rule[0])[0]
        verb = {"isClean": "clean", "isHot": "heat", "isCool": "cool"}[rule[1]]
        act = f"{verb} {say.name(held)} with {say.name(appliance)}"
        return say.at(appliance, open_it=False) or act
    done = _finished(world, goal)  # pick-two: both must end up in the same receptacle
    return say.put_down(held, [world.inside[done[0]]] if done else world.of_rtype(goal.recep))


def _any_home(world: World, obj: str) -> list[str]:
    """Receptacles that can take ``obj`` back (by the state's canContain facts)."""
    return sorted(r for r, t in world.rtype.items() if (t, world.otype.get(obj)) in world.accepts)


class _Speaker:
    """Turns intents into commands: walks there first, opens what is closed."""

    def __init__(self, world: World, names: dict[str, str], dialect: str) -> None:
        self.world, self.names, self.dialect = world, names, dialect

    def name(self, entity: str) -> str:
        return self.names[entity]

    def at(self, receptacle: str, open_it: bool = True) -> str | None:
        """The command that gets to ``receptacle`` (and opens it), or None when there."""
        world = self.world
        if world.location_of[receptacle] != world.agent_at:
            return f"go to {self.name(receptacle)}"
        if open_it and world.has("openable", receptacle) and not world.has("opened", receptacle):
            return f"open {self.name(receptacle)}"
        return None

    def take(self, obj: str, receptacle: str) -> str:
        return self.at(receptacle) or f"take {self.name(obj)} from {self.name(receptacle)}"

    def put_down(self, obj: str, receptacles: list[str]) -> str:
        here = [r for r in receptacles if self.world.location_of[r] == self.world.agent_at]
        target = (here or receptacles)[0]
        if self.dialect == "legacy":
            put = f"put {self.name(obj)} in/on {self.name(target)}"
        else:
            put = f"move {self.name(obj)} to {self.name(target)}"
        return self.at(target) or put
