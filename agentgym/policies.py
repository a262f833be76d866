"""Policies: anything that maps the conversation so far to the next action text.

A policy is any callable ``policy(conversation) -> str``. The rollout loop owns the
conversation (system prompt, instruction, observation/action turns); a policy only reads it.
Policies that sample implement ``reseed(seed)`` so that each episode of a group gets its own,
reproducible sampling seed.

A policy may answer with a :class:`Reply` instead of text: the sampled token ids and
log-probs (token-in/token-out), and, for *native tool calling*, structured tool calls. The
rollout engine steps the env once per call, in order, and sends each result back as a
``role: "tool"`` message answering the call's id, as OpenAI-style chat expects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agentgym.errors import InvalidOptionError, PolicyError
from agentgym.protocols import ToolCall, tool_calls_in


@dataclass
class Reply:
    """One reply of a policy.

    Attributes:
        text: The reply's text (its ``content``; with tool calls, whatever came besides).
        tool_calls: Structured tool calls (native tool calling), run in order; each has an
            ``id`` the tool result answers to.
        token_ids: The token ids the sampler produced (token-in/token-out).
        logprobs: The sampler's log-probability of each of those tokens.
    """

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


@dataclass
class Conversation:
    """What a policy sees.

    Attributes:
        messages: OpenAI-style chat messages: the system prompt, the instruction with the
            first observation, then alternating assistant actions and user observations
            (shortened to the rollout's history window).
        info: The info dict of the latest ``reset``/``step`` (admissible actions, expert
            action, tools, ...).
        encode: Writes a plain command as valid action text under the env's protocol.
        turn: How many steps were taken so far.
    """

    messages: list[dict[str, Any]]
    info: dict[str, Any]
    encode: Callable[[str | ToolCall], str]
    turn: int = 0

    @property
    def observation(self) -> str:
        """The latest observation text."""
        return self.messages[-1]["content"] if self.messages else ""

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The env's tools as OpenAI function schemas (``[]`` when it takes text commands)."""
        return list(self.info.get("tools") or [])


class Policy(Protocol):
    """The policy interface: the conversation in, the next action text out."""

    def __call__(self, conversation: Conversation) -> str:
        """Return the next action text."""
        ...


@runtime_checkable
class SeededPolicy(Protocol):
    """A policy whose sampling can be reseeded per episode."""

    def reseed(self, seed: int) -> None:
        """Reset the policy's random generator."""


def describe(policy: Callable[..., Any]) -> dict[str, Any]:
    """The policy's metadata for an Episode record (``describe()`` if it has one)."""
    own = getattr(policy, "describe", None)
    return own() if callable(own) else {"policy": type(policy).__name__}


class ExpertPolicy:
    """Plays the env's expert action (``info["expert_action"]``).

    Args:
        native_tools: Answer with a structured tool call (:class:`Reply`) instead of the
            action's text, as a model served with tool calling does (tool protocols only).
    """

    def __init__(self, native_tools: bool = False) -> None:
        self.native_tools = native_tools

    def __call__(self, conversation: Conversation) -> str | Reply:
        """Return the expert's action for the current state."""
        action = conversation.info.get("expert_action")
        if action is None:
            raise PolicyError(
                "The env offers no expert action in this state (info['expert_action'] is "
                "None): the env has no expert, or the game can no longer be won."
            )
        if not self.native_tools:
            return action
        calls = tool_calls_in(action)
        if not conversation.tools or not calls:
            raise PolicyError("ExpertPolicy(native_tools=True) needs an env with a tool "
                              "protocol (protocol='tools'); this env's actions are text.")
        return Reply(tool_calls=calls)  # the engine names them call_<turn>_<k>

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "expert"}


class RandomPolicy:
    """Samples uniformly from ``info["admissible_actions"]``.

    Args:
        seed: Seed of the policy's own generator (reseeded per episode by the rollout).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        """Reset the generator."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, conversation: Conversation) -> str:
        """Return a random admissible command, written in the env's protocol."""
        choices = conversation.info.get("admissible_actions") or []
        if not choices:
            raise PolicyError("RandomPolicy needs info['admissible_actions']; this env gives none.")
        return conversation.encode(choices[int(self.rng.integers(len(choices)))])

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "random"}


