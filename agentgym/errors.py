"""The one error tree of agentgym.

Every exception agentgym raises on purpose derives from :class:`AgentGymError`::

    AgentGymError
    ├── UnknownEnvError          (also a KeyError)   make("TextWorld-v9")
    ├── InvalidOptionError       (also a ValueError) reset(options={"splt": ...}), bad kwargs
    ├── TaskNotFoundError        (also a KeyError)   reset(options={"task_id": "nope"})
    ├── LifecycleError           (also a RuntimeError)
    │   ├── ResetNeeded                              step() before reset()
    │   ├── EpisodeOver                              step() after terminated/truncated
    │   └── EnvClosed                                any call after close()
    ├── MissingDependencyError   (also an ImportError) an extra is not installed
    ├── PolicyError                                  a policy call failed (network, bad reply)
    ├── RecordError              (also a ValueError) an Episode record that cannot be read
    ├── EstimatorError           (also a ValueError) advantages that cannot be computed
    ├── SandboxError             (also a RuntimeError) a sandbox that cannot start or run
    └── TaskDataError            (also a ValueError) task data that cannot be built or read

Elsewhere, each a subclass of one above or of AgentGymError: ``ConfigError``
(trainers.config), ``BatchError`` (trainers.batch), ``TokenizationError``
(trainers.tokenize), ``RewardSpecError`` and ``FormatViolation`` (rewards), ``PatchError``
(environments.swe.patches), ``PoolError`` (agentgym.pool), ``RemoteError``
(agentgym.remote). ``tests/test_errors.py`` keeps it so: no module raises a bare builtin
error, and every public exception class derives from AgentGymError.

A malformed *action* is not an error: it is an observation (see ``agentgym.protocols``).
Messages say what was expected, what came, and how to fix it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


class AgentGymError(Exception):
    """Base class of every error agentgym raises on purpose."""


class UnknownEnvError(AgentGymError, KeyError):
    """An environment id that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class InvalidOptionError(AgentGymError, ValueError):
    """A keyword argument or reset option the environment does not accept."""


class TaskNotFoundError(AgentGymError, KeyError):
    """A task id the environment's task source does not know."""

    def __str__(self) -> str:
        return str(self.args[0])


class LifecycleError(AgentGymError, RuntimeError):
    """An environment method called in the wrong state."""


class ResetNeeded(LifecycleError):
    """``step`` was called before ``reset``."""


class EpisodeOver(LifecycleError):
    """``step`` was called after the episode terminated or was truncated."""


class EnvClosed(LifecycleError):
    """The environment was used after ``close()``."""


class MissingDependencyError(AgentGymError, ImportError):
    """Something this needs is not installed: a Python package (an extra) or a system tool.

    Args:
        package: What is missing (a package, a program, "a sandbox").
        extra: The agentgym extra that installs a Python package (``pip install
            'agentgym[extra]'``).
        apt: The Debian/Ubuntu package that installs a system tool (``apt install ...``).
        hint: Any other way out, in words.
    """

    def __init__(self, package: str, extra: str | None = None, *, apt: str | None = None,
                 hint: str | None = None) -> None:
        remedies = [f"pip install 'agentgym[{extra}]'" if extra else "",
                    f"apt install {apt}" if apt else ""]
        ways = " or ".join(r for r in remedies if r)
        subject = f"the `{package}` package" if extra else f"`{package}`" if apt else package
        super().__init__(f"This needs {subject}, which is not available here."
                         + (f" Install it with: {ways}." if ways else "")
                         + (f" {hint}" if hint else ""))


def require(module: str, extra: str, package: str | None = None) -> Any:
    """Import ``module``, or raise :class:`MissingDependencyError` naming ``extra``.

    ``package`` is the name to show when it is not the module's (``docker`` is "the Docker
    SDK for Python").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra) from exc


class PolicyError(AgentGymError):
    """A policy failed to produce an action (server down, timeout, malformed reply)."""


class RecordError(AgentGymError, ValueError):
    """An Episode or Turn record that does not match the schema."""


class EstimatorError(AgentGymError, ValueError):
    """An advantage estimator that cannot work on this batch (e.g. no ``state_key``)."""


class SnapshotError(AgentGymError):
    """A snapshot that cannot be taken or restored here (and why)."""


class SandboxError(AgentGymError, RuntimeError):
    """A sandbox that cannot start, or a backend command that failed."""


class TaskDataError(AgentGymError, ValueError):
    """Task data that cannot be built or read (a knowledge base too small, a bad tree)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` Did you mean `x`?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def check_options(given: Iterable[str], allowed: Iterable[str], what: str) -> None:
    """Raise :class:`InvalidOptionError` naming every unknown key and the allowed ones."""
    allowed = sorted(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        hint = did_you_mean(unknown[0], allowed)
        raise InvalidOptionError(
            f"Unknown {what}: {', '.join(map(repr, unknown))}. "
            f"Allowed: {', '.join(map(repr, allowed)) or '(none)'}.{hint}"
        )
