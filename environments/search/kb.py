"""A seeded fictional knowledge base, rendered as encyclopedia passages, with multi-hop questions.

Every name is made up from syllables, so no question can be answered from pretraining: the
answer has to come from the passages (the idea behind ReSeek's FictionalHot). Entities:

* people (born, birthplace -> place, occupation, employer -> organisation),
* places (founded, population, region),
* organisations (founded, headquarters -> place, founder -> person),
* works (year, author -> person, genre).

A k-hop question follows k-1 relations from a start entity and asks an attribute of the
last one ("In what year was the founder of the employer of Varo Kelmint born?"); its
supporting passages are the k entities on the path, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.errors import TaskDataError

SYLLABLES = ("ka ri vo len tar mis dor el an sa bel quin ro tha ve nor il ga fen jo mar "
             "lis ord ber cal dun ess fal gor han ist kel lom nav osk pel rud sol tum ul "
             "var wen yor zan bri cor dra fin gla hol kra lin mor pra sel tro vil").split()
OCCUPATIONS = ("cartographer", "glassblower", "astronomer", "archivist", "shipwright",
               "composer", "botanist", "engineer", "translator", "stonemason")
GENRES = ("novel", "treatise", "opera", "atlas", "chronicle", "poem cycle", "almanac")
REGIONS = ("the Ostmark Reach", "the Velmire Coast", "the Sarn Highlands", "the Dulan Basin",
           "the Quessel Isles", "the Torvan Marches")
ORG_KINDS = ("Institute", "Guild", "Company", "Society", "Foundry", "Observatory", "Press")
PLACE_ENDS = ("holm", "ford", "stad", "mouth", "by", "wick", "gard", "dale")
WORK_NOUNS = ("Lantern", "Harbour", "Orchard", "Mirror", "Compass", "Winter", "Tide", "Archive")
WORK_ADJS = ("Silent", "Crimson", "Hollow", "Northern", "Last", "Gilded", "Patient", "Drowned")

# relation -> (source type, target type, noun phrase template)
RELATIONS = {
    "birthplace": ("person", "place", "the birthplace of {}"),
    "employer": ("person", "org", "the employer of {}"),
    "headquarters": ("org", "place", "the headquarters of {}"),
    "founder": ("org", "person", "the founder of {}"),
    "author": ("work", "person", "the author of {}"),
}
# attribute -> (entity type, question template)
ATTRIBUTES = {
    "born": ("person", "In what year was {} born?"),
    "occupation": ("person", "What was the occupation of {}?"),
    "founded": ("place", "In what year was {} founded?"),
    "population": ("place", "What is the population of {}?"),
    "org_founded": ("org", "In what year was {} founded?"),
    "year": ("work", "In what year was {} published?"),
    "name": ("any", "What is the name of {}?"),
}
TYPES = ("person", "place", "org", "work")


@dataclass
class Entity:
    """One entity: its passage id, type, name, attributes and relations."""

    id: int
    type: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    links: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    """A question with its gold answers and the passages that support it, in hop order."""

    question: str
    answers: tuple[str, ...]
    supporting: tuple[int, ...]

    @property
    def hops(self) -> int:
        """How many passages the answer needs."""
        return len(self.supporting)


class NameMaker:
    """Unique made-up names from syllables."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, lo: int = 2, hi: int = 3) -> str:
        """A capitalised word of ``lo`` to ``hi`` syllables."""
        n = int(self.rng.integers(lo, hi + 1))
        return "".join(SYLLABLES[i] for i in self.rng.integers(len(SYLLABLES), size=n)).title()

    def unique(self, make) -> str:
        """Call ``make`` until it gives a name not used before."""
        while True:
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name

    def person(self) -> str:
        """A first and last name."""
        return self.unique(lambda: f"{self.word()} {self.word()}")

    def place(self) -> str:
        """A town name."""
        return self.unique(lambda: self.word() + PLACE_ENDS[int(self.rng.integers(8))])

    def org(self) -> str:
        """An organisation name."""
        return self.unique(lambda: f"{self.word()} {ORG_KINDS[int(self.rng.integers(7))]}")

    def work(self) -> str:
        """A title."""
        return self.unique(lambda: f"The {WORK_ADJS[int(self.rng.integers(8))]} "
                                   f"{WORK_NOUNS[int(self.rng.integers(8))]} of {self.word()}")


