"""``WebShop-v0``: the web shop with WebShop's reward, a generated catalog and an embedded index."""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path
from typing import Any, Literal

from agentgym.cache import cache_root, cached_folder
from agentgym.core import AgentEnv, Transition
from agentgym.errors import InvalidOptionError, TaskNotFoundError
from agentgym.protocols import (
    ActionProtocol,
    ParsedAction,
    ToolCall,
    ToolCallProtocol,
    function_tool,
    pick_protocol,
    split_thought,
)
from environments.retrieval import BM25Index
from environments.webshop.catalog import Catalog, Goal, load_webshop_items
from environments.webshop.pages import History, ShopState, buttons, click, render
from environments.webshop.reward import option_matched, purchase_score

SPLITS = ("train", "test")
MAX_RESULTS = 50
_ACTION = re.compile(r"^(search|click)\[(.*)\]$", re.DOTALL)
SEARCH_TEMPLATE = "search[<your query>]"
"""The search page's admissible action: the form, as verl-agent's WebShop lists it."""


class WebShopProtocol(ActionProtocol):
    """WebShop's actions: ``search[query]`` or ``click[button]``; ``<think>`` is allowed first.

    Parses to ``ToolCall("search", {"query": q})`` or ``ToolCall("click", {"button": b})``.
    """

    name = "webshop"

    def encode(self, command: str | ToolCall) -> str:
        """``ToolCall("click", {"button": "buy now"})`` -> ``click[buy now]``."""
        if isinstance(command, str):
            return command
        value = command.arguments.get("query", command.arguments.get("button", ""))
        return f"{command.name}[{value}]"

    def example(self) -> str:
        """Valid actions."""
        return "Write one action: search[red running shoes] or click[buy now]."

    def describe(self) -> str:
        """Protocol instructions for a system prompt."""
        return ("You may think inside <think>...</think>. Then write exactly one action: "
                "search[your query] on the search page, or click[button] with a button of the "
                "current page, e.g. click[next >], click[b0010000012], click[large], "
                "click[buy now].")

    def _parse_text(self, text: str) -> ParsedAction:
        thought, body = split_thought(text)
        body = body.strip()
        match = _ACTION.match(body)
        if not match:
            if re.match(r"^(search|click)\[", body):
                return self.invalid("the action's [ is not closed with ].")
            return self.invalid("expected search[...] or click[...].")
        kind, argument = match.group(1), " ".join(match.group(2).split())
        if not argument:
            return self.invalid(f"the {kind}[...] is empty.")
        key = "query" if kind == "search" else "button"
        return ParsedAction(ok=True, value=ToolCall(kind, {key: argument}), thought=thought)


WEBSHOP_TOOLS = [
    function_tool("search", "Search the shop (on the search page).",
                  query=("string", "The search query.", True)),
    function_tool("click", "Click a button of the current page: a product id, an option, "
                  "'next >', '< prev', 'back to search', 'description', 'buy now'.",
                  button=("string", "The button's text.", True)),
]
"""WebShop-v0's actions as OpenAI function schemas (``protocol="tools"``)."""


_SHARED: dict[tuple[Any, ...], tuple[Catalog, BM25Index]] = {}
_SHARED_LOCK = threading.Lock()


def shared_shop(catalog_size: int, seed: int, items: str | Path | None,
                cache_dir: str | Path | None, item_attributes: str | Path | None = None,
                human_instructions: str | Path | None = None) -> tuple[Catalog, BM25Index]:
    """One catalog and one index per process, shared read-only by every env instance."""
    key = (catalog_size, seed, str(items), str(cache_dir), str(item_attributes),
           str(human_instructions))
    with _SHARED_LOCK:
        if key not in _SHARED:
            catalog = (load_webshop_items(items, attributes=item_attributes,
                                          human_instructions=human_instructions)
                       if items is not None else Catalog(catalog_size, seed))
            folder = Path(cache_dir or cache_root() / "webshop") / catalog.tag
            docs = lambda: [{"id": i, "title": p.title, "text": p.search_text()}  # noqa: E731
                            for i, p in enumerate(catalog.products)]
            cached_folder(folder, lambda staging: BM25Index.build(docs()).save(staging))
            _SHARED[key] = (catalog, BM25Index.load(folder, mmap=True))
        return _SHARED[key]


