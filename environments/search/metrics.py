"""QA answer metrics: exact match and token F1 after the standard SQuAD/Search-R1 normalisation."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _answers(golds: str | Iterable[str]) -> list[str]:
    # Search-R1's em_check wraps a plain string; iterating it would compare characters
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: str | Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0.

    ``golds`` is one answer or several, as in Search-R1's ``em_check``.
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _answers(golds)))


def token_f1(prediction: str, golds: str | Iterable[str]) -> float:
    """The best token-level F1 of the prediction against any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in _answers(golds):
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(text: str, golds: str | Iterable[str]) -> bool:
    """Whether any gold answer appears (normalised, on word boundaries) in ``text``."""
    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in haystack for g in _answers(golds)
               if normalize_answer(g))
