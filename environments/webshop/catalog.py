"""A seeded catalog of realistic products and the shopping goals built on them.

Products have a category path, a product type, a brand, a title, bullet points, a
description, attributes ("fragrance free", "machine washable"), options (size, color, ...)
and a price; a goal names a product type with some of its attributes, one value per option
and a price ceiling, and is rendered as WebShop's instructions are ("i need a ..., and price
lower than 40.00 dollars"). Any size from 1k to 1M products; WebShop's own item files load
through :func:`load_webshop_items`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# category path -> product types -> (attribute pool, option pools)
DEPARTMENTS: dict[str, dict[str, Any]] = {
    "beauty & personal care › skin care › face": {
        "types": ["moisturizer", "serum", "cleanser", "toner", "face mask"],
        "attributes": ["fragrance free", "paraben free", "cruelty free", "for sensitive skin",
                       "long lasting", "natural ingredients", "travel size", "vegan"],
        "options": {"size": ["1 fl oz", "1.7 fl oz", "3.4 fl oz", "6.8 fl oz"],
                    "scent": ["unscented", "lavender", "citrus", "rose"]},
    },
    "clothing, shoes & jewelry › men › shirts": {
        "types": ["t-shirt", "polo shirt", "button-down shirt", "henley", "tank top"],
        "attributes": ["machine washable", "slim fit", "moisture wicking", "cotton",
                       "short sleeve", "long sleeve", "quick dry", "relaxed fit"],
        "options": {"size": ["small", "medium", "large", "x-large", "xx-large"],
                    "color": ["black", "navy blue", "heather grey", "white", "olive green"]},
    },
    "clothing, shoes & jewelry › women › shoes": {
        "types": ["running shoe", "sandal", "ankle boot", "loafer", "sneaker"],
        "attributes": ["non slip", "rubber sole", "memory foam", "lightweight", "breathable",
                       "arch support", "water resistant", "wide width"],
        "options": {"size": ["6", "7", "7.5", "8", "8.5", "9", "10"],
                    "color": ["black", "white", "beige", "pink", "red"]},
    },
    "grocery & gourmet food › snacks": {
        "types": ["protein bar", "trail mix", "potato chips", "beef jerky", "granola"],
        "attributes": ["gluten free", "low sugar", "high protein", "non gmo", "keto friendly",
                       "individually wrapped", "organic", "low calorie"],
        "options": {"flavor": ["chocolate", "peanut butter", "sea salt", "original", "honey"],
                    "pack": ["6 count", "12 count", "24 count"]},
    },
    "home & kitchen › furniture": {
        "types": ["office chair", "bookshelf", "coffee table", "bar stool", "nightstand"],
        "attributes": ["easy assembly", "solid wood", "space saving", "height adjustable",
                       "mid century", "storage space", "living room", "steel frame"],
        "options": {"color": ["walnut", "black", "white", "espresso", "natural"],
                    "size": ["small", "medium", "large"]},
    },
    "electronics › accessories": {
        "types": ["usb c cable", "phone charger", "wireless earbuds", "power bank", "hdmi cable"],
        "attributes": ["fast charging", "high speed", "long lasting", "noise cancelling",
                       "braided", "water resistant", "portable", "bluetooth"],
        "options": {"length": ["3 ft", "6 ft", "10 ft"],
                    "color": ["black", "white", "blue", "red"]},
    },
}
BRAND_SYLLABLES = "zo ra vel kin tor ma lu nex qui sa dor fi bel cor va tek lin mo".split()
ADJECTIVES = ["premium", "classic", "everyday", "deluxe", "essential", "ultra", "pro", "soft"]


@dataclass
class Product:
    """One product, as WebShop's item pages show it."""

    asin: str
    title: str
    category: str
    product_type: str
    brand: str
    price: float
    attributes: list[str]
    options: dict[str, list[str]]
    bullets: list[str]
    description: str
    query: str = ""

    def search_text(self) -> str:
        """What the search engine indexes."""
        return " ".join([self.title, self.category, self.product_type, *self.attributes,
                         *self.bullets])


@dataclass(frozen=True)
class Goal:
    """What the shopper wants: a target product, attributes, one value per option, a budget."""

    asin: str
    instruction: str
    query: str
    product_type: str
    category: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    price_upper: float
    title: str = field(default="")


