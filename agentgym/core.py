"""The environment contract: :class:`AgentEnv`, a text-in, text-out ``gymnasium.Env``.

A concrete env implements five small hooks (``_load_task``, ``_apply``, ``_outcome``,
``_state_key``, ``_instruction``) and optionally ``_admissible`` and ``_expert``. The base
class owns everything every env must do the same way: option checking, the lifecycle, action
parsing through the env's protocol, invalid actions as observations, turn and invalid-action
limits, and the standard ``info`` keys.

``info`` keys (where they apply):

=====================  =========================================================
``task_id``            the task this episode plays (reset and every step)
``instruction``        the task text (reset)
``admissible_actions`` commands valid now, plain (not protocol-encoded)
``tools``              OpenAI function schemas of the env's protocol (``[]`` if none)
``state_key``          canonical fingerprint of the world state; equal states, equal keys
``expert_action``      a valid ``step`` argument under the current protocol, or ``None``
``action_valid``       whether the action parsed (step)
``parsed_action``      the parsed command / tool call as text (step)
``thought``            the ``<think>`` text, if any (step)
``reward_channels``    this turn's named reward components (step)
``success``            whether the task was achieved (last step)
``outcome_channels``   the episode's named outcome components (last step)
``reference``          what the task wanted, e.g. gold answers (last step, where known)
=====================  =========================================================

``env.task`` (after ``reset``) is the episode's :class:`Task`: id, split, instruction, the
reference where known, and the family's own task record, for code (tests, graders, benches)
rather than the agent.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import queue
import threading
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium

from agentgym.errors import (
    EnvClosed,
    EpisodeOver,
    InvalidOptionError,
    ResetNeeded,
    SandboxError,
    check_options,
    did_you_mean,
)
from agentgym.protocols import ActionProtocol, ParsedAction, ToolCall, ToolCallProtocol
from agentgym.snapshots import Snapshot, SnapshotError, SnapshotKind
from agentgym.spaces import TextSpace


class EnvState(enum.Enum):
    """Where an env is in its lifecycle."""

    UNRESET = "unreset"
    RUNNING = "running"
    DONE = "done"
    CLOSED = "closed"


@dataclass
class Transition:
    """What an env's ``_apply`` hook returns for one valid command."""

    observation: str
    channels: dict[str, float]
    terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """The task an episode plays: ``env.task`` after ``reset`` (read-only).

    Attributes:
        id: The task id (``reset(options={"task_id": id})`` plays it again).
        split: The split it belongs to (``"train"``, ``"test"``, ...), ``None`` if unknown.
        instruction: The task text the agent is given.
        reference: What the task wants (gold answers, target product, fix), where known.
        source: The env family's own task record (e.g. SWE's ``SWETask``, ALFWorld's
            ``GameRef``, WebShop's ``Goal``), for code that needs more than the above.
        kind: The kind of task, where an env has several (ALFWorld's task type, TextWorld's
            preset), so results can be broken down by it; ``None`` otherwise.
    """

    id: str
    split: str | None
    instruction: str
    reference: Mapping[str, Any] | None = None
    source: Any = None
    kind: str | None = None


