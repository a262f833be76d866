"""Small text statistics: words, sentences, frequencies, slugs."""

from __future__ import annotations

import re
from collections import Counter

WORD = re.compile(r"[A-Za-z']+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased."""
    return [w.lower() for w in WORD.findall(text)]


def word_count(text: str) -> int:
    """How many words ``text`` has."""
    return len(words(text))


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences at ., ! and ?."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The ``n`` most frequent words with their counts, ties broken alphabetically."""
    counts = Counter(words(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:n]


def average_word_length(text: str) -> float:
    """Mean number of letters per word (0.0 for no words)."""
    found = words(text)
    if not found:
        return 0.0
    return sum(len(w) for w in found) / len(found)


def slugify(text: str, max_length: int = 40) -> str:
    """A URL slug: lower-case words joined by hyphens, at most ``max_length`` characters."""
    slug = "-".join(words(text))
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
    return slug


def truncate(text: str, width: int, suffix: str = "...") -> str:
    """Cut ``text`` to ``width`` characters, ending with ``suffix`` when cut."""
    if len(text) <= width:
        return text
    return text[: width - len(suffix)] + suffix


def longest_word(text: str) -> str:
    """The longest word (the first one on ties), or an empty string."""
    best = ""
    for word in words(text):
        if len(word) > len(best):
            best = word
    return best
