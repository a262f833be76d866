"""Household scenes from what the alfworld wheel ships: floor plans, receptacles and objects.

ALFWorld's games come from ALFRED's simulator runs. Offline we rebuild the same kind of
scene from the wheel's own tables: each floor plan's receptacle ids and poses
(``FloorPlanN-openable.json``), its object types (``FloorPlanN-objects.json``) and ALFRED's
compatibility tables (``VAL_RECEPTACLE_OBJECTS``, ``VAL_ACTION_OBJECTS``). Receptacle ids and
their co-location match the real scenes; object counts and placements are sampled.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from agentgym.errors import InvalidOptionError, did_you_mean

ROOMS: dict[str, range] = {
    "kitchen": range(1, 31),
    "livingroom": range(201, 231),
    "bedroom": range(301, 331),
    "bathroom": range(401, 431),
}
"""Floor-plan numbers per room type (ALFRED's numbering)."""

# ALFRED's own split: plans 1-6 of each room type are never seen in training
TEST_PLANS = frozenset(n for plans in ROOMS.values() for n in list(plans)[:6])
LAMP_SURFACES = ("Desk", "SideTable", "Dresser")
# scenery and fixtures that appear in the object lists but are not things to pick up
_NOT_ITEMS = frozenset({"Lamp", "FloorLamp", "LaundryHamperLid", "Footstool", "Boots",
                        "ScrubBrush", "Plunger", "PaperTowelRoll", "TeddyBear"})


@dataclass(frozen=True)
class Receptacle:
    """A static receptacle: its ALFRED id, type and the location it is reached from."""

    id: str
    type: str
    location: str


@dataclass(frozen=True)
class Item:
    """A movable object (or a desk lamp) inside a receptacle."""

    id: str
    type: str
    receptacle: Receptacle


@dataclass
class Scene:
    """One floor plan's receptacles and the objects sampled into them."""

    floor_plan: int
    receptacles: list[Receptacle]
    items: list[Item] = field(default_factory=list)

    @property
    def room(self) -> str:
        """``kitchen``, ``livingroom``, ``bedroom`` or ``bathroom``."""
        return room_of(self.floor_plan)

    def receptacle_types(self) -> set[str]:
        """Types of the receptacles present."""
        return {r.type for r in self.receptacles}

    def of_type(self, rtype: str) -> list[Receptacle]:
        """The receptacles of one type."""
        return [r for r in self.receptacles if r.type == rtype]


def constants():  # noqa: ANN201 - a module, imported late so agentgym stays light
    """The ``alfworld.gen.constants`` module (ALFRED's tables)."""
    from alfworld.gen import constants as alfred_constants

    return alfred_constants


def layouts_dir() -> Path:
    """The wheel's folder of floor-plan tables."""
    import alfworld.gen

    return Path(alfworld.gen.__file__).parent / "layouts"


def room_of(floor_plan: int) -> str:
    """The room type of a floor plan number."""
    for room, plans in ROOMS.items():
        if floor_plan in plans:
            return room
    raise InvalidOptionError(
        f"Floor plan {floor_plan} does not exist. Floor plans: 1-30 (kitchens), 201-230 "
        "(living rooms), 301-330 (bedrooms), 401-430 (bathrooms)."
    )


def check_rooms(rooms: list[str]) -> list[str]:
    """``rooms`` if every name is a room type, else an error naming them."""
    for room in rooms:
        if room not in ROOMS:
            raise InvalidOptionError(f"Unknown room {room!r}. Rooms: {', '.join(ROOMS)}."
                                     f"{did_you_mean(room, ROOMS)}")
    return rooms


def plans_of_split(split: str, rooms: list[str] | None = None) -> list[int]:
    """Floor plans of the generated ``train`` or ``test`` split (disjoint, like ALFRED's)."""
    plans = [n for room in (rooms or list(ROOMS)) for n in ROOMS[room]]
    return [n for n in plans if (n in TEST_PLANS) == (split == "test")]


@cache
def _layout(floor_plan: int) -> tuple[dict[str, list[float]], tuple[str, ...]]:
    room_of(floor_plan)
    folder = layouts_dir()
    poses = json.loads((folder / f"FloorPlan{floor_plan}-openable.json").read_text())
    types = tuple(json.loads((folder / f"FloorPlan{floor_plan}-objects.json").read_text()))
    return poses, types


def location_name(x: float, z: float, rotation: float, horizon: float) -> str:
    """ALFRED's location id for a pose on its 0.25 m navigation grid."""
    return f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{round(rotation / 90) % 4}|{round(horizon)}"


def receptacles_of(floor_plan: int) -> list[Receptacle]:
    """The static receptacles of a floor plan, each with the location it is reached from.

    Sinks and bathtubs are their basins (ALFRED's ``...|SinkBasin`` ids). Receptacle types the
    scene has but the pose table lacks (stove burners, toasters, ...) get one instance each.
    """
    c = constants()
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)
    poses, types = _layout(floor_plan)
    found = []
    for rid, (x, z, rotation, horizon) in sorted(poses.items()):
        rid, rtype = _basin(rid)
        if rtype in static:
            found.append(Receptacle(rid, rtype, location_name(x, z, rotation, horizon)))
    present = {r.type for r in found}
    for n, rtype in enumerate(sorted({_basin(t + "|")[1] for t in types} & static - present)):
        rid = f"{rtype}|{-1.5 + 0.5 * n:+06.2f}|+00.90|{-3.0:+06.2f}"
        found.append(Receptacle(rid, rtype, location_name(-1.5 + 0.5 * n, -3.0 - n, 2, 30)))
    return found


def _basin(rid: str) -> tuple[str, str]:
    rtype = rid.split("|")[0]
    for fixture in ("Sink", "Bathtub"):
        if rtype in (fixture, fixture + "Basin"):
            base = rid.rsplit("|", 1)[0] if rid.endswith("Basin") else rid.rstrip("|")
            return f"{base}|{fixture}Basin", fixture + "Basin"
    return rid, rtype


def item_types_of(floor_plan: int) -> list[str]:
    """Object types of a floor plan that can be picked up and placed somewhere (plus lamps)."""
    c = constants()
    placeable = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)
    _, types = _layout(floor_plan)
    return sorted(t for t in set(types)
                  if (t in placeable and t not in static and t not in _NOT_ITEMS)
                  or t == "DeskLamp")


def can_contain(rtype: str, otype: str) -> bool:
    """ALFRED's compatibility table: whether ``otype`` may be put in ``rtype``."""
    return otype in constants().VAL_RECEPTACLE_OBJECTS.get(rtype, ())


def random_item_id(otype: str, rng: random.Random) -> str:
    """An ALFRED-style object id with sampled coordinates."""
    x, y, z = (rng.uniform(-3, 3), rng.uniform(0, 2), rng.uniform(-3, 3))
    return f"{otype}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
