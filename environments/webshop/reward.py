"""WebShop's purchase reward (``web_agent_site/engine/goal.py``), with offline dependencies.

At ``Buy Now``::

    r_type = 1.0
    if not (query match or >= 2 shared category levels or title noun overlap > 0.2): 0.5
    if title noun overlap < 0.1: 0.1
    if title noun overlap == 0:  0.0
    attribute matched: token_set_ratio > 85 against any product attribute, else the
                       attribute appears in the title, bullet points or description
    option matched:    normalised colours, token_set_ratio > 85 against a chosen option
    r_price = 1[price <= budget]
    R = r_type * (n_attributes + n_options + r_price) / (|attributes| + |options| + 1)

Divergences from the original, on purpose: nouns come from a word filter (lower-case words
that are not stopwords, numbers or common descriptive adjectives) instead of spaCy's POS
tagger, which needs a model download; colours are normalised by families (``navy`` ->
``blue``) where the original keeps the first colour of its list found in the string. Fuzzy
matching is rapidfuzz's ``token_set_ratio`` with thefuzz's default processing (lower case,
every non-alphanumeric character a space), the original's fuzzywuzzy call: option ``7``
matches ``7.5`` and ``non-gmo`` matches ``non gmo``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agentgym.errors import MissingDependencyError
from environments.webshop.catalog import Goal, Product

NOT_NOUNS = frozenset("""
a an the and or of for with in on to by from at as is are be this that these those it its
your you our new best premium classic everyday deluxe essential ultra pro soft men women
mens womens large small medium long short high low light lightweight fast quick easy free
natural organic slim relaxed wide non plus x xx extra made set pack count oz fl ft
""".split())
COLOR_FAMILIES = {"navy": "blue", "sky": "blue", "royal": "blue", "heather": "grey",
                  "gray": "grey", "charcoal": "grey", "olive": "green", "forest": "green",
                  "ivory": "white", "cream": "white", "beige": "tan", "burgundy": "red",
                  "wine": "red", "espresso": "brown", "walnut": "brown"}


def fuzzy_score(a: str, b: str) -> float:
    """The ``token_set_ratio(a, b)`` of thefuzz (0..100), its default processing included."""
    try:
        from rapidfuzz import fuzz, utils
    except ImportError as exc:
        raise MissingDependencyError("rapidfuzz", "webshop") from exc
    return fuzz.token_set_ratio(a, b, processor=utils.default_process)


def nouns(text: str) -> set[str]:
    """The noun-like words of a title (see the module docstring)."""
    words = re.findall(r"[a-z][a-z\-]+", text.lower())
    return {w for w in words if w not in NOT_NOUNS}


def normalize_color(text: str) -> str:
    """Map colour variants to their family ("navy blue" -> "blue blue")."""
    return " ".join(COLOR_FAMILIES.get(w, w) for w in text.lower().split())


def type_score(product: Product, goal: Goal) -> float:
    """``r_type``: whether the purchase is the right kind of product."""
    query_match = product.query == goal.product_type
    shared = ({c.strip() for c in product.category.split("›")}
              & {c.strip() for c in goal.category.split("›")})
    goal_nouns = nouns(goal.title)
    title = len(nouns(product.title) & goal_nouns) / len(goal_nouns) if goal_nouns else 0.2
    score = 1.0
    if not (query_match or len(shared) >= 2 or title > 0.2):
        score = 0.5
    if title < 0.1:
        score = 0.1
    if title == 0.0:
        score = 0.0
    return score


def attribute_matched(wanted: str, product: Product) -> bool:
    """Fuzzy match against the product's attributes, else a substring of its text."""
    if any(fuzzy_score(attr, wanted) > 85 for attr in product.attributes):
        return True
    text = " ".join([product.title, *product.bullets, product.description]).lower()
    return wanted.lower() in text


def option_matched(wanted: str, chosen: Iterable[str]) -> bool:
    """Fuzzy match of a wanted option value against the chosen ones (colours normalised)."""
    return any(fuzzy_score(normalize_color(c), normalize_color(wanted)) > 85
               for c in chosen)


@dataclass(frozen=True)
class PurchaseScore:
    """The parts of WebShop's reward and the total."""

    type: float
    attribute: float
    option: float
    price: float
    score: float

    def channels(self) -> dict[str, float]:
        """The outcome channels (``success`` = a perfect score)."""
        return {"type": self.type, "attribute": self.attribute, "option": self.option,
                "price": self.price, "score": self.score, "success": float(self.score >= 1.0)}


def purchase_score(product: Product, chosen: dict[str, str], goal: Goal) -> PurchaseScore:
    """WebShop's reward for buying ``product`` with ``chosen`` options, against ``goal``."""
    r_type = type_score(product, goal)
    n_att = sum(attribute_matched(a, product) for a in goal.attributes)
    n_opt = sum(option_matched(value, chosen.values()) for _, value in goal.options)
    r_price = float(product.price <= goal.price_upper)
    total = len(goal.attributes) + len(goal.options) + 1
    score = r_type * (n_att + n_opt + r_price) / total
    return PurchaseScore(r_type, n_att / max(1, len(goal.attributes)),
                         n_opt / max(1, len(goal.options)), r_price, score)