class AgentEnv(gymnasium.Env[str, "str | ToolCall"]):
    """Base class of every agentgym environment.

    Args:
        protocol: How action text is parsed (see :mod:`agentgym.protocols`).
        max_turns: Truncate the episode after this many steps (``None``: no limit).
        max_invalid_actions: Truncate after this many consecutive invalid actions
            (``None``: never).
        render_mode: ``None`` or ``"ansi"``.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 - gymnasium's
    env_id: str = ""
    """The id the env was made with (``make`` sets it; a family names its own)."""
    description: ClassVar[str] = ""
    turn_channels: ClassVar[tuple[str, ...]] = ("format",)
    """Names of the reward channels recorded on every turn (``format`` always among them)."""
    outcome_channels: tuple[str, ...] = ("success",)  # an instance may add its own
    """Names of the outcome channels recorded when the episode ends."""
    success_channel: ClassVar[str] = "success"
    """The outcome channel that says the episode succeeded (1.0)."""
    reward_channels: ClassVar[tuple[str, ...]] = ()
    """The turn channels whose sum is ``step``'s scalar reward (plus ``_final_reward`` at the
    end); every channel is recorded either way."""
    reset_options: ClassVar[frozenset[str]] = frozenset({"task_id", "split"})
    snapshot_kind: ClassVar[SnapshotKind | None] = "replay"
    """How ``snapshot()``/``restore()`` work (see :mod:`agentgym.snapshots`): ``"native"``
    (the family's ``_snapshot``/``_restore``), ``"replay"`` (reset, then the actions again:
    any deterministic env) or ``None`` (steps not reproducible: no snapshots)."""
    native_snapshot_portable: ClassVar[bool] = True
    """Whether ``_snapshot()``'s value survives pickling (else elsewhere it replays)."""
    step_timeout: float | None = 600.0
    """Seconds one step may take; a step still running then ends the episode (truncated, with
    ``info["error"]``) and the env drops its engine (``_abandon``) for a fresh one at the next
    reset. ``None`` runs steps in the caller's thread with no bound. Set per env with
    ``make(ID, step_timeout=...)``. An engine stuck in C code that holds the GIL cannot be
    preempted from a thread: run such envs in ``EnvPool`` worker processes."""

    def __init__(
        self,
        *,
        protocol: ActionProtocol,
        max_turns: int | None = None,
        max_invalid_actions: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        check_options([render_mode] if render_mode else [], self.metadata["render_modes"],
                      "render_mode")
        self.protocol = protocol
        self.max_turns = max_turns
        self.max_invalid_actions = max_invalid_actions
        self.render_mode = render_mode
        self.observation_space = TextSpace()
        self.action_space = TextSpace()
        self.state = EnvState.UNRESET
        self.task_id: str | None = None
        self.reset_seed: int | None = None
        self.turn = 0
        self.invalid_actions = 0
        self._invalid_streak = 0
        self._last_action: str | None = None
        self._last_observation = ""
        self._worker: _StepWorker | None = None
        self._current_task: Task | None = None
        self._reset_options: dict[str, Any] = {}
        self._reset_rng: Mapping[str, Any] = {}
        self._actions: list[Any] = []  # since the reset: a snapshot's way back by replay

    # ------------------------------------------------------------------ the contract
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds the env's own generator (``self.np_random``); with no ``task_id``
                option, the same seed picks the same task.
            options: ``task_id`` to replay a known task, ``split`` ("train"/"test"), plus
                any env-specific options listed in ``reset_options``.

        Returns:
            The first observation and the info dict (``instruction``, ``task_id``, ...).

        Raises:
            InvalidOptionError: for an option the env does not know.
            TaskNotFoundError: for an unknown ``task_id``.
            EnvClosed: after ``close()``.
        """
        self._ensure_open()
        options = dict(options or {})
        check_options(options, self.reset_options, "reset option")
        if seed is not None and (type(seed) is not int or seed < 0):
            raise InvalidOptionError(f"seed must be a non-negative integer or None, got {seed!r}.")
        return self._begin(seed, options)

    def _begin(self, seed: int | None, options: dict[str, Any],
               rng: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Reset with checked arguments; ``rng`` replaces the generator's seeded state."""
        super().reset(seed=seed)
        if rng is not None:
            self.np_random.bit_generator.state = copy.deepcopy(dict(rng))
        self.reset_seed, self._reset_options, self._actions = seed, options, []
        self._reset_rng = copy.deepcopy(self.np_random.bit_generator.state)
        observation, self.task_id = self._load_task(options)
        self.state = EnvState.RUNNING
        self.turn = 0
        self.invalid_actions = 0
        self._invalid_streak = 0
        self._last_action, self._last_observation = None, observation
        self._current_task = self._describe_task(options)
        info = {"task_id": self.task_id, "instruction": self._current_task.instruction,
                "task_kind": self._current_task.kind, **self._now_info()}
        return observation, info

    def snapshot(self) -> Snapshot:
        """The env's whole state now, for :meth:`restore` here or in any twin of this env.

        Raises:
            SnapshotError: if the env's steps are not reproducible (``snapshot_kind`` None).
            ResetNeeded: before the first ``reset``; EnvClosed: after ``close()``.
        """
        self._ensure_open()
        if self.state is EnvState.UNRESET:
            raise ResetNeeded(f"Cannot call {type(self).__name__}.snapshot() before reset().")
        if self.snapshot_kind is None:
            raise SnapshotError(
                f"{self.env_id or type(self).__name__} cannot be snapshotted: its steps are not "
                "reproducible (snapshot_kind is None). Give it native snapshots "
                "(_snapshot/_restore), or make its steps deterministic and set "
                "snapshot_kind = 'replay'.")
        native = self.snapshot_kind == "native"
        assert self.task_id is not None
        return Snapshot(
            env_id=self.env_id, kind="native" if native else "replay", task_id=self.task_id,
            reset_seed=self.reset_seed, reset_rng=self._reset_rng, actions=tuple(self._actions),
            counters={"turn": self.turn, "invalid_actions": self.invalid_actions,
                      "invalid_streak": self._invalid_streak, "state": self.state.value,
                      "last_action": self._last_action,
                      "last_observation": self._last_observation,
                      "options": dict(self._reset_options)},
            rng=copy.deepcopy(self.np_random.bit_generator.state),
            state_key=self._state_key(), native=self._snapshot() if native else None,
            portable=self.native_snapshot_portable)

    def restore(self, snapshot: Snapshot) -> None:
        """Put the env back into ``snapshot``'s state (taken here or in a twin of this env).

        The snapshot is not changed: it can be restored again, here or elsewhere.

        Raises:
            SnapshotError: for something that is not a snapshot of this env id, or a replay
                that did not get back to the snapshot's state.
            EnvClosed: after ``close()``.
        """
        self._ensure_open()
        if not isinstance(snapshot, Snapshot):
            raise SnapshotError(f"restore() takes a Snapshot from env.snapshot(), got "
                                f"{type(snapshot).__name__}.")
        if snapshot.env_id != self.env_id:
            raise SnapshotError(f"A snapshot of {snapshot.env_id!r} cannot restore into "
                                f"{self.env_id!r}: restore into an env made with the same id "
                                "and kwargs.")
        if snapshot.kind == "native" and self._restore(snapshot.native) is not False:
            self.task_id, self.reset_seed = snapshot.task_id, snapshot.reset_seed
            self._reset_options = dict(snapshot.counters["options"])
            self._reset_rng, self._actions = snapshot.reset_rng, list(snapshot.actions)
            self._current_task = self._describe_task(self._reset_options)
        else:
            self._replay(snapshot)
        counters = snapshot.counters
        self.turn, self.invalid_actions = counters["turn"], counters["invalid_actions"]
        self._invalid_streak, self.state = counters["invalid_streak"], EnvState(counters["state"])
        self._last_action = counters["last_action"]
        self._last_observation = counters["last_observation"]
        self.np_random.bit_generator.state = copy.deepcopy(dict(snapshot.rng))

    def _replay(self, snapshot: Snapshot) -> None:
        """Reset as the snapshot's episode was, then step its actions again."""
        self._begin(snapshot.reset_seed, dict(snapshot.counters["options"]),
                    rng=snapshot.reset_rng)
        for action in snapshot.actions:
            self.step(action)
        if self.task_id != snapshot.task_id or self._state_key() != snapshot.state_key:
            raise SnapshotError(
                f"Replaying {len(snapshot.actions)} actions of task {snapshot.task_id!r} did "
                f"not get back to the snapshot's state (task {self.task_id!r}, state_key "
                f"{self._state_key()!r}, expected {snapshot.state_key!r}): "
                f"{type(self).__name__}'s steps are not reproducible. Give it native "
                "snapshots, or set snapshot_kind = None.")

    @property
    def task(self) -> Task:
        """The current episode's task (see :class:`Task`).

        Raises:
            ResetNeeded: before the first ``reset``.
        """
        if self._current_task is None:
            raise ResetNeeded("env.task is known after reset(); call env.reset() first.")
        return self._current_task

    def _describe_task(self, options: Mapping[str, Any]) -> Task:
        assert self.task_id is not None
        reference = self._reference()
        return Task(id=self.task_id, split=self._task_split(self.task_id, options),
                    instruction=self._instruction(),
                    reference=types.MappingProxyType(dict(reference)) if reference else None,
                    source=self._task_source(), kind=self._task_kind())

    def step(
        self, action: str | ToolCall | dict[str, Any]
    ) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Play one action.

        Args:
            action: The model's raw output text (or a ToolCall / dict under a tool protocol).
                Text that does not follow the protocol is answered with an observation
                explaining the problem; it never raises.

        Returns:
            ``(observation, reward, terminated, truncated, info)``. ``reward`` is the sum of
            this turn's ``reward_channels`` (plus the env's final reward on the last turn);
            every channel is in ``info["reward_channels"]``.

        Raises:
            ResetNeeded: before the first ``reset``.
            EpisodeOver: after the episode ended (reset to start a new one).
            EnvClosed: after ``close()``.
        """
        self._ensure_running()
        self.turn += 1
        self._actions.append(action)
        parsed = self._parse(action)
        try:
            transition = self._apply_parsed(parsed)
        except _StepHung as hung:
            return self._end_hung(parsed, hung)
        truncated = not transition.terminated and self._hit_limits(parsed.ok)
        reward = sum(transition.channels[name] for name in self.reward_channels)
        info = {
            "task_id": self.task_id,
            "action_valid": parsed.ok,
            "parsed_action": parsed.text if parsed.ok else None,
            "thought": parsed.thought,
            "reward_channels": transition.channels,
            **transition.info,
        }
        if transition.terminated or truncated:
            self.state = EnvState.DONE
            outcome = self._outcome()
            info["outcome_channels"] = outcome
            info["success"] = bool(outcome.get(self.success_channel, 0.0) >= 1.0)
            reward += self._final_reward(outcome)
            reference = self._reference()
            if reference:
                info["reference"] = reference
        info.update(self._now_info())
        self._last_action = parsed.text if parsed.ok else str(action)[:200]
        self._last_observation = transition.observation
        return transition.observation, float(reward), transition.terminated, truncated, info

    def outcome_now(self) -> dict[str, float]:
        """The outcome channels as the episode stands: what ending it here would record.

        For a caller whose agent stopped before the env did (a TRL rollout that ran out of
        tokens), so the episode can be scored as if truncated at this turn.

        Raises:
            ResetNeeded: before the first ``reset``.
            EnvClosed: after ``close()``.
        """
        self._ensure_open()
        if self.state is EnvState.UNRESET:
            raise ResetNeeded(f"{type(self).__name__} has no episode yet: call reset() first.")
        return dict(self._outcome())

    def system_prompt(self) -> str:
        """Instructions for a model: what the env is and how to write actions."""
        return f"{self.description}\n\n{self.protocol.describe()}".strip()

    def render(self) -> str | None:  # type: ignore[override]
        """Return the last action and observation as text (``ansi`` mode)."""
        if self.render_mode != "ansi":
            return None
        head = f"> {self._last_action}\n" if self._last_action else ""
        return f"{head}{self._last_observation}"

    def close(self) -> None:
        """Release the env's resources. Idempotent."""
        if self.state is not EnvState.CLOSED:
            self._release()
            self.state = EnvState.CLOSED
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    def __enter__(self) -> AgentEnv:
        return self

    def __exit__(self, *exc: object) -> None:  # type: ignore[override] # never swallows
        self.close()

    # ------------------------------------------------------------------ hooks
    def _load_task(self, options: dict[str, Any]) -> tuple[str, str]:
        """Start the task chosen by ``options`` / ``self.np_random``; return (obs, task_id)."""
        raise NotImplementedError

    def _apply(self, command: str | ToolCall) -> Transition:
        """Apply one valid parsed action to the world."""
        raise NotImplementedError

    def _instruction(self) -> str:
        """The current task's instruction text."""
        raise NotImplementedError

    def _state_key(self) -> str:
        """A canonical fingerprint of the world state (not of the observation text)."""
        raise NotImplementedError

    def _outcome(self) -> dict[str, float]:
        """The outcome channels of the finished episode."""
        raise NotImplementedError

    def _final_reward(self, outcome: dict[str, float]) -> float:
        """What the last step's scalar reward adds for the outcome (nothing by default)."""
        return 0.0

    def _reference(self) -> dict[str, Any] | None:
        """What the task wanted (gold answers, target product), shown once it is over."""
        return None

    def _task_source(self) -> Any:
        """The family's own record of the current task (``env.task.source``)."""
        return None

    def _task_kind(self) -> str | None:
        """The current task's kind (see :attr:`Task.kind`); ``None``: one kind only."""
        return None

    def _task_split(self, task_id: str, options: Mapping[str, Any]) -> str | None:
        """The current task's split.

        By default: a ``/``-separated part of its id naming a split, else the ``split``
        option, else the env's ``split`` attribute.
        """
        for part in task_id.split("/"):
            if part in self.splits:
                return part
        return options.get("split", getattr(self, "split", None))

    def _admissible(self) -> list[str] | None:
        """Commands valid now, or ``None`` if the env cannot enumerate them."""
        return None

    def _expert(self) -> str | ToolCall | None:
        """The expert's next command, or ``None`` if there is no expert or nothing to do."""
        return None

    def _release(self) -> None:
        """Free engine resources (called once by ``close``)."""

    def _snapshot(self) -> Any:
        """The family's own episode state (``snapshot_kind = "native"``).

        A copy: later steps never change it.
        """
        raise NotImplementedError

    def _restore(self, native: Any) -> bool | None:
        """Make the family's state ``native`` (a ``_snapshot()`` value).

        It may be of another task, and from a twin in another process. Copy what you keep:
        the snapshot restores again. Return False if this state cannot be restored natively
        here (an engine handle that is gone): the snapshot is then replayed.
        """
        raise NotImplementedError

    def _refuse(self, command: str | ToolCall) -> str | None:
        """Why the engine must not see a parsed command (answered as an invalid action)."""
        return None

    def _abandon(self) -> None:  # noqa: B027 - a hook; envs without an engine need none
        """Forget an engine whose step hung (without waiting on it); reset makes a new one."""

    # ------------------------------------------------------------------ helpers for hooks
    splits: tuple[str, ...] = ("train", "test")  # an instance may serve other splits

    def task_index(self, count: int) -> int:
        """The task a reset without ``task_id`` plays: ``seed % count``, else a random one."""
        seed = self.reset_seed
        return int(self.np_random.integers(count)) if seed is None else seed % count

    def check_split(self, split: str) -> str:
        """``split`` if the env has it, else an :class:`InvalidOptionError` naming the splits."""
        if split not in self.splits:
            raise InvalidOptionError(
                f"Unknown split {split!r}. Splits: {', '.join(self.splits)}."
                f"{did_you_mean(str(split), self.splits)}"
            )
        return split

    # ------------------------------------------------------------------ internals
    def _apply_parsed(self, parsed: ParsedAction) -> Transition:
        if not parsed.ok:
            self._invalid_streak += 1
            self.invalid_actions += 1
            zeros = dict.fromkeys(self.turn_channels, 0.0)
            return Transition(observation=parsed.error or "Invalid action.", channels=zeros)
        assert parsed.value is not None
        self._invalid_streak = 0
        try:
            transition = self._apply_bounded(parsed.value)
        except (_StepHung, SandboxError):
            raise  # the env's machinery is gone (a dead docker engine): the episode fails
        except Exception as exc:  # noqa: BLE001 - step() answers, whatever the engine does
            warnings.warn(f"{type(self).__name__}: the engine raised on "
                          f"{parsed.text[:80]!r}: {exc!r}", stacklevel=3)
            zeros = dict.fromkeys(self.turn_channels, 0.0)
            return Transition(observation="The environment could not carry out this action "
                                          f"({type(exc).__name__}: {str(exc)[:300]}).",
                              channels=zeros, info={"env_error": type(exc).__name__})
        transition.channels = {**dict.fromkeys(self.turn_channels, 0.0),
                               **transition.channels, "format": 1.0}
        return transition

    def _parse(self, action: object) -> ParsedAction:
        """The protocol's parse, then the env's own refusals (as invalid actions)."""
        parsed = self.protocol.parse(action)
        refusal = self._refuse(parsed.value) if parsed.ok and parsed.value is not None else None
        if refusal:
            return dataclasses.replace(self.protocol.invalid(refusal), thought=parsed.thought)
        return parsed

    def _apply_bounded(self, command: str | ToolCall) -> Transition:
        """``_apply`` in the env's worker thread, waiting at most ``step_timeout``."""
        if self.step_timeout is None:
            return self._apply(command)
        if self._worker is None:
            self._worker = _StepWorker()
        try:
            return self._worker.call(self._apply, command, self.step_timeout)
        except TimeoutError:
            self._worker.stop()  # its thread may never come back: leave it behind
            self._worker = None
            self._abandon()
            raise _StepHung(self.step_timeout) from None

    def _end_hung(self, parsed: ParsedAction, hung: _StepHung) -> tuple:
        """The step that never returned ends the episode; the engine is not asked again."""
        self.state = EnvState.DONE
        message = (f"The environment did not answer within {hung.seconds:g} s; the episode "
                   "was stopped and the engine replaced.")
        zeros = dict.fromkeys(self.turn_channels, 0.0)
        outcome = dict.fromkeys(self.outcome_channels, 0.0)
        info: dict[str, Any] = {"task_id": self.task_id, "action_valid": parsed.ok,
                "parsed_action": parsed.text if parsed.ok else None, "thought": parsed.thought,
                "reward_channels": zeros, "outcome_channels": outcome, "success": False,
                "error": {"type": "StepTimeout", "message": message},
                "admissible_actions": [], "tools": [], "state_key": None,
                "expert_action": None}
        self._last_action, self._last_observation = parsed.text, message
        return message, 0.0, False, True, info

    def _hit_limits(self, valid: bool) -> bool:
        if self.max_turns is not None and self.turn >= self.max_turns:
            return True
        limit = self.max_invalid_actions
        return not valid and limit is not None and self._invalid_streak >= limit

    def _now_info(self) -> dict[str, Any]:
        expert = self._expert() if self.state is EnvState.RUNNING else None
        tools = self.protocol.schemas() if isinstance(self.protocol, ToolCallProtocol) else []
        return {
            "admissible_actions": self._admissible() or [],
            "tools": tools,
            "state_key": self._state_key(),
            "expert_action": self.protocol.encode(expert) if expert is not None else None,
        }

    def _ensure_open(self) -> None:
        if self.state is EnvState.CLOSED:
            raise EnvClosed(f"{type(self).__name__} is closed; make a new env with make().")

    def _ensure_running(self) -> None:
        self._ensure_open()
        if self.state is EnvState.UNRESET:
            raise ResetNeeded(f"Cannot call {type(self).__name__}.step() before reset().")
        if self.state is EnvState.DONE:
            raise EpisodeOver(
                f"The episode of task {self.task_id!r} is over (terminated or truncated); "
                "call reset() to start a new one."
            )


class _StepHung(Exception):
    """A step ran past ``step_timeout`` (internal: ``step`` turns it into a truncation)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"step ran past {seconds:g} s")
        self.seconds = seconds


class _StepWorker:
    """One daemon thread that runs an env's steps, so that a hung step can be waited on.

    A daemon thread does not keep the interpreter alive, so a step that never returns is
    simply left behind.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True, name="agentgym-step").start()

    def call(self, function: Any, argument: Any, timeout: float) -> Any:
        done: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs.put((function, argument, done))
        try:
            ok, value = done.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if ok:
            return value
        raise value

    def stop(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, argument, done = job
            try:
                done.put((True, function(argument)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.put((False, exc))
