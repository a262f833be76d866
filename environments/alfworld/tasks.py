"""ALFWorld's six task types: sensible goals for a scene, object placement, the PDDL problem.

Goals come from alfworld's goal library (its PDDL goal and its task-text templates). Which
object goes where is restricted to a whitelist of household-sensible pairs, because the
compatibility table alone allows odd goals ("clean a dishsponge and put it in the sinkbasin").
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from agentgym.errors import InvalidOptionError, did_you_mean
from environments.alfworld.scenes import (
    LAMP_SURFACES,
    Item,
    Receptacle,
    Scene,
    can_contain,
    constants,
    random_item_id,
)

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
"""ALFWorld's task types, in its own numbering order (1-6)."""

# which task types each room hosts (ALFRED's GOALS_VALID)
ROOM_TASKS: dict[str, tuple[str, ...]] = {
    "kitchen": ("pick_and_place_simple", "pick_clean_then_place_in_recep",
                "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
                "pick_two_obj_and_place"),
    "livingroom": ("pick_and_place_simple", "look_at_obj_in_light", "pick_two_obj_and_place"),
    "bedroom": ("pick_and_place_simple", "look_at_obj_in_light", "pick_two_obj_and_place"),
    "bathroom": ("pick_and_place_simple", "pick_clean_then_place_in_recep",
                 "pick_two_obj_and_place"),
}

_TABLES = ("CounterTop", "DiningTable", "SideTable", "CoffeeTable", "Desk", "Dresser")
# where each object type sensibly goes: the whitelist every placement goal draws from
DESTINATIONS: dict[str, tuple[str, ...]] = {
    "Apple": ("Fridge", "CounterTop", "DiningTable", "GarbageCan", "Microwave"),
    "Bread": ("Fridge", "CounterTop", "DiningTable"),
    "Egg": ("Fridge", "CounterTop", "DiningTable", "GarbageCan"),
    "Lettuce": ("Fridge", "CounterTop", "DiningTable"),
    "Potato": ("Fridge", "CounterTop", "DiningTable", "GarbageCan", "Microwave"),
    "Tomato": ("Fridge", "CounterTop", "DiningTable", "GarbageCan", "Microwave"),
    "Mug": ("CoffeeMachine", "Cabinet", "Shelf", "CounterTop", "SideTable", "Desk"),
    "Cup": ("Cabinet", "CounterTop", "DiningTable", "Fridge", "Shelf"),
    "Bowl": ("Cabinet", "CounterTop", "DiningTable", "Fridge", "Shelf"),
    "Plate": ("Cabinet", "CounterTop", "DiningTable", "Fridge", "Shelf"),
    "Pan": ("StoveBurner", "CounterTop", "Cabinet", "DiningTable"),
    "Pot": ("StoveBurner", "CounterTop", "Cabinet", "DiningTable"),
    "Kettle": ("StoveBurner", "CounterTop", "Cabinet"),
    "Knife": ("Drawer", "CounterTop", "DiningTable"),
    "ButterKnife": ("Drawer", "CounterTop", "DiningTable"),
    "Fork": ("Drawer", "CounterTop", "DiningTable"),
    "Spoon": ("Drawer", "CounterTop", "DiningTable"),
    "Spatula": ("Drawer", "CounterTop", "DiningTable"),
    "Ladle": ("Drawer", "CounterTop", "DiningTable"),
    "SaltShaker": ("Cabinet", "Drawer", "CounterTop", "Shelf"),
    "PepperShaker": ("Cabinet", "Drawer", "CounterTop", "Shelf"),
    "SoapBottle": ("Cabinet", "CounterTop", "Toilet", "Shelf", "GarbageCan"),
    "DishSponge": ("Cabinet", "CounterTop", "Drawer", "Toilet"),
    "WineBottle": ("Fridge", "Cabinet", "Shelf", "DiningTable"),
    "SoapBar": ("Cabinet", "CounterTop", "Toilet", "BathtubBasin", "Drawer"),
    "Cloth": ("Cabinet", "CounterTop", "BathtubBasin", "Drawer", "Toilet"),
    "Towel": ("TowelHolder",),
    "HandTowel": ("HandTowelHolder", "Cabinet", "CounterTop"),
    "ToiletPaper": ("ToiletPaperHanger", "Cabinet", "Toilet", "Drawer"),
    "SprayBottle": ("Toilet", "Cabinet", "CounterTop", "GarbageCan"),
    "Candle": ("Toilet", "Cabinet", "CounterTop", "Shelf"),
    "RemoteControl": ("Sofa", "ArmChair", "CoffeeTable", "SideTable", "Dresser", "Ottoman"),
    "KeyChain": ("Sofa", "ArmChair", "Drawer", "SideTable", "Dresser", "Safe"),
    "CreditCard": ("ArmChair", "Dresser", "Drawer", "Desk", "SideTable", "Shelf"),
    "Laptop": ("Sofa", "ArmChair", "Bed", "Desk", "CoffeeTable"),
    "Newspaper": ("Sofa", "ArmChair", "CoffeeTable", "SideTable", "Ottoman"),
    "Pillow": ("Sofa", "ArmChair", "Bed"),
    "Watch": ("Dresser", "SideTable", "Drawer", "CoffeeTable", "Safe"),
    "Vase": ("Shelf", "SideTable", "CoffeeTable", "Dresser", "Safe"),
    "Statue": ("Shelf", "SideTable", "CoffeeTable", "Dresser", "DiningTable"),
    "CellPhone": ("Bed", "Dresser", "Desk", "SideTable", "Drawer", "Safe"),
    "Book": ("Bed", "Desk", "Shelf", "SideTable", "Sofa"),
    "CD": ("Drawer", "Desk", "Shelf", "Safe", "SideTable"),
    "Pen": ("Desk", "Drawer", "Shelf", "SideTable", "Dresser"),
    "Pencil": ("Desk", "Drawer", "Shelf", "SideTable", "Dresser"),
    "AlarmClock": ("Desk", "Dresser", "SideTable", "Shelf"),
    "TissueBox": ("Dresser", "SideTable", "CoffeeTable", "Toilet", "Cabinet"),
    "Box": ("Sofa", "ArmChair", "CoffeeTable", "Dresser"),
    "BaseballBat": ("Bed",),
    "TennisRacket": ("Bed",),
    "BasketBall": ("Bed", "Sofa", "ArmChair"),
}
# objects people examine under a desk lamp (look_at_obj_in_light)
LOOKABLE = ("AlarmClock", "Book", "Bowl", "Box", "CD", "CellPhone", "CreditCard", "KeyChain",
            "Laptop", "Mug", "Newspaper", "Pen", "Pencil", "Pillow", "RemoteControl", "Statue",
            "Vase", "Watch")
