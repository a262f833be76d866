"""Retrievers: an embedded BM25 index (bm25s), persisted once, and an HTTP client for a shared one.

Both answer ``search(query, k)`` with the same :class:`Hit` list, so an env cannot tell an
in-process index from a server that many env processes share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentgym.errors import MissingDependencyError


@dataclass(frozen=True)
class Hit:
    """One retrieved passage."""

    id: int
    title: str
    text: str
    score: float


class Retriever(Protocol):
    """Anything that answers queries with ranked passages."""

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top ``k`` passages of each query."""


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as exc:
        raise MissingDependencyError("bm25s", "search") from exc
    return bm25s


class BM25Index:
    r"""BM25 (Lucene variant, English stopwords) over passages ``{"id", "title", "text"}``.

    A passage is indexed as ``title + "\\n" + text``.
    """

    def __init__(self, model: Any, docs: list[dict[str, Any]]) -> None:
        self.model, self.docs = model, docs

    @classmethod
    def build(cls, docs: list[dict[str, Any]]) -> BM25Index:
        """Index the passages."""
        bm25s = _bm25s()
        corpus = [f"{d['title']}\n{d['text']}" for d in docs]
        model = bm25s.BM25()
        model.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False),
                    show_progress=False)
        return cls(model, docs)

    def save(self, folder: str | Path) -> None:
        """Write the index and the passages to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder / "bm25"), show_progress=False)
        with open(folder / "docs.jsonl", "w", encoding="utf-8") as handle:
            for doc in self.docs:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> BM25Index:
        """Read an index written by :meth:`save`."""
        bm25s = _bm25s()
        folder = Path(folder)
        model = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        with open(folder / "docs.jsonl", encoding="utf-8") as handle:
            docs = [json.loads(line) for line in handle]
        return cls(model, docs)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top ``k`` passages of each query (a query with no indexed word gets none).

        Ties are broken by passage order, so the ranking is the same in every process.
        """
        bm25s = _bm25s()
        tokens = bm25s.tokenize(list(queries), stopwords="en", show_progress=False,
                                return_ids=False)
        return [self._top(query_tokens, k) if query_tokens else [] for query_tokens in tokens]

    def _top(self, query_tokens: list[str], k: int) -> list[Hit]:
        # bm25s's own top-k partitions the whole score array, which is slow when most
        # scores are 0 (argpartition on ties); only passages sharing a word can score.
        scores = self.model.get_scores(query_tokens)
        candidates = np.flatnonzero(scores)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))
        return [self._hit(i, float(scores[i])) for i in order[:k]]

    def _hit(self, index: int, score: float) -> Hit:
        doc = self.docs[index]
        return Hit(int(doc["id"]), doc["title"], doc["text"], round(score, 6))


class RemoteRetriever:
    """A client of ``agentgym serve-retriever`` (see :mod:`environments.search.server`).

    Args:
        url: The server root, e.g. ``http://127.0.0.1:8765``.
        timeout: Seconds per request.
        retries: Extra attempts after a connection error.
    """

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 2) -> None:
        import httpx

        self.url, self.retries = url.rstrip("/"), retries
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top ``k`` passages of each query, from the server."""
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = self._client.post("/search", json={"queries": list(queries), "k": k})
                response.raise_for_status()
                break
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
        return [[Hit(**h) for h in hits] for hits in response.json()["results"]]

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def hits_to_json(results: list[list[Hit]]) -> list[list[dict[str, Any]]]:
    """Plain data for the wire."""
    return [[asdict(h) for h in hits] for hits in results]
