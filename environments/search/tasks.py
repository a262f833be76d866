r"""Search tasks: generated from the fictional knowledge base, or loaded from real QA files.

Generated: task ``i`` of a split is a question drawn with the seed ``(kb seed, split, i)``;
train questions start from even entity ids and test questions from odd ones, so the splits
never ask about the same start entity. Hop counts cycle 1, 2, 3, 4 unless fixed.

Real data (as Search-R1 / FlashRAG ship it): a corpus JSONL with ``id`` and ``contents``
(``"title\\ntext"``) and a QA JSONL with ``question`` and ``golden_answers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.errors import InvalidOptionError, TaskNotFoundError
from environments.search.kb import KnowledgeBase

SPLITS = ("train", "test")


@dataclass(frozen=True)
class SearchTask:
    """One question: its id, text, gold answers and supporting passage ids (if known)."""

    task_id: str
    question: str
    answers: tuple[str, ...]
    supporting: tuple[int, ...] = ()


class GeneratedTasks:
    """Questions over a generated :class:`KnowledgeBase`.

    Args:
        kb_size: Passages in the knowledge base.
        seed: The knowledge base's seed.
        hops: A fixed hop count (1-4), or ``None`` to cycle through 1-4.
        num_tasks: Tasks per split.
    """

    def __init__(self, kb_size: int = 2000, seed: int = 0, hops: int | None = None,
                 num_tasks: int = 1000) -> None:
        if hops is not None and hops not in (1, 2, 3, 4):
            raise InvalidOptionError(f"hops must be 1, 2, 3, 4 or None (cycle), got {hops!r}.")
        self.kb = KnowledgeBase(kb_size, seed)
        self.hops, self.num_tasks, self.seed = hops, num_tasks, seed
        self.tag = f"kb{kb_size}-seed{seed}"
        self._starts = {split: [i for i in range(len(self.kb.entities)) if i % 2 == n]
                        for n, split in enumerate(SPLITS)}

    def docs(self) -> list[dict[str, Any]]:
        """The passages to index."""
        return self.kb.documents()

    def task(self, split: str, index: int) -> SearchTask:
        """Task ``index`` of ``split``."""
        hops = self.hops or 1 + index % 4
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        q = self.kb.question(rng, hops, self._starts[split])
        return SearchTask(f"{self.tag}/{split}/{index}", q.question, q.answers, q.supporting)

    def by_id(self, task_id: str) -> SearchTask:
        """The task with this id."""
        tag, _, rest = task_id.partition("/")
        split, _, index = rest.partition("/")
        if tag != self.tag or split not in SPLITS or not index.isdigit():
            raise TaskNotFoundError(f"Task id {task_id!r} is not a task of this env; ids look "
                                    f"like '{self.tag}/train/0' (knowledge base/split/index).")
        return self.task(split, int(index))


class FileTasks:
    """Questions and corpus from Search-R1/FlashRAG-style JSONL files (one split each)."""

    def __init__(self, corpus: str | Path, qa: dict[str, str | Path]) -> None:
        self.corpus_path = Path(corpus)
        self.tag = f"file-{self.corpus_path.stem}"
        self.questions = {split: _read_jsonl(path) for split, path in qa.items()}
        self.num_tasks = min(len(q) for q in self.questions.values())

    def docs(self) -> list[dict[str, Any]]:
        """The corpus passages (``contents`` split into title and text)."""
        docs = []
        for n, row in enumerate(_read_jsonl(self.corpus_path)):
            title, _, text = str(row["contents"]).partition("\n")
            docs.append({"id": n, "title": title.strip('"'), "text": text})
        return docs

    def task(self, split: str, index: int) -> SearchTask:
        """Question ``index`` of the split's QA file."""
        if split not in self.questions:
            raise InvalidOptionError(f"No QA file for split {split!r}; have "
                                     f"{sorted(self.questions)}.")
        row = self.questions[split][index % len(self.questions[split])]
        golds = row["golden_answers"]
        return SearchTask(f"{self.tag}/{split}/{index}", row["question"],
                          tuple([golds] if isinstance(golds, str) else golds))

    def by_id(self, task_id: str) -> SearchTask:
        """The task with this id."""
        _, split, index = (task_id.split("/") + ["", ""])[:3]
        if not index.isdigit():
            raise TaskNotFoundError(f"Task id {task_id!r} is not '{self.tag}/<split>/<index>'.")
        return self.task(split, int(index))


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