class NoisyExpertPolicy:
    """The expert with probability ``1 - epsilon``, else a uniformly random admissible action.

    A behaviour policy of controllable skill that needs no model (credit-assignment
    benchmarks; PAV's prover). Where the expert has nothing to say, it acts at random.

    Args:
        epsilon: The probability of a random action.
        seed: Seed of the policy's own generator (reseeded per episode by the rollout).
    """

    def __init__(self, epsilon: float, seed: int | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise PolicyError(f"epsilon is a probability, in [0, 1]; got {epsilon}.")
        self.epsilon, self.random = epsilon, RandomPolicy(seed)

    def reseed(self, seed: int) -> None:
        """Reset the generator."""
        self.random.reseed(seed)

    def __call__(self, conversation: Conversation) -> str:
        """The expert's action, or (with probability epsilon) a random admissible one."""
        expert = conversation.info.get("expert_action")
        if expert is None or self.random.rng.random() < self.epsilon:
            return self.random(conversation)
        return expert

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "noisy_expert", "epsilon": self.epsilon}


class HumanPolicy:
    """A person at the terminal types each action.

    A plain command is written in the env's protocol for you (in SWE-v0, a shell command
    becomes a ``bash`` call); a tool call typed as JSON (``{"name": ..., "arguments": ...}``)
    is sent as a call; text starting with ``<`` is sent as it is. ``/help`` lists the
    admissible commands.

    Args:
        input_fn: Reads one line (``input`` by default; tests pass their own).
        console: A rich console to print to.
    """

    def __init__(self, input_fn: Callable[[str], str] = input, console: Any = None) -> None:
        from rich.console import Console

        self.input_fn = input_fn
        self.console = console or Console()

    def __call__(self, conversation: Conversation) -> str:
        """Show the observation and read the next command."""
        self.console.print(conversation.observation, markup=False, highlight=False)
        while True:
            try:
                line = self.input_fn("> ").strip()
            except EOFError as exc:
                raise PolicyError("The player closed the input (end of file).") from exc
            if line == "/help":
                admissible = conversation.info.get("admissible_actions") or ["(not available)"]
                self.console.print("Admissible: " + ", ".join(admissible), markup=False)
                continue
            return self._action(line, conversation)

    def _action(self, line: str, conversation: Conversation) -> str:
        if line.startswith("<"):
            return line  # written in the protocol already
        if line.startswith("{"):  # a tool call as JSON: {"name": ..., "arguments": {...}}
            try:
                call = json.loads(line)
                return conversation.encode(ToolCall(call["name"], call.get("arguments", {})))
            except (ValueError, TypeError, KeyError):
                return line  # the env answers with what a tool call must look like
        return conversation.encode(line)

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "human"}


