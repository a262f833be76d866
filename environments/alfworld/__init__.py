"""The ALFWorld family: ``ALFWorld-v0`` on alfworld's own PDDL engine, offline."""

from environments.alfworld.env import ALFWorldEnv
from environments.alfworld.tasks import TASK_TYPES, Goal

__all__ = ["TASK_TYPES", "ALFWorldEnv", "Goal"]
