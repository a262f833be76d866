"""Episode records: :class:`Turn`, :class:`Episode` and their plain-dict form.

Every later stage (rewards, advantages, tokenisation, the viewer) reads these records and
nothing else of an env, so they are plain data: JSON types only, versioned by
``SCHEMA_VERSION``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from agentgym.errors import RecordError

SCHEMA_VERSION = 4  # 2: sampled token ids and log-probs; 3: native tool calls; 4: window


@dataclass
class Turn:
    """One step of an episode: what the agent saw, what it did, what it got.

    Attributes:
        index: 0-based turn number.
        observation: The observation the agent acted on.
        action: The model's raw action text, exactly as written.
        parsed_action: The parsed command / tool call as text; ``None`` if invalid.
        action_valid: Whether the action followed the env's protocol.
        thought: The ``<think>`` text, if any.
        reward: The env's scalar reward for this step.
        reward_channels: This turn's named reward components.
        state_key: Fingerprint of the state the action was taken in.
        next_state_key: Fingerprint of the state the action led to.
        info: A subset of the step's info (admissible actions, expert action, ...).
        policy_seconds: Time the policy took to produce the action.
        env_seconds: Time ``env.step`` took.
        advantage: Filled in by a credit-assignment stage; ``None`` when not computed.
        token_ids: The token ids the sampler produced for this action, when the policy
            reports them (token-in/token-out: training uses these, never a re-encoding).
        logprobs: The sampler's log-probability of each of those tokens.
        tool_calls: Native tool calling: on the turn whose reply made tool calls, all of
            them (``{"id", "name", "arguments"}``), in order; the env ran one per turn, this
            turn and the next ones (``None`` on those, and on text actions).
        tool_call_id: Native tool calling: the id of the call this step ran (its result,
            the next observation, answers to it as a ``role: "tool"`` message).
    """

    index: int
    observation: str
    action: str
    parsed_action: str | None = None
    action_valid: bool = True
    thought: str | None = None
    reward: float = 0.0
    reward_channels: dict[str, float] = field(default_factory=dict)
    state_key: str | None = None
    next_state_key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    advantage: float | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


@dataclass
class Outcome:
    """How an episode ended: success, total reward, and the named outcome channels."""

    success: bool = False
    total_reward: float = 0.0
    channels: dict[str, float] = field(default_factory=dict)


@dataclass
class Episode:
    """One episode of one task, as the rollout loop recorded it.

    Attributes:
        env_id: The registered env id.
        task_id: The task played; replayable with ``reset(options={"task_id": ...})``.
        seed: The reset seed.
        group_id: Shared by the episodes of one task sampled together (GRPO/RLOO/SALT).
        instruction: The task's instruction text.
        system_prompt: The env's system prompt at the time.
        turns: The steps, in order.
        final_observation: What the env answered to the last action.
        outcome: Success, return and outcome channels.
        terminated: The task ended (won or lost).
        truncated: The episode was cut (turn budget, invalid actions, a failure).
        error: ``{"type", "message"}`` when the rollout failed (policy or env); else ``None``.
        metadata: Policy, model, sampling parameters, and anything a caller adds.
        tools: The tool schemas the policy was given as tools (native tool calling), which
            its chat template rendered; ``None`` when actions were text.
        history_window: How many past replies the policy saw (``None``: all); tokenisation
            gives each reply this same context (see :mod:`agentgym.chat`).
        episode_id: A unique id.
        schema_version: The record format version.
        created_at: Unix time the episode finished.
    """

    env_id: str
    task_id: str
    seed: int | None = None
    group_id: str | None = None
    instruction: str = ""
    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)
    final_observation: str = ""
    outcome: Outcome = field(default_factory=Outcome)
    terminated: bool = False
    truncated: bool = False
    error: dict[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: list[dict] | None = None
    history_window: int | None = None
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    schema_version: int = SCHEMA_VERSION
    created_at: float = field(default_factory=time.time)

    @property
    def num_turns(self) -> int:
        """How many steps the episode took."""
        return len(self.turns)

    def to_dict(self) -> dict[str, Any]:
        """The episode as JSON-ready plain data."""
        return asdict(self)

    @classmethod
    def from_json(cls, line: str | bytes) -> Episode:
        """Parse one JSONL line; any malformed content is a :class:`RecordError`.

        A crafted line (huge numbers, deep nesting, wrong field types) is refused here, so
        readers skip it instead of failing later on a field of the wrong type.
        """
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise RecordError(f"not valid JSON ({str(exc)[:120]})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        """Rebuild an episode from :meth:`to_dict` output.

        Raises:
            RecordError: if fields are missing, unknown, of the wrong type, or of a newer
                schema.
        """
        if not isinstance(data, dict):
            raise RecordError(f"Expected an episode object, got {type(data).__name__}.")
        version = data.get("schema_version")
        if type(version) is not int or version > SCHEMA_VERSION:
            raise RecordError(
                f"Episode schema_version {repr(version)[:40]} is not supported (this agentgym "
                f"reads integer versions up to {SCHEMA_VERSION}); upgrade agentgym to read "
                "this file."
            )
        data = dict(data)
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise RecordError(f"Episode field 'turns' must be a list, got {type(turns).__name__}.")
        data["turns"] = [_checked_calls(_build(Turn, t)) for t in turns]
        data["outcome"] = _build(Outcome, data.get("outcome", {}))
        return _build(cls, data)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),),
    "dict": (dict,), "list": (list,), "Turn": (Turn,), "Outcome": (Outcome,),
}


def _allowed(annotation: str) -> tuple[type, ...]:
    """The Python types a field annotation such as ``dict[str, float] | None`` admits."""
    kinds: tuple[type, ...] = ()
    for part in annotation.split("|"):
        kinds += _JSON_TYPES[part.strip().split("[")[0]]
    return kinds


def _elements_fit(annotation: str, value: Any) -> bool:
    """Whether a ``list[int]`` / ``list[float]`` field holds only numbers of that kind."""
    if not isinstance(value, list) or "list[" not in annotation:
        return True
    kinds = _JSON_TYPES[annotation.split("list[")[1].split("]")[0]]
    return all(isinstance(x, kinds) and not isinstance(x, bool) for x in value)


def _checked_calls(turn: Turn) -> Turn:
    """A turn whose ``tool_calls`` each have a string id and name and object arguments."""
    for call in turn.tool_calls or []:
        if not (isinstance(call.get("id"), str) and isinstance(call.get("name"), str)
                and isinstance(call.get("arguments"), dict)):
            raise RecordError(f"Turn {turn.index}: each tool call needs a string 'id' and "
                              f"'name' and an object 'arguments', got {str(call)[:120]}.")
    return turn


def _build(kind: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise RecordError(f"{kind.__name__} record must be an object, got {type(data).__name__}.")
    known = {f.name: f for f in fields(kind)}
    unknown = set(data) - set(known)
    if unknown:
        raise RecordError(
            f"{kind.__name__} record has unknown field(s) {sorted(unknown)[:10]}; "
            f"known: {sorted(known)}."
        )
    for name, value in data.items():
        allowed = _allowed(str(known[name].type))
        # bool is an int in Python, but a JSON true is not a turn index
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed) \
                or not _elements_fit(str(known[name].type), value):
            raise RecordError(f"{kind.__name__} field {name!r} must be {known[name].type}, "
                              f"got {type(value).__name__}.")
    try:
        return kind(**data)
    except TypeError as exc:
        raise RecordError(f"Malformed {kind.__name__} record: {exc}") from None