class KnowledgeBase:
    """A generated world of ``size`` entities, one passage each.

    Args:
        size: Number of passages (40% people, 20% each places, organisations and works).
        seed: Everything follows from it.
    """

    def __init__(self, size: int = 2000, seed: int = 0) -> None:
        if size < 20:
            raise TaskDataError(f"A knowledge base needs at least 20 passages, got {size}.")
        self.size, self.seed = size, seed
        rng = np.random.default_rng(seed)
        names = NameMaker(rng)
        counts = {"person": size * 2 // 5, "place": size // 5, "org": size // 5}
        counts["work"] = size - sum(counts.values())
        self.entities: list[Entity] = []
        self.by_type: dict[str, list[int]] = {}
        for kind in TYPES:
            make = getattr(names, kind)
            start = len(self.entities)
            self.entities += [Entity(start + i, kind, make()) for i in range(counts[kind])]
            self.by_type[kind] = list(range(start, len(self.entities)))
        self._fill(rng)

    def _pick(self, rng: np.random.Generator, kind: str) -> int:
        ids = self.by_type[kind]
        return ids[int(rng.integers(len(ids)))]

    def _fill(self, rng: np.random.Generator) -> None:
        for e in self.entities:
            if e.type == "person":
                e.attrs = {"born": int(rng.integers(1700, 1990)),
                           "occupation": OCCUPATIONS[int(rng.integers(len(OCCUPATIONS)))]}
                e.links = {"birthplace": self._pick(rng, "place"),
                           "employer": self._pick(rng, "org")}
            elif e.type == "place":
                e.attrs = {"founded": int(rng.integers(900, 1800)),
                           "population": int(rng.integers(2, 900)) * 1000,
                           "region": REGIONS[int(rng.integers(len(REGIONS)))]}
            elif e.type == "org":
                e.attrs = {"org_founded": int(rng.integers(1750, 2000))}
                e.links = {"headquarters": self._pick(rng, "place"),
                           "founder": self._pick(rng, "person")}
            else:
                e.attrs = {"year": int(rng.integers(1750, 2020)),
                           "genre": GENRES[int(rng.integers(len(GENRES)))]}
                e.links = {"author": self._pick(rng, "person")}

    # ------------------------------------------------------------------ passages
    def passage(self, entity_id: int) -> tuple[str, str]:
        """``(title, text)`` of an entity's encyclopedia passage."""
        e = self.entities[entity_id]
        name = lambda key: self.entities[e.links[key]].name  # noqa: E731
        a = e.attrs
        if e.type == "person":
            text = (f"{e.name} (born {a['born']}) is a {a['occupation']} from "
                    f"{name('birthplace')}. {e.name} works for the {name('employer')}.")
        elif e.type == "place":
            text = (f"{e.name} is a town in {a['region']}, founded in {a['founded']}. "
                    f"{e.name} has a population of {a['population']}.")
        elif e.type == "org":
            text = (f"The {e.name} was founded in {a['org_founded']} by {name('founder')}. "
                    f"The {e.name} is headquartered in {name('headquarters')}.")
        else:
            text = (f"{e.name} is a {a['genre']} published in {a['year']}. "
                    f"{e.name} was written by {name('author')}.")
        return e.name, text

    def documents(self) -> list[dict[str, Any]]:
        """Every passage as ``{"id", "title", "text"}``."""
        return [dict(zip(("id", "title", "text"), (i, *self.passage(i))))
                for i in range(len(self.entities))]

    # ------------------------------------------------------------------ questions
    def question(self, rng: np.random.Generator, hops: int, start_ids: list[int]) -> Question:
        """A random ``hops``-hop question whose start entity is drawn from ``start_ids``."""
        for _ in range(1000):
            start = start_ids[int(rng.integers(len(start_ids)))]
            path, relations = [start], []
            while len(path) < hops:
                kind = self.entities[path[-1]].type
                options = [r for r, (src, _, _) in RELATIONS.items() if src == kind]
                if not options:
                    break
                relation = options[int(rng.integers(len(options)))]
                relations.append(relation)
                path.append(self.entities[path[-1]].links[relation])
            if len(path) == hops and len(set(path)) == hops:
                return self._ask(rng, path, relations)
        raise TaskDataError(f"Could not build a {hops}-hop question from {len(start_ids)} starts.")

    def _ask(self, rng: np.random.Generator, path: list[int], relations: list[str]) -> Question:
        phrase = self.entities[path[0]].name
        for relation in relations:
            phrase = RELATIONS[relation][2].format(phrase)
        last = self.entities[path[-1]]
        options = [k for k, (kind, _) in ATTRIBUTES.items() if kind == last.type]
        if len(path) > 1:
            options.append("name")  # "What is the name of the founder of X?"
        attribute = options[int(rng.integers(len(options)))]
        answer = last.name if attribute == "name" else str(last.attrs[attribute])
        text = ATTRIBUTES[attribute][1].format(phrase)
        return Question(text[0].upper() + text[1:], (answer,), tuple(path))
