"""Text spaces: observations and actions of agentgym envs are free text."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium.spaces import Space

_PRINTABLE = np.array(list(string.ascii_letters + string.digits + string.punctuation + " "))


class TextSpace(Space[str]):
    """The space of all strings.

    ``contains`` accepts any ``str`` (models write anything; the env's protocol decides what
    it means). ``sample`` draws short printable strings, which is what ``check_env`` needs.

    Example:
        >>> TextSpace().contains("<action>look</action>")
        True
        >>> TextSpace().contains(3)
        False
    """

    def __init__(self, max_sample_length: int = 32, seed: int | None = None) -> None:
        self.max_sample_length = max_sample_length
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random printable string of 1 to ``max_sample_length`` characters."""
        length = int(self.np_random.integers(1, self.max_sample_length + 1))
        return "".join(self.np_random.choice(_PRINTABLE, size=length))

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string."""
        return isinstance(x, str)

    @property
    def is_np_flattenable(self) -> bool:
        """Text cannot be flattened into an array."""
        return False

    def __repr__(self) -> str:
        return "TextSpace()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSpace)