_TREATMENT = {  # task type -> (VAL_ACTION_OBJECTS key, appliance type, state predicate)
    "pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin", "isClean"),
    "pick_heat_then_place_in_recep": ("Heatable", "Microwave", "isHot"),
    "pick_cool_then_place_in_recep": ("Coolable", "Fridge", "isCool"),
}
_OPENABLE = ("Fridge", "Cabinet", "Microwave", "Drawer", "Safe", "Box")
# the domain names these types as constants, so every problem declares them
_CONSTANT_OTYPES = ("Knife", "ButterKnife")
_CONSTANT_RTYPES = ("SinkBasin", "Microwave", "Fridge")


@dataclass(frozen=True)
class Goal:
    """One task: its type, the target object type, the destination and the lamp (look-at)."""

    task_type: str
    obj: str
    recep: str = ""
    toggle: str = ""

    def pddl_params(self) -> dict[str, object]:
        """ALFWorld's ``traj_data["pddl_params"]`` for this goal."""
        return {"object_target": self.obj, "parent_target": self.recep,
                "toggle_target": self.toggle, "mrecep_target": "", "object_sliced": False}

    @classmethod
    def from_traj_data(cls, traj: dict) -> Goal:
        """Read a goal from an ALFWorld ``traj_data.json`` record."""
        params = traj["pddl_params"]
        return cls(traj["task_type"], params["object_target"], params.get("parent_target", ""),
                   params.get("toggle_target", ""))

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return asdict(self)


def check_task_types(task_types: list[str]) -> list[str]:
    """``task_types`` if each is an ALFWorld task type, else an error naming them."""
    for task_type in task_types:
        if task_type not in TASK_TYPES:
            raise InvalidOptionError(
                f"Unknown ALFWorld task type {task_type!r}. Task types: {', '.join(TASK_TYPES)}."
                f"{did_you_mean(task_type, TASK_TYPES)}"
            )
    return task_types


def treatment(task_type: str) -> tuple[str, str] | None:
    """``(appliance type, state predicate)`` of a clean/heat/cool task, else None."""
    entry = _TREATMENT.get(task_type)
    return (entry[1], entry[2]) if entry else None


def candidate_goals(scene: Scene, item_types: list[str], task_type: str) -> list[Goal]:
    """Every whitelisted goal of ``task_type`` that this scene can host."""
    present = scene.receptacle_types()
    if task_type == "look_at_obj_in_light":
        if "DeskLamp" not in item_types or not present & set(LAMP_SURFACES):
            return []
        return [Goal(task_type, obj, toggle="DeskLamp") for obj in LOOKABLE
                if obj in item_types and _has_home(obj, present)]
    allowed = set(item_types)
    if task_type in _TREATMENT:
        kind, appliance, _ = _TREATMENT[task_type]
        if appliance not in present:
            return []
        allowed &= set(constants().VAL_ACTION_OBJECTS[kind])
    return [Goal(task_type, obj, recep) for obj in sorted(allowed)
            for recep in DESTINATIONS.get(obj, ()) if recep in present and can_contain(recep, obj)
            and _has_home(obj, present - {recep})]


