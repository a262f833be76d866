import pytest

from intervals import contains, gaps, intersection, merge, normalize, overlaps, split, total_length


def test_normalize_orders_the_ends():
    assert normalize((5, 2)) == (2, 5)
    assert normalize((2, 5)) == (2, 5)


def test_overlaps_when_touching():
    assert overlaps((1, 3), (3, 5))


def test_no_overlap_when_apart():
    assert not overlaps((1, 2), (3, 4))


def test_overlaps_reversed_input():
    assert overlaps((4, 1), (2, 3))


def test_merge_joins_overlapping():
    assert merge([(1, 3), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]


def test_merge_joins_touching():
    assert merge([(1, 2), (2, 4)]) == [(1, 4)]


def test_merge_keeps_nested_outer():
    assert merge([(1, 10), (2, 3)]) == [(1, 10)]


def test_merge_sorts():
    assert merge([(5, 6), (1, 2)]) == [(1, 2), (5, 6)]


def test_merge_empty():
    assert merge([]) == []


def test_intersection_of_overlapping():
    assert intersection((1, 5), (3, 8)) == (3, 5)


def test_intersection_of_disjoint_is_none():
    assert intersection((1, 2), (5, 8)) is None


def test_total_length_counts_overlap_once():
    assert total_length([(0, 2), (1, 3), (10, 11)]) == 4


def test_gaps_inside_range():
    assert gaps([(2, 3), (5, 6)], (0, 8)) == [(0, 2), (3, 5), (6, 8)]


def test_gaps_when_fully_covered():
    assert gaps([(0, 10)], (2, 8)) == []


def test_contains_endpoint():
    assert contains([(1, 3)], 3)
    assert not contains([(1, 3)], 3.5)


def test_split_equal_parts():
    assert split((0, 6), 3) == [(0, 2), (2, 4), (4, 6)]


def test_split_rejects_zero_parts():
    with pytest.raises(ValueError):
        split((0, 1), 0)
