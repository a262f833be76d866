"""The SWE family: ``SWE-v0``, bug fixing with tools in docker, bubblewrap or local sandboxes."""

from environments.swe.env import DEFAULT_REWARD, SWEEnv
from environments.swe.sandbox import Limits

__all__ = ["DEFAULT_REWARD", "Limits", "SWEEnv"]
