"""The TextWorld family: ``TextWorld-v0`` on the real TextWorld engine."""

from environments.textworld.env import TextWorldEnv
from environments.textworld.games import PRESETS, GameSpec

__all__ = ["PRESETS", "GameSpec", "TextWorldEnv"]
