"""The shop as a page-state machine, and its text rendering (WebShop's ``[SEP]`` form or markdown).

Pages: search -> results (10 per page, ``Next >`` / ``< Prev``, ``Back to Search``) -> item
(options, ``Description``, ``Features``, ``Reviews``, ``Buy Now``) -> a sub-page, and back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

from agentgym.errors import InvalidOptionError
from environments.webshop.catalog import Product

PER_PAGE = 10
SUB_PAGES = ("description", "features", "reviews")
Page = Literal["search", "results", "item", "sub"]


@dataclass(frozen=True)
class ShopState:
    """Where the shopper is. Immutable: every click makes a new state."""

    page: Page = "search"
    query: str = ""
    results: tuple[int, ...] = ()
    page_num: int = 1
    item: int | None = None
    options: tuple[tuple[str, str], ...] = ()
    sub: str | None = None

    def key(self, asin: str | None) -> str:
        """A canonical fingerprint: page, query, result page, item, chosen options."""
        blob = repr((self.page, self.query, self.page_num, asin, sorted(self.options), self.sub))
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def page_results(self) -> tuple[int, ...]:
        """The product indices shown on the current results page."""
        start = (self.page_num - 1) * PER_PAGE
        return self.results[start:start + PER_PAGE]

    def chosen(self) -> dict[str, str]:
        """Option name -> chosen value."""
        return dict(self.options)


def buttons(state: ShopState, products: list[Product]) -> list[str]:
    """The clickable buttons of the page, lower-cased as WebShop's actions name them."""
    if state.page == "search":
        return []
    out = ["back to search"]
    if state.page == "results":
        if state.page_num > 1:
            out.append("< prev")
        if state.page_num * PER_PAGE < len(state.results):
            out.append("next >")
        return out + [products[i].asin.lower() for i in state.page_results()]
    out.append("< prev")
    if state.page == "item":
        product = products[state.item]  # type: ignore[index]
        out += [v.lower() for values in product.options.values() for v in values]
        out += [*SUB_PAGES, "buy now"]
    return out


def click(state: ShopState, button: str, products: list[Product]) -> ShopState:
    """The state after clicking ``button``, which must be one of the page's ``buttons``."""
    if button not in buttons(state, products):
        raise InvalidOptionError(f"No button {button!r} on the {state.page} page; its buttons "
                                 f"are {buttons(state, products)}.")
    if button == "back to search":
        return ShopState()
    if state.page == "results":
        if button == "next >":
            return replace(state, page_num=state.page_num + 1)
        if button == "< prev":
            return replace(state, page_num=state.page_num - 1)
        index = next(i for i in state.page_results() if products[i].asin.lower() == button)
        return replace(state, page="item", item=index, options=(), sub=None)
    if state.page == "sub":
        return replace(state, page="item", sub=None)
    if button == "< prev":
        return replace(state, page="results", item=None, options=())
    if button in SUB_PAGES:
        return replace(state, page="sub", sub=button)
    product = products[state.item]  # type: ignore[index]
    for name, values in product.options.items():
        if button in (v.lower() for v in values):
            value = next(v for v in values if v.lower() == button)
            chosen = {**state.chosen(), name: value}
            return replace(state, options=tuple(sorted(chosen.items())))
    return state  # "buy now" ends the episode in the env; the page itself stays


def render(state: ShopState, products: list[Product], instruction: str,
           mode: Literal["simple", "markdown"] = "simple") -> str:
    """The page as text: WebShop's ``[SEP]``-separated simple form, or markdown."""
    parts = _parts(state, products, instruction)
    if mode == "simple":
        return " [SEP] ".join(text for _, text in parts)
    lines = []
    for kind, text in parts:
        lines.append({"button": f"[{text}]", "heading": f"## {text}",
                      "text": text}.get(kind, text))
    return "\n".join(lines)


def _parts(state: ShopState, products: list[Product], instruction: str
           ) -> list[tuple[str, str]]:
    head = [("heading", "Instruction:"), ("text", instruction)]
    if state.page == "search":
        return [("heading", "WebShop"), *head, ("button", "Search")]
    parts = [*head, ("button", "Back to Search")]
    if state.page == "results":
        if state.page_num > 1:
            parts.append(("button", "< Prev"))
        parts.append(("text", f"Page {state.page_num} (Total results: {len(state.results)})"))
        if state.page_num * PER_PAGE < len(state.results):
            parts.append(("button", "Next >"))
        for i in state.page_results():
            p = products[i]
            parts += [("button", p.asin), ("text", p.title), ("text", f"${p.price:.2f}")]
        return parts
    product = products[state.item]  # type: ignore[index]
    parts.append(("button", "< Prev"))
    if state.page == "sub":
        return parts + [("text", _sub_page(product, state.sub or ""))]
    chosen = state.chosen()
    for name, values in product.options.items():
        parts.append(("heading", name))
        parts += [("button", f"{v} (selected)" if chosen.get(name) == v else v) for v in values]
    parts += [("text", product.title), ("text", f"Price: ${product.price:.2f}"),
              ("text", "Rating: N.A.")]
    return parts + [("button", b) for b in ("Description", "Features", "Reviews", "Buy Now")]


def _sub_page(product: Product, sub: str) -> str:
    if sub == "description":
        return product.description
    if sub == "features":
        return " ".join(product.bullets)
    return "No reviews yet."


@dataclass
class History:
    """What the expert and the progress channel remember across an episode."""

    queries: list[str] = field(default_factory=list)
    reached_target: bool = False
    good_options: set[str] = field(default_factory=set)
