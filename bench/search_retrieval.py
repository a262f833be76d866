"""BM25 on a 1M-passage generated corpus, and rank_bm25 side by side on a 100k subset.

Prints: knowledge-base generation time, bm25s build time, the index size on disk, and p50/p99
latency of single queries (entity-name queries, as the expert sends, and whole questions);
then, on the first 100k passages, the same build and queries through bm25s and through
rank_bm25 (what many peers use), with the ratio. Run: python bench/search_retrieval.py
[--passages 1000000] [--subset 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from environments.retrieval import BM25Index
from environments.search.kb import KnowledgeBase

console = Console()


def timed(label: str, fn):
    with console.status(label):
        started = time.perf_counter()
        value = fn()
    return value, time.perf_counter() - started


def queries_for(kb: KnowledgeBase, n: int, limit: int) -> list[str]:
    rng = np.random.default_rng(1)
    starts = list(range(limit))
    names = [kb.entities[int(i)].name for i in rng.integers(limit, size=n // 2)]
    questions = [kb.question(rng, 1 + i % 4, starts).question for i in range(n - len(names))]
    return names + questions


def latencies(search, queries: list[str]) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        out.append(time.perf_counter() - started)
    return out


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rank_bm25_side(docs: list[dict], queries: list[str]) -> tuple[float, list[float]]:
    from rank_bm25 import BM25Okapi

    tokenize = lambda text: re.findall(r"\w\w+", text.lower())  # noqa: E731
    corpus = [tokenize(f"{d['title']}\n{d['text']}") for d in docs]
    model, build = timed("rank_bm25: indexing", lambda: BM25Okapi(corpus))
    lat = latencies(lambda q: model.get_top_n(tokenize(q), docs, n=3), queries)
    return build, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--subset-queries", type=int, default=100)
    args = parser.parse_args()

    kb, kb_s = timed(f"generating {args.passages:,} passages", lambda: KnowledgeBase(
        args.passages, seed=0))
    docs = kb.documents()
    index, build_s = timed("bm25s: indexing", lambda: BM25Index.build(docs))
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        size = folder_size(Path(tmp) / "bm25")
        docs_size = (Path(tmp) / "docs.jsonl").stat().st_size
    queries = queries_for(kb, args.queries, args.passages)
    full = latencies(lambda q: index.search_many([q], 3), queries)

    sub_docs = docs[:args.subset]
    sub_queries = queries_for(kb, args.subset_queries, args.subset)
    sub_index, sub_build = timed("bm25s: indexing the subset", lambda: BM25Index.build(sub_docs))
    sub_lat = latencies(lambda q: sub_index.search_many([q], 3), sub_queries)
    rb_build, rb_lat = rank_bm25_side(sub_docs, sub_queries)

    table = Table(title="BM25 retrieval (single queries, top 3)")
    for column in ("corpus", "library", "build s", "index MB", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("corpus", "library") else "right")
    table.add_row(f"{args.passages:,}", "bm25s (agentgym)", f"{build_s:.1f}",
                  f"{size / 1e6:.0f} (+{docs_size / 1e6:.0f} text)", f"{p(full, 50):.2f}",
                  f"{p(full, 99):.2f}")
    table.add_row(f"{args.subset:,}", "bm25s (agentgym)", f"{sub_build:.1f}", "",
                  f"{p(sub_lat, 50):.2f}", f"{p(sub_lat, 99):.2f}")
    table.add_row(f"{args.subset:,}", "rank_bm25", f"{rb_build:.1f}", "",
                  f"{p(rb_lat, 50):.2f}", f"{p(rb_lat, 99):.2f}")
    console.print(f"knowledge base generated in {kb_s:.1f} s")
    console.print(table)
    ratio = statistics.median(rb_lat) / statistics.median(sub_lat)
    console.print(f"on {args.subset:,} passages bm25s answers a query {ratio:.0f}x faster than "
                  f"rank_bm25 (median latency); it builds in {sub_build:.1f} s against "
                  f"rank_bm25's {rb_build:.1f} s, because it scores every word-passage pair "
                  "once at build time")


if __name__ == "__main__":
    main()
