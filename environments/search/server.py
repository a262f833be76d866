"""A retrieval server many env processes share: ``agentgym serve-retriever``.

``POST /search {"queries": [...], "k": 3}`` answers ``{"results": [[hit, ...], ...]}`` with
exactly what the in-process index (BM25, dense or hybrid) returns;
``GET /health`` answers ``{"status": "ok", "passages": N, "fingerprint": F}``: F identifies the
knowledge base, and ``Search-v0(retriever_url=...)`` refuses a server whose F is not its own.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint's type hints at
# runtime, and the request model is local to create_app.
import threading
from typing import Any

from agentgym.errors import MissingDependencyError
from environments.retrieval import Retriever, hits_to_json

MAX_QUERIES = 1024
MAX_QUERY_CHARS = 16_384


def create_app(index: Retriever, passages: int = 0, fingerprint: str = "") -> Any:
    """The FastAPI app serving ``index`` (of ``passages`` passages, ``fingerprint``)."""
    try:
        from fastapi import FastAPI, HTTPException
        from pydantic import BaseModel, Field
    except ImportError as exc:
        raise MissingDependencyError("fastapi", "search") from exc

    class SearchRequest(BaseModel):
        queries: list[str] = Field(max_length=MAX_QUERIES)
        k: int = Field(default=3, ge=1, le=100)

    app = FastAPI(title="agentgym retriever")
    lock = threading.Lock()  # one search at a time: bm25s's retrieval is not documented thread-safe

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "passages": passages, "fingerprint": fingerprint}

    @app.post("/search")
    def search(request: SearchRequest) -> dict[str, Any]:
        too_long = [i for i, q in enumerate(request.queries) if len(q) > MAX_QUERY_CHARS]
        if too_long:
            raise HTTPException(422, f"queries {too_long} exceed {MAX_QUERY_CHARS} characters")
        with lock:
            results = index.search_many(request.queries, request.k)
        return {"results": hits_to_json(results)}

    return app


def serve(index: Retriever, host: str = "127.0.0.1", port: int = 8765, passages: int = 0,
          fingerprint: str = "") -> None:
    """Run the server until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "search") from exc
    uvicorn.run(create_app(index, passages, fingerprint), host=host, port=port, log_level="warning")