def _brand(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return "".join(BRAND_SYLLABLES[i] for i in rng.integers(len(BRAND_SYLLABLES), size=n)).title()


class Catalog:
    """``size`` generated products and their goals (one goal per product).

    Args:
        size: Number of products.
        seed: Everything follows from it.
    """

    def __init__(self, size: int = 1000, seed: int = 0, products: list[Product] | None = None,
                 human_goals: dict[str, Goal] | None = None) -> None:
        self.size, self.seed = size, seed
        self.products = products if products is not None else self._generate(size, seed)
        self.human_goals = human_goals or {}
        self.by_asin = {p.asin: i for i, p in enumerate(self.products)}
        self.tag = f"catalog{size}-seed{seed}"

    @staticmethod
    def _generate(size: int, seed: int) -> list[Product]:
        rng = np.random.default_rng(seed)
        departments = list(DEPARTMENTS)
        products = []
        for n in range(size):
            category = departments[int(rng.integers(len(departments)))]
            spec = DEPARTMENTS[category]
            kind = spec["types"][int(rng.integers(len(spec["types"])))]
            pool = spec["attributes"]
            attrs = [pool[i] for i in sorted(rng.choice(len(pool), size=3, replace=False))]
            options = {name: [values[i] for i in sorted(rng.choice(
                len(values), size=int(rng.integers(2, len(values) + 1)), replace=False))]
                for name, values in spec["options"].items()}
            brand = _brand(rng)
            adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
            title = f"{brand} {adjective.title()} {kind.title()} - {attrs[0].title()}, " \
                    f"{attrs[1].title()}"
            price = round(float(rng.uniform(5, 150)), 2)
            bullets = [f"{a.capitalize()}: made to last, designed for {kind}s." for a in attrs[1:]]
            description = (f"The {brand} {kind} is {attrs[0]} and {attrs[2]}. "
                           f"Available in {', '.join(v for vs in options.values() for v in vs)}.")
            products.append(Product(f"B{seed % 1000:03d}{n:07d}", title, category, kind, brand,
                                    price, attrs, options, bullets, description, query=kind))
        return products

    def goal(self, index: int) -> Goal:
        """The goal built on product ``index``: some of its attributes and one value per option.

        A human-written instruction for the product (WebShop's ``items_human_ins.json``) is
        used instead when one was loaded.
        """
        product = self.products[index]
        if product.asin in self.human_goals:
            return self.human_goals[product.asin]
        rng = np.random.default_rng([self.seed, index])
        n_attrs = int(rng.integers(1, min(3, len(product.attributes)) + 1))
        attrs = tuple(product.attributes[i] for i in sorted(
            rng.choice(len(product.attributes), size=n_attrs, replace=False)))
        options = tuple((name, values[int(rng.integers(len(values)))])
                        for name, values in product.options.items())
        price_upper = float(np.ceil(product.price * float(rng.uniform(1.1, 1.6))))
        wanted = ", and ".join(f"{value} {name}" for name, value in options)
        instruction = (f"i need a {' and '.join(attrs)} {product.product_type}"
                       + (f", and {wanted}" if wanted else "")
                       + f", and price lower than {price_upper:.2f} dollars")
        query = f"{' '.join(attrs)} {product.product_type}"
        return Goal(product.asin, instruction, query, product.product_type, product.category,
                    attrs, options, price_upper, product.title)


def load_webshop_items(path: str | Path, limit: int | None = None,
                       attributes: str | Path | None = None,
                       human_instructions: str | Path | None = None) -> Catalog:
    """A catalog from WebShop's own files.

    Args:
        path: ``items_shuffle*.json``, a JSON list of product records. Fields used:
            ``asin``, ``name``, ``category``, ``product_category``, ``query``, ``pricing``,
            ``small_description``/``full_description``, ``customization_options``
            (``{"size": [{"value": ...}, ...]}``) and ``attributes`` when present.
        limit: Keep only the first products.
        attributes: ``items_ins_v2*.json`` (asin -> ``{"attributes": [...]}``), merged in.
        human_instructions: ``items_human_ins.json`` (asin -> list of
            ``{"instruction", "instruction_attributes", "instruction_options"}``): the first
            instruction of each product becomes its goal.
    """
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    extra = _read_json(attributes) if attributes else {}
    for item in raw:
        item.setdefault("attributes", extra.get(item["asin"], {}).get("attributes", []))
    products = []
    for item in raw[:limit]:
        pricing = item.get("pricing") or [0.0]
        prices = pricing if isinstance(pricing, list) else [pricing]
        price = float(str(prices[0]).replace("$", "").replace(",", "") or 0)
        options = {name.lower(): [str(v.get("value", v)) if isinstance(v, dict) else str(v)
                                  for v in values]
                   for name, values in (item.get("customization_options") or {}).items()}
        bullets = item.get("small_description") or []
        products.append(Product(
            asin=item["asin"], title=item.get("name", ""),
            category=item.get("product_category", item.get("category", "")),
            product_type=item.get("query", ""), brand=item.get("brand", ""), price=price,
            attributes=list(item.get("attributes", [])), options=options,
            bullets=bullets if isinstance(bullets, list) else [str(bullets)],
            description=str(item.get("full_description", "")), query=item.get("query", "")))
    goals = _human_goals(_read_json(human_instructions), products) if human_instructions else {}
    return Catalog(len(products), seed=0, products=products, human_goals=goals)


def _read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _human_goals(raw: dict[str, list[dict[str, Any]]], products: list[Product]
                 ) -> dict[str, Goal]:
    goals = {}
    for product in products:
        written = raw.get(product.asin) or []
        if not written:
            continue
        first = written[0]
        text = first["instruction"]
        price = re.search(r"price lower than ([\d.,]+) dollars", text)
        goals[product.asin] = Goal(
            asin=product.asin, instruction=text, query=text, product_type=product.query,
            category=product.category, attributes=tuple(first.get("instruction_attributes", [])),
            options=tuple(("option", v) for v in first.get("instruction_options", [])),
            price_upper=float(price.group(1).replace(",", "")) if price else 1e6,
            title=product.title)
    return goals