@dataclass
class OpenAIChatPolicy:
    """Any OpenAI-compatible chat endpoint (``vllm serve``, llama.cpp, a hosted API).

    In a rollout, up to ``concurrency`` requests are in flight at once (one per episode
    waiting for an action), over one async connection pool; called directly, it sends one.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The model name the server expects.
        api_key: Sent as a bearer token when given.
        temperature: Sampling temperature.
        max_tokens: Completion length limit.
        stop: Stop strings.
        timeout: Seconds per request.
        retries: Extra attempts after a connection error, a timeout, a 429 or a 5xx.
        backoff: Seconds before the first retry; doubles each time.
        extra_body: Extra request fields (e.g. ``{"top_p": 0.9}``).
        concurrency: Requests in flight at most during a rollout.
        native_tools: Send the env's tools as ``tools=`` and read the reply's
            ``tool_calls`` (the server parses them, e.g. ``vllm serve
            --enable-auto-tool-choice --tool-call-parser hermes``); each result comes back
            as a ``role: "tool"`` message. Off: actions are the reply's text.
    """

    base_url: str
    model: str = "default"
    api_key: str | None = None
    temperature: float = 0.7
    max_tokens: int = 512
    stop: list[str] | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5
    extra_body: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    concurrency: int = 1
    native_tools: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise InvalidOptionError(f"concurrency must be a whole number >= 1, got "
                                     f"{self.concurrency!r}.")
        self._headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._async = _AsyncClients()  # shared by the per-episode copies a rollout makes

    def reseed(self, seed: int) -> None:
        """Sent as the request's ``seed`` (servers that support it sample reproducibly)."""
        self.seed = seed

    def __call__(self, conversation: Conversation) -> str | Reply:
        """Send the conversation and return the reply (outside an event loop)."""
        async def once() -> str | Reply:
            try:
                return await self.acall(conversation)
            finally:
                await self.aclose()

        return asyncio.run(once())

    async def acall(self, conversation: Conversation) -> str | Reply:
        """:meth:`__call__` for the rollout engine: awaits, at most ``concurrency`` at once."""
        import httpx

        client, slots = self._async.get(self)
        body, problem = self._body(conversation), ""
        async with slots:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = await client.post("/chat/completions", json=body)
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    continue
                problem = self._retry_reason(response)
                if not problem:
                    return self._reply(response.json())
        raise self._gave_up(problem)

    async def aclose(self) -> None:
        """Close this event loop's async connection pool (the rollout engine calls it)."""
        await self._async.close()

    def _body(self, conversation: Conversation) -> dict[str, Any]:
        tools = conversation.tools if self.native_tools else []
        return {
            "model": self.model,
            "messages": [_wire_message(m) for m in conversation.messages],
            **({"tools": tools} if tools else {}),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **({"stop": self.stop} if self.stop else {}),
            **({"seed": self.seed} if self.seed is not None else {}),
            **self.extra_body,
        }

    def _retry_reason(self, response: Any) -> str:
        """Why to try again ('' for a good reply); raises on a reply retrying cannot fix."""
        if response.status_code == 429 or response.status_code >= 500:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code != 200:
            raise PolicyError(
                f"{self.base_url}/chat/completions answered HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        return ""

    def _reply(self, reply: Any) -> str | Reply:
        try:
            message = reply["choices"][0]["message"]
            text = message.get("content") or ""
            calls = [(c["id"], c["function"]["name"], c["function"]["arguments"])
                     for c in message.get("tool_calls") or []]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise PolicyError(f"Unexpected reply from {self.base_url}: {str(reply)[:300]}") from exc
        if not self.native_tools:
            return text
        parsed = [(i, name, _json_object(arguments)) for i, name, arguments in calls]
        if any(arguments is None for _, _, arguments in parsed):
            # the env's protocol explains what is wrong with the call, as with any text
            written = "".join(f'<tool_call>{{"name": {json.dumps(name)}, "arguments": {a}}}'
                              "</tool_call>" for _, name, a in calls)
            return Reply(text=text + written)
        return Reply(text=text, tool_calls=[ToolCall(name, arguments or {}, id=i)
                                            for i, name, arguments in parsed])

    def _gave_up(self, problem: str) -> PolicyError:
        return PolicyError(
            f"{self.base_url}/chat/completions failed after {self.retries + 1} attempts; "
            f"last problem: {problem}. Is the server running?"
        )

    def close(self) -> None:
        """Nothing to close outside a rollout (each event loop's pool is closed with it)."""

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {
            "policy": "openai",
            "model": self.model,
            "base_url": self.base_url,
            "sampling": {"temperature": self.temperature, "max_tokens": self.max_tokens},
            "concurrency": self.concurrency,
            "native_tools": self.native_tools,
        }


def _wire_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as the OpenAI API takes it: tool-call arguments as JSON text."""
    if not message.get("tool_calls"):
        return message
    calls = [{**c, "function": {"name": c["function"]["name"], "arguments": json.dumps(
        c["function"]["arguments"], ensure_ascii=False)}} for c in message["tool_calls"]]
    return {**message, "tool_calls": calls}


def _json_object(text: Any) -> dict[str, Any] | None:
    """A tool call's arguments (JSON text, or already an object) as a dict; None if not one."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


CONNECTIONS_PER_CLIENT = 8
"""Keep-alive connections per async HTTP client (see :class:`_AsyncClients`)."""


class _AsyncClients:
    """Async HTTP clients and a request limit per event loop (they cannot cross loops).

    Requests are spread over several clients of at most :data:`CONNECTIONS_PER_CLIENT`
    connections each: httpcore checks every pooled connection on each request, so one pool
    of 64 keep-alive connections spends more CPU choosing a connection than sending.
    """

    def __init__(self) -> None:
        self._by_loop: dict[int, tuple[Any, list[Any], asyncio.Semaphore]] = {}
        self._turn = 0

    def get(self, policy: OpenAIChatPolicy) -> tuple[Any, asyncio.Semaphore]:
        import httpx

        loop = asyncio.get_running_loop()
        found = self._by_loop.get(id(loop))
        if found is None or found[0] is not loop:
            size = min(policy.concurrency, CONNECTIONS_PER_CLIENT)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            clients = [httpx.AsyncClient(base_url=policy.base_url.rstrip("/"),
                                         timeout=policy.timeout, headers=policy._headers,
                                         limits=limits)
                       for _ in range(-(-policy.concurrency // size))]
            found = self._by_loop[id(loop)] = (loop, clients,
                                               asyncio.Semaphore(policy.concurrency))
        self._turn += 1
        return found[1][self._turn % len(found[1])], found[2]

    async def close(self) -> None:
        found = self._by_loop.pop(id(asyncio.get_running_loop()), None)
        for client in found[1] if found is not None else []:
            await client.aclose()