def _has_home(obj: str, receptacle_types: set[str]) -> bool:
    return any(can_contain(rtype, obj) for rtype in receptacle_types)


def populate(scene: Scene, item_types: list[str], goal: Goal, rng: random.Random) -> None:
    """Sample 1-3 instances of every object type into compatible receptacles.

    The targets never start in a receptacle of the goal's type (nor a cooling target in the
    fridge), pick-two gets at least two targets and a lamp stands on a desk, side table or
    dresser.
    """
    for otype in item_types:
        count = rng.randint(1, constants().MAX_NUM_OF_OBJ_INSTANCES)
        if otype == goal.obj:
            count = max(count, 2 if goal.task_type == "pick_two_obj_and_place" else 1)
        homes = _homes(scene, otype, goal)
        if otype == "DeskLamp":
            homes = [r for r in scene.receptacles if r.type in LAMP_SURFACES]
            count = 1
        for _ in range(count if homes else 0):
            scene.items.append(Item(random_item_id(otype, rng), otype, rng.choice(homes)))


def _homes(scene: Scene, otype: str, goal: Goal) -> list[Receptacle]:
    banned = {goal.recep, "Fridge" if goal.task_type == "pick_cool_then_place_in_recep" else ""}
    if otype != goal.obj:
        banned = set()
    return [r for r in scene.receptacles if can_contain(r.type, otype) and r.type not in banned]


def task_text(goal: Goal, rng: random.Random) -> str:
    """One of the goal library's templates for this goal ("put some apple on fridge")."""
    from alfworld.gen import goal_library

    template = rng.choice(goal_library.gdict[goal.task_type]["templates"])
    return template.format(obj=goal.obj.lower(), recep=goal.recep.lower(),
                           toggle=goal.toggle.lower(), mrecep="")


def mangle(name: str) -> str:
    """ALFRED's PDDL-safe spelling of an id (``Cabinet|+00.68`` -> ``Cabinet_bar__plus_00_dot_68``)."""  # noqa: E501
    for char, word in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_")):
        name = name.replace(char, word)
    return name


def problem_pddl(scene: Scene, goal: Goal, name: str) -> str:
    """The PDDL problem of a populated scene: objects, initial facts and the goal."""
    from alfworld.gen import goal_library

    start = "loc|-99|-99|0|30"  # a spot by no receptacle: the intro reads "middle of a room"
    otypes = sorted({i.type for i in scene.items} | set(_CONSTANT_OTYPES))
    rtypes = sorted(scene.receptacle_types() | set(_CONSTANT_RTYPES))
    locations = sorted({r.location for r in scene.receptacles} | {start})
    objects = (["agent1 - agent"] + [f"{t}Type - otype" for t in otypes]
               + [f"{t}Type - rtype" for t in rtypes]
               + [f"{mangle(i.id)} - object" for i in scene.items]
               + [f"{mangle(r.id)} - receptacle" for r in scene.receptacles]
               + [f"{mangle(loc)} - location" for loc in locations])
    facts = [f"(atLocation agent1 {mangle(start)})"]
    facts += [fact for r in scene.receptacles for fact in _receptacle_facts(r)]
    facts += [fact for i in scene.items for fact in _item_facts(i)]
    facts += [f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes if can_contain(r, o)]
    goal_text = goal_library.gdict[goal.task_type]["pddl"].format(
        obj=goal.obj, recep=goal.recep, toggle=goal.toggle).replace("#", "-")
    return (f"(define (problem {name})\n(:domain alfred)\n(:objects\n  "
            + "\n  ".join(objects) + "\n)\n(:init\n  " + "\n  ".join(facts) + "\n)\n"
            + goal_text.strip() + "\n")


def _receptacle_facts(r: Receptacle) -> list[str]:
    rid = mangle(r.id)
    facts = [f"(receptacleType {rid} {r.type}Type)",
             f"(receptacleAtLocation {rid} {mangle(r.location)})"]
    return facts + ([f"(openable {rid})"] if r.type in _OPENABLE else [])


def _item_facts(item: Item) -> list[str]:
    c = constants()
    oid = mangle(item.id)
    facts = [f"(objectType {oid} {item.type}Type)",
             f"(inReceptacle {oid} {mangle(item.receptacle.id)})",
             f"(objectAtLocation {oid} {mangle(item.receptacle.location)})"]
    if item.type == "DeskLamp":
        return facts + [f"(toggleable {oid})"]
    facts.append(f"(pickupable {oid})")
    for kind, predicate in (("Cleanable", "cleanable"), ("Heatable", "heatable"),
                            ("Coolable", "coolable"), ("Sliceable", "sliceable")):
        if item.type in c.VAL_ACTION_OBJECTS[kind]:
            facts.append(f"({predicate} {oid})")
    if item.type in c.MOVABLE_RECEPTACLES:
        facts.append(f"(isReceptacleObject {oid})")
    if item.receptacle.type == "Fridge":
        facts.append(f"(isCool {oid})")  # ALFRED's convention: what is in the fridge is cold
    return facts
