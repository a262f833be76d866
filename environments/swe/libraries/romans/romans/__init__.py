"""Roman numerals: convert to and from integers, validate, add."""

from __future__ import annotations

SYMBOLS = [
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
    (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
]
VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
MAX_VALUE = 3999


def to_roman(number: int) -> str:
    """Write ``number`` (1 to 3999) as a Roman numeral."""
    if not 0 < number <= MAX_VALUE:
        raise ValueError(f"{number} is outside 1..{MAX_VALUE}")
    parts = []
    for value, symbol in SYMBOLS:
        count, number = divmod(number, value)
        parts.append(symbol * count)
    return "".join(parts)


def from_roman(numeral: str) -> int:
    """Read a Roman numeral (any case) as an integer."""
    numeral = numeral.strip().upper()
    if not numeral:
        raise ValueError("empty numeral")
    total = 0
    for index, char in enumerate(numeral):
        if char not in VALUES:
            raise ValueError(f"{char!r} is not a Roman digit")
        value = VALUES[char]
        following = VALUES.get(numeral[index + 1], 0) if index + 1 < len(numeral) else 0
        if value < following:
            total -= value
        else:
            total += value
    return total


def is_valid(numeral: str) -> bool:
    """Whether ``numeral`` is a canonical Roman numeral."""
    try:
        return to_roman(from_roman(numeral)) == numeral.strip().upper()
    except ValueError:
        return False


def add(a: str, b: str) -> str:
    """Add two numerals."""
    return to_roman(from_roman(a) + from_roman(b))


def parse_range(text: str) -> list[int]:
    """Read ``"III-VI"`` as the list of integers from 3 to 6."""
    first, _, last = text.partition("-")
    low, high = from_roman(first), from_roman(last or first)
    return list(range(low, high + 1))
