import pytest

from romans import add, from_roman, is_valid, parse_range, to_roman


@pytest.mark.parametrize("number, numeral", [
    (1, "I"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"), (400, "CD"),
    (1994, "MCMXCIV"), (3999, "MMMCMXCIX"),
])
def test_to_roman(number, numeral):
    assert to_roman(number) == numeral


def test_to_roman_rejects_zero():
    with pytest.raises(ValueError):
        to_roman(0)


def test_to_roman_rejects_too_big():
    with pytest.raises(ValueError):
        to_roman(4000)


def test_from_roman_simple():
    assert from_roman("XXVII") == 27


def test_from_roman_subtractive():
    assert from_roman("MCMXCIV") == 1994


def test_from_roman_lower_case():
    assert from_roman("xlii") == 42


def test_from_roman_rejects_bad_digit():
    with pytest.raises(ValueError):
        from_roman("XIZ")


def test_from_roman_rejects_empty():
    with pytest.raises(ValueError):
        from_roman("  ")


def test_is_valid():
    assert is_valid("XLII")
    assert not is_valid("IIII")


def test_add():
    assert add("XIV", "XXVIII") == "XLII"


def test_parse_range():
    assert parse_range("III-VI") == [3, 4, 5, 6]


def test_parse_range_single():
    assert parse_range("IX") == [9]