class WebShopEnv(AgentEnv):
    """Shopping for a described product: search, browse, choose options, buy.

    Task ``i`` of a split is the goal built on product ``2i`` (train) or ``2i + 1`` (test).
    Channels: turn ``format`` and ``progress`` (1 for reaching the target item, 1 for each
    correct option chosen, each counted once); outcome ``type``, ``attribute``, ``option``,
    ``price``, ``score`` (WebShop's reward, the env's reward at ``Buy Now``) and
    ``success`` (score == 1).

    Args:
        catalog_size: Products in the generated catalog (1k to 1M).
        seed: The catalog's seed.
        items: WebShop's own ``items_shuffle*.json`` instead of the generated catalog.
        item_attributes: With ``items``: WebShop's ``items_ins_v2*.json``.
        human_instructions: With ``items``: WebShop's ``items_human_ins.json`` (goals).
        observation_mode: ``"simple"`` (WebShop's ``[SEP]`` text) or ``"markdown"``.
        split: Default split.
        max_turns: Turn budget (WebShop agents commonly use 15).
        max_invalid_actions: Truncate after this many consecutive invalid actions.
        protocol: ``"webshop"`` (``search[...]``/``click[...]`` text) or ``"tools"`` (the
            :data:`WEBSHOP_TOOLS` functions, for native tool calling).
        cache_dir: Where the index is kept.
        render_mode: ``None`` or ``"ansi"``.
    """

    env_id = "WebShop-v0"
    snapshot_kind = "native"
    description = ("You are shopping online for a customer. Follow the instruction: search for "
                   "the product, open it, choose the requested options, and buy it.")
    turn_channels = ("format", "progress")
    outcome_channels = ("type", "attribute", "option", "price", "score", "success")

    def __init__(
        self,
        *,
        catalog_size: int = 1000,
        seed: int = 0,
        items: str | Path | None = None,
        item_attributes: str | Path | None = None,
        human_instructions: str | Path | None = None,
        observation_mode: Literal["simple", "markdown"] = "simple",
        split: str = "train",
        max_turns: int | None = 15,
        max_invalid_actions: int | None = None,
        protocol: Literal["webshop", "tools"] = "webshop",
        cache_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(protocol=pick_protocol(protocol, {
            "webshop": WebShopProtocol, "tools": lambda: ToolCallProtocol(WEBSHOP_TOOLS)}),
                         max_turns=max_turns,
                         max_invalid_actions=max_invalid_actions, render_mode=render_mode)
        if observation_mode not in ("simple", "markdown"):
            raise InvalidOptionError(f"observation_mode must be 'simple' or 'markdown', got "
                                     f"{observation_mode!r}.")
        self.check_split(split)
        if catalog_size < 2:
            raise InvalidOptionError(f"catalog_size must be >= 2, got {catalog_size}.")
        self.catalog, self.index = shared_shop(catalog_size, seed, items, cache_dir,
                                               item_attributes, human_instructions)
        self.mode, self.split = observation_mode, split
        self.goal: Goal | None = None
        self.shop = ShopState()
        self.outcome_value: dict[str, float] = {}

    # ------------------------------------------------------------------ tasks
    def _goal_for(self, options: dict[str, Any]) -> tuple[Goal, str]:
        n_tasks = len(self.catalog.products) // 2
        if "task_id" in options:
            tag, _, rest = str(options["task_id"]).partition("/")
            split, _, index = rest.partition("/")
            if tag != self.catalog.tag or split not in SPLITS or not index.isdigit() \
                    or int(index) >= n_tasks:
                raise TaskNotFoundError(
                    f"Task id {options['task_id']!r} is not a task of this env; ids look like "
                    f"'{self.catalog.tag}/train/0' (index below {n_tasks}).")
            number = int(index)
        else:
            split = self.check_split(options.get("split", self.split))
            number = self.task_index(n_tasks)
        goal = self.catalog.goal(2 * number + SPLITS.index(split))
        return goal, f"{self.catalog.tag}/{split}/{number}"

    # ------------------------------------------------------------------ hooks
    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        self.goal, task_id = self._goal_for(options)
        self.shop = ShopState()
        self.history = History()
        self.outcome_value = {}
        return self._observe(), task_id

    def _observe(self, note: str = "") -> str:
        assert self.goal is not None
        page = render(self.shop, self.catalog.products, self.goal.instruction, self.mode)
        return f"{note}\n{page}" if note else page

    def _apply(self, command: Any) -> Transition:
        assert isinstance(command, ToolCall)
        if command.name == "search":
            return self._search(command.arguments["query"])
        return self._click(command.arguments["button"].lower())

    def _search(self, query: str) -> Transition:
        if self.shop.page != "search":
            return self._stay("There is no search bar on this page; click[back to search] "
                              "first.")
        hits = self.index.search_many([query], MAX_RESULTS)[0]
        self.history.queries.append(query)
        self.shop = ShopState(page="results", query=query, results=tuple(h.id for h in hits))
        return Transition(self._observe(), {"progress": 0.0})

    def _click(self, button: str) -> Transition:
        assert self.goal is not None
        available = buttons(self.shop, self.catalog.products)
        if button not in available:
            listed = ", ".join(available) or "none (use search[...])"
            return self._stay(f"There is no button '{button}' on this page. Buttons: {listed}.")
        if button == "buy now":
            return self._buy()
        self.shop = click(self.shop, button, self.catalog.products)
        return Transition(self._observe(), {"progress": self._progress()})

    def _stay(self, note: str) -> Transition:
        return Transition(self._observe(note), {"progress": 0.0})

    def _progress(self) -> float:
        """1 for reaching the target item, 1 per correct option chosen (each once)."""
        assert self.goal is not None
        gained = 0.0
        on_target = (self.shop.item is not None
                     and self.catalog.products[self.shop.item].asin == self.goal.asin)
        if on_target and not self.history.reached_target:
            self.history.reached_target, gained = True, 1.0
        if on_target:
            chosen = list(self.shop.chosen().values())
            for _, wanted in self.goal.options:
                if wanted not in self.history.good_options and option_matched(wanted, chosen):
                    self.history.good_options.add(wanted)
                    gained += 1.0
        return gained

    def _buy(self) -> Transition:
        assert self.goal is not None and self.shop.item is not None
        product = self.catalog.products[self.shop.item]
        self.outcome_value = purchase_score(product, self.shop.chosen(), self.goal).channels()
        note = f"Thank you for shopping with us! Your score: {self.outcome_value['score']:.2f}"
        return Transition(note, {"progress": 0.0}, terminated=True)

    def _final_reward(self, outcome: dict[str, float]) -> float:
        return outcome["score"]

    def _snapshot(self) -> tuple:  # the goal, the page (immutable), what the episode learned
        return (self.goal, self.shop, copy.deepcopy(self.history), dict(self.outcome_value))

    def _restore(self, native: tuple) -> None:
        self.goal, self.shop, history, outcome = native
        self.history, self.outcome_value = copy.deepcopy(history), dict(outcome)

    def _instruction(self) -> str:
        assert self.goal is not None
        return self.goal.instruction

    def _task_source(self) -> Goal | None:
        return self.goal

    def _reference(self) -> dict[str, Any]:
        assert self.goal is not None
        return {"asin": self.goal.asin, "attributes": list(self.goal.attributes),
                "options": dict(self.goal.options), "price_upper": self.goal.price_upper}

    def _state_key(self) -> str:
        item = self.shop.item
        return self.shop.key(self.catalog.products[item].asin if item is not None else None)

    def _outcome(self) -> dict[str, float]:
        if self.outcome_value:
            return self.outcome_value
        return dict.fromkeys(self.outcome_channels, 0.0)  # the budget ran out: nothing bought

    def _admissible(self) -> list[str]:
        assert self.goal is not None
        if self.shop.page == "search":
            return [SEARCH_TEMPLATE]  # a query from the goal would hand a random policy the answer
        return [f"click[{b}]" for b in buttons(self.shop, self.catalog.products)]

    def _expert(self) -> ToolCall | None:
        """Search with the instruction, open the target, choose its options, buy."""
        assert self.goal is not None
        goal, shop, products = self.goal, self.shop, self.catalog.products
        target = self.catalog.by_asin[goal.asin]
        if shop.page == "search":
            tried = goal.query in self.history.queries
            return ToolCall("search", {"query": goal.title if tried else goal.query})
        if shop.page == "sub" or (shop.page == "item" and shop.item != target):
            return ToolCall("click", {"button": "< prev"})
        if shop.page == "results":
            if target in shop.page_results():
                return ToolCall("click", {"button": products[target].asin.lower()})
            later = target in shop.results[shop.page_num * 10:]
            return ToolCall("click", {"button": "next >" if later else "back to search"})
        chosen = {v.lower() for v in shop.chosen().values()}
        for _, value in goal.options:  # by value: human goals do not name the option
            if value.lower() not in chosen:
                return ToolCall("click", {"button": value.lower()})
        return ToolCall("click", {"button": "buy now"})
