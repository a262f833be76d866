"""Closed integer and float intervals: merging, intersecting, measuring, finding gaps."""

from __future__ import annotations

Interval = tuple[float, float]


def normalize(interval: Interval) -> Interval:
    """Return the interval with its ends in increasing order."""
    start, end = interval
    if start > end:
        return end, start
    return start, end


def overlaps(a: Interval, b: Interval) -> bool:
    """Whether two closed intervals share at least one point."""
    a, b = normalize(a), normalize(b)
    return a[0] <= b[1] and b[0] <= a[1]


def merge(intervals: list[Interval]) -> list[Interval]:
    """Merge overlapping or touching intervals; the result is sorted."""
    ordered = sorted(normalize(i) for i in intervals)
    merged: list[Interval] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersection(a: Interval, b: Interval) -> Interval | None:
    """The common part of two intervals, or None if they do not overlap."""
    if not overlaps(a, b):
        return None
    a, b = normalize(a), normalize(b)
    return max(a[0], b[0]), min(a[1], b[1])


def total_length(intervals: list[Interval]) -> float:
    """Length covered by the union of the intervals."""
    return sum(end - start for start, end in merge(intervals))


def gaps(intervals: list[Interval], within: Interval) -> list[Interval]:
    """The parts of ``within`` that no interval covers."""
    low, high = normalize(within)
    found: list[Interval] = []
    cursor = low
    for start, end in merge(intervals):
        if end < low or start > high:
            continue
        if start > cursor:
            found.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < high:
        found.append((cursor, high))
    return found


def contains(intervals: list[Interval], point: float) -> bool:
    """Whether any interval contains ``point``."""
    return any(start <= point <= end for start, end in merge(intervals))


def split(interval: Interval, parts: int) -> list[Interval]:
    """Split an interval into ``parts`` equal consecutive pieces."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    start, end = normalize(interval)
    step = (end - start) / parts
    return [(start + i * step, start + (i + 1) * step) for i in range(parts)]
