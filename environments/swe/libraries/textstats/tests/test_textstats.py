from textstats import (
    average_word_length,
    longest_word,
    sentences,
    slugify,
    top_words,
    truncate,
    word_count,
    words,
)


def test_words_lower_case():
    assert words("Hello, World") == ["hello", "world"]


def test_word_count():
    assert word_count("one two  three") == 3


def test_word_count_empty():
    assert word_count("") == 0


def test_sentences_split():
    assert sentences("Hi there. How are you? Fine!") == ["Hi there.", "How are you?", "Fine!"]


def test_top_words_counts():
    assert top_words("a b a c a b", 2) == [("a", 3), ("b", 2)]


def test_top_words_ties_alphabetical():
    assert top_words("pear apple", 2) == [("apple", 1), ("pear", 1)]


def test_average_word_length():
    assert average_word_length("ab abcd") == 3.0


def test_average_word_length_empty():
    assert average_word_length("...") == 0.0


def test_slugify():
    assert slugify("Hello, World!") == "hello-world"


def test_slugify_max_length():
    assert slugify("alpha beta gamma", max_length=10) == "alpha-beta"


def test_truncate_short_text_unchanged():
    assert truncate("short", 10) == "short"


def test_truncate_cuts_with_suffix():
    assert truncate("abcdefghij", 6) == "abc..."


def test_longest_word_first_on_ties():
    assert longest_word("cat dog bird fish") == "bird"


def test_longest_word_empty():
    assert longest_word("") == ""
