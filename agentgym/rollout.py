"""The rollout engine: a policy plays envs; every episode becomes an :class:`Episode` record.

:func:`rollout` runs N tasks x G episodes per task (a *group*: same task, different sampling
seeds, one ``group_id``), which is what GRPO, RLOO and SALT consume. One scheduler drives
every mode. An episode *slot* is a place an episode runs: a local env, one env of a pool, or
a remote env; each slot plays jobs from one shared queue, and env calls run in worker threads
(or the pool's workers) so they never block the event loop. Every policy is driven through
one async interface: an async policy (``acall``) is awaited, a batching policy
(``generate``) answers every episode waiting at that moment in one call, and a plain
callable is called in a thread, one call at a time. A failing policy or env call does not
stop the run: the episode is recorded with a typed ``error`` and marked truncated (a bad
rollout is data, not a crash). :func:`arollout` is the same engine for callers that already
run an event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentgym.chat import first_user_message, observation_message, reply_message, windowed
from agentgym.core import AgentEnv
from agentgym.errors import InvalidOptionError, LifecycleError
from agentgym.policies import Conversation, SeededPolicy, describe
from agentgym.protocols import ToolCall
from agentgym.records import Episode, Outcome, Turn
from agentgym.store import EpisodeWriter
from agentgym.tree import Tree, TreeStats

if TYPE_CHECKING:
    from agentgym.pool import Pool

TURN_INFO_KEYS = ("admissible_actions", "expert_action")
"""The step-info keys copied onto each :class:`Turn` record."""


class EpisodeRecorder:
    """Builds one :class:`Episode` from reset and step results, and the policy's conversation.

    The engine drives every episode through it, whatever plays the episode, so every mode
    records episodes identically.
    """

    def __init__(self, env_id: str, system_prompt: str,
                 encode: Callable[[str | ToolCall], str], *, seed: int | None,
                 group_id: str | None, history_window: int | None,
                 metadata: dict[str, Any]) -> None:
        self.encode, self.history_window = encode, history_window
        self.episode = Episode(env_id=env_id, task_id="", seed=seed, group_id=group_id,
                               system_prompt=system_prompt, metadata=metadata,
                               history_window=history_window)
        self.messages = [{"role": "system", "content": system_prompt}]
        self.observation, self.done = "", False
        self.info: dict[str, Any] = {}

    def begin(self, observation: str, info: dict[str, Any]) -> None:
        """Record what ``reset`` returned."""
        self.episode.task_id = str(info.get("task_id"))
        self.episode.instruction = info.get("instruction", "")
        if info.get("task_kind"):
            self.episode.metadata["task_kind"] = info["task_kind"]
        self.messages.append({"role": "user", "content": first_user_message(
            self.episode.instruction, observation)})
        self.observation, self.info = observation, info

    def fork(self) -> EpisodeRecorder:
        """A copy that records on separately (a branch, a continuation), as a new episode."""
        twin = copy.copy(self)
        twin.episode = copy.deepcopy(self.episode)
        twin.episode.episode_id = uuid.uuid4().hex
        twin.messages = list(self.messages)  # messages are appended, never changed
        return twin

    @property
    def turns(self) -> int:
        """Steps taken so far."""
        return len(self.episode.turns)

    def conversation(self) -> Conversation:
        """What the policy sees now."""
        return Conversation(windowed(self.messages, self.history_window), self.info,
                            self.encode, len(self.episode.turns))

    def record(self, action: Any, step: tuple, policy_seconds: float, env_seconds: float,
               sampled: Any = None, call: int | None = None) -> None:
        """Record one ``step`` result.

        Args:
            action: The action text the env was given (a reply's text for a tool call).
            step: What ``step`` returned.
            policy_seconds: The policy's time (0 for a further call of the same reply).
            env_seconds: The env's time.
            sampled: The policy's :class:`~agentgym.policies.Reply`, when it gave one.
            call: Which of the reply's tool calls this step ran (native tool calling).
        """
        next_obs, reward, terminated, truncated, step_info = step
        text = action if isinstance(action, str) else str(action)
        calls = getattr(sampled, "tool_calls", None) or []
        first = call in (None, 0)
        self.episode.turns.append(Turn(
            index=len(self.episode.turns), observation=self.observation, action=text,
            parsed_action=step_info.get("parsed_action"),
            action_valid=bool(step_info.get("action_valid", True)),
            thought=step_info.get("thought"), reward=float(reward),
            reward_channels=dict(step_info.get("reward_channels", {})),
            state_key=self.info.get("state_key"), next_state_key=step_info.get("state_key"),
            info={k: self.info.get(k) for k in TURN_INFO_KEYS if k in self.info},
            policy_seconds=policy_seconds, env_seconds=env_seconds,
            token_ids=(list(getattr(sampled, "token_ids", None) or []) or None) if first else None,
            logprobs=(list(getattr(sampled, "logprobs", None) or []) or None) if first else None,
            tool_calls=[_call_record(c) for c in calls] if calls and first else None,
            tool_call_id=calls[call].id if call is not None else None,
        ))
        turn = self.episode.turns[-1]
        self.messages += [*reply_message(turn), observation_message(next_obs, turn.tool_call_id)]
        self.observation, self.info = next_obs, step_info
        self.episode.terminated, self.episode.truncated = bool(terminated), bool(truncated)
        self.done = bool(terminated or truncated)

    def fail(self, kind: str, message: str) -> None:
        """End the episode as a failed rollout (a bad rollout is data, not a crash)."""
        self.episode.truncated, self.done = True, True
        self.episode.error = {"type": kind, "message": message}

    def finish(self) -> Episode:
        """The finished episode record."""
        episode = self.episode
        episode.final_observation = self.observation
        info = self.info if episode.error is None else {}
        if info.get("reference"):
            episode.metadata["reference"] = info["reference"]
        episode.outcome = Outcome(
            success=bool(info.get("success", False)),
            total_reward=float(sum(t.reward for t in episode.turns)),
            channels=dict(info.get("outcome_channels", {})),
        )
        return episode


def run_episode(
    env: AgentEnv,
    policy: Callable[[Conversation], str],
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    history_window: int | None = None,
    group_id: str | None = None,
) -> Episode:
    """Play one episode and return its record.

    Args:
        env: The env (reset here).
        policy: Maps the conversation to the next action text.
        seed: The reset seed.
        options: Reset options (``task_id``, ``split``, ...).
        history_window: How many past turns the policy sees (``None``: all).
        group_id: Stored on the record.
    """
    async def play() -> Episode:
        with concurrent.futures.ThreadPoolExecutor(1) as threads:
            return await _play(_EnvSlot(env, threads), _driver(policy).for_episode(None),
                               _Job(0, 0, seed, dict(options or {}), group_id, None),
                               history_window, group_id)

    return _run(play())


def sampling_seed(seed: int, task_index: int, member: int) -> int:
    """A distinct, reproducible policy seed for each episode of each group."""
    return int(np.random.SeedSequence([seed, task_index, member]).generate_state(1)[0])


async def arollout(
    env: AgentEnv | str | Pool | Sequence[AgentEnv],
    policy: Callable[[Conversation], str],
    *,
    tasks: int | Sequence[str] = 1,
    group_size: int = 1,
    seed: int = 0,
    split: str | None = None,
    out: str | Path | None = None,
    history_window: int | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    run_id: str | None = None,
    tree: Tree | None = None,
) -> list[Episode]:
    """Run ``policy`` on ``tasks`` x ``group_size`` episodes (``rollout``: the same, blocking).

    Args:
        env: An env, a registered id to ``make`` (closed at the end if made here), a list
            of envs, or a :class:`~agentgym.pool.Pool` (``EnvPool``, ``RayEnvPool``): every
            env of a list or pool plays an episode at once, stepping while the policy
            answers the others (a batching policy such as ``TransformersPolicy`` serves
            every episode waiting for an action with one ``generate`` call).
        policy: Any ``Conversation -> str`` callable (see :mod:`agentgym.policies`); one
            with ``async acall(conversation)`` is awaited, so its calls overlap.
        tasks: How many tasks (task ``i`` is reset with seed ``seed + i``), or task ids.
        group_size: Episodes per task (G); they share a ``group_id``.
        seed: Base seed for tasks and for the policy's per-episode sampling seeds.
        split: ``"train"`` or ``"test"`` (the env's default when ``None``).
        out: A JSONL file episodes are appended to as they finish.
        history_window: How many past turns the policy sees (``None``: all).
        progress: Show a progress bar.
        env_kwargs: Keyword arguments for ``make`` when ``env`` is an id.
        metadata: Added to every episode's metadata.
        run_id: Names this rollout on its records (``metadata["run_id"]``) and in every
            ``group_id`` (``<env>:<run>:<seed>:<task>``), so groups of different runs or
            policies never share an id, even appended to one file (default: a new random
            id).
        tree: Sample each group as a tree (:class:`~agentgym.tree.Tree`: its ``leaves``
            are the group size) instead of independently: a group is played in one slot,
            depth first, each branch restoring the snapshot taken where it splits (the env
            needs ``snapshot``; see ``env.snapshot_kind``).

    Returns:
        The episodes, in task order, then group-member order.
    """
    from agentgym.registry import make

    run_id = run_id or uuid.uuid4().hex[:8]
    if tree is not None and group_size not in (1, tree.leaves):
        raise InvalidOptionError(f"With a tree, the group size is tree.leaves ({tree.leaves})"
                                 f"; got group_size={group_size}.")
    members = 1 if tree is not None else group_size  # a tree is played as one job
    jobs = [_Job(index, member, task_seed, options, f"{run_id}:{seed}:{index}",
                 sampling_seed(seed, index, member))
            for index, (task_seed, options) in enumerate(plan_tasks(tasks, seed, split))
            for member in range(members)]
    own_env = isinstance(env, str)
    the_env = make(env, **(env_kwargs or {})) if isinstance(env, str) else env
    writer = EpisodeWriter(out) if out is not None else None
    done: dict[tuple[int, int], Episode] = {}
    queue = list(reversed(jobs))
    driver = _driver(policy)
    threads = concurrent.futures.ThreadPoolExecutor(_slot_count(the_env) + 2,
                                                    thread_name_prefix="agentgym-rollout")
    try:
        slots = _slots(the_env, threads)
        leaves = tree.leaves if tree is not None else 1
        with _progress_bar(progress, len(jobs) * leaves, slots[0].env_id) as advance:
            async def work(slot: _Slot) -> None:
                while queue:
                    job = queue.pop()
                    act, group = driver.for_episode(job.sampling_seed), f"{slot.env_id}:{job.group}"
                    played = (await _play_tree(slot, act, job, tree, history_window, group)
                              if tree is not None
                              else [await _play(slot, act, job, history_window, group)])
                    for member, episode in enumerate(played, start=job.member):
                        episode.metadata.update({**(metadata or {}), "run_id": run_id})
                        done[(job.index, member)] = episode
                        if writer:
                            writer.write(episode)
                        advance(episode)

            await asyncio.gather(*(work(slot) for slot in slots))
    finally:
        await driver.aclose()
        threads.shutdown(wait=False)
        if writer:
            writer.close()
        if own_env and isinstance(the_env, AgentEnv):
            the_env.close()
    return [done[key] for key in sorted(done)]


@dataclass
class _Fork:
    """A state a tree may branch at: before a reply, with how unsure that reply was."""

    surprisal: float
    snapshot: Any
    recorder: EpisodeRecorder
    leaf: str  # the episode id of the path it lies on
    taken: int = 1  # continuations from here so far


async def _grow_where_unsure(slot: _Slot, act: _Act, tree: Tree, recorder: EpisodeRecorder
                             ) -> list[Episode]:
    """Leaves until ``tree.leaves``, each branching at the least sure state of all paths.

    Every path is played to its end, keeping a snapshot before each reply; the next leaf
    starts at the kept state whose reply had the highest mean surprisal, and a state gives
    ``tree.width`` continuations at most (the first included).
    """
    leaves: list[Episode] = []
    forks: list[_Fork] = []
    while True:
        leaf, found = await _play_keeping_forks(slot, act, recorder)
        leaves.append(leaf)
        forks += found[1:] if leaves[1:] else found  # a branch's first state is its fork's
        open_forks = [fork for fork in forks if fork.taken < tree.width]
        if len(leaves) == tree.leaves or not open_forks:
            return leaves
        fork = max(open_forks, key=lambda f: f.surprisal)
        fork.taken += 1
        await slot.call("restore", fork.snapshot)
        recorder = fork.recorder.fork()
        recorder.episode.metadata["tree"] = {"parent": fork.leaf,
                                             "branch_turn": fork.recorder.turns}


async def _play_keeping_forks(slot: _Slot, act: _Act, recorder: EpisodeRecorder
                              ) -> tuple[Episode, list[_Fork]]:
    """Play to the end, keeping the state before each reply and the reply's surprisal."""
    forks: list[_Fork] = []
    while not recorder.done:
        here, before = (await slot.call("snapshot"))[0], recorder.fork()
        reply = await _take_turn(slot, act, recorder)
        if reply is not None:
            forks.append(_Fork(_surprisal(reply, act.policy), here, before,
                               recorder.episode.episode_id))
    return recorder.finish(), forks


def _surprisal(reply: Any, policy: Any) -> float:
    """The mean ``-log p`` of the reply's sampled tokens."""
    logprobs = getattr(reply, "logprobs", None)
    if not logprobs:
        raise InvalidOptionError(
            f"Tree(uncertain=True) branches where the policy was least sure, read from the "
            f"log-probs of its replies; {type(policy).__name__} reports none "
            "(TransformersPolicy and VLLMPolicy do). Branch at fixed turns instead: "
            "every=k or at=[turns].")
    return -float(np.mean(logprobs))


def _blocking(coroutine_function: Callable[..., Coroutine[Any, Any, Any]], name: str
              ) -> Callable[..., Any]:
    """``name``: runs ``coroutine_function`` to its end (same signature and docs)."""

    @functools.wraps(coroutine_function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return _run(coroutine_function(*args, **kwargs))

    run.__name__ = run.__qualname__ = name
    return run


rollout = _blocking(arollout, "rollout")


def tree_rollout(env: Any, policy: Callable[[Any], Any], tree: Tree, *,
                 tasks: int | Sequence[str] = 1, seed: int = 0, split: str | None = None,
                 run_id: str | None = None) -> tuple[list[Episode], TreeStats]:
    """Sample ``tasks`` groups as trees of ``tree.leaves`` leaves each, and their cost.

    ``rollout(env, policy, tree=tree, ...)`` without a progress bar, plus :class:`TreeStats`.
    """
    episodes = rollout(env, policy, tasks=tasks, seed=seed, split=split, tree=tree,
                       run_id=run_id, progress=False)
    return episodes, TreeStats.of(episodes)


@dataclass(frozen=True)
class _Job:
    index: int
    member: int
    task_seed: int | None
    options: dict[str, Any]
    group: str | None
    sampling_seed: int | None


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to the end, from synchronous code (even inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # a notebook's loop is busy
        return thread.submit(asyncio.run, coroutine).result()  # type: ignore[arg-type]


async def _play(slot: _Slot, act: _Act, job: _Job,
                history_window: int | None, group_id: str | None) -> Episode:
    """One episode in ``slot``: reset, then the policy and the env in turn until it ends."""
    recorder = await _start(slot, act, job, history_window, group_id)
    await _play_on(slot, act, recorder)
    return recorder.finish()


async def _start(slot: _Slot, act: _Act, job: _Job, history_window: int | None,
                 group_id: str | None) -> EpisodeRecorder:
    """A recorder for the job's episode, reset in ``slot`` (a failed reset is recorded)."""
    recorder = EpisodeRecorder(slot.env_id, slot.system_prompt, slot.encode,
                               seed=job.task_seed, group_id=group_id,
                               history_window=history_window,
                               metadata=describe(act.policy))
    try:
        recorder.begin(*(await slot.call("reset", seed=job.task_seed, options=job.options))[0])
        if getattr(act.policy, "native_tools", False):
            recorder.episode.tools = recorder.info.get("tools") or None
    except LifecycleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed reset is recorded, not raised
        recorder.fail("EnvError", _reason(exc))
    return recorder


async def _play_on(slot: _Slot, act: _Act, recorder: EpisodeRecorder,
                   pause: Callable[[EpisodeRecorder], bool] = lambda recorder: False) -> None:
    """The policy and the env in turn until the episode ends, or ``pause`` says to stop."""
    while not recorder.done and not pause(recorder):
        await _take_turn(slot, act, recorder)


async def _take_turn(slot: _Slot, act: _Act, recorder: EpisodeRecorder) -> Any:
    """Ask the policy, then step the env with its reply; the reply (``None``: it failed)."""
    started = time.perf_counter()
    try:
        reply = await act(recorder.conversation())
    except Exception as exc:  # noqa: BLE001 - a policy bug or a dead server is recorded
        recorder.fail("PolicyError", _reason(exc))
        return None
    policy_seconds = time.perf_counter() - started
    await _act_out(slot, recorder, _with_call_ids(reply, recorder.turns), policy_seconds)
    return reply


async def _play_tree(slot: _Slot, act: _Act, job: _Job, tree: Tree,
                     history_window: int | None, group_id: str | None) -> list[Episode]:
    """One group as a tree in ``slot``: its leaves, depth first (see :mod:`agentgym.tree`)."""
    recorder = await _start(slot, act, job, history_window, group_id)
    recorder.episode.metadata["tree"] = {"parent": None, "branch_turn": None}
    if tree.uncertain:
        return await _grow_where_unsure(slot, act, tree, recorder)
    return await _grow(slot, act, tree, recorder, tree.leaves)


async def _grow(slot: _Slot, act: _Act, tree: Tree, recorder: EpisodeRecorder, leaves: int,
                split_at: int = -1) -> list[Episode]:
    """Play on until the episode ends (one leaf) or reaches a branch turn (``leaves`` below).

    ``split_at``: the turn this path was split at (it splits again only after a step).
    """
    def branches(now: EpisodeRecorder) -> bool:
        return leaves > 1 and now.turns != split_at and tree.branches_at(now.turns)

    await _play_on(slot, act, recorder, pause=branches)
    if recorder.done:
        return [recorder.finish()]
    return await _split(slot, act, tree, recorder, leaves)


async def _split(slot: _Slot, act: _Act, tree: Tree, recorder: EpisodeRecorder,
                 leaves: int) -> list[Episode]:
    """Continuations of this state sharing ``leaves`` leaves, ``tree.width`` of them or more.

    Each continuation restores the snapshot taken here. The first leaf is the parent of the
    others (their first turns are its turns). A continuation that ends before it can use
    its share of leaves leaves them to the next ones, and more continuations start here
    until every leaf is sampled.
    """
    here, turn = (await slot.call("snapshot"))[0], recorder.turns
    grown: list[Episode] = []
    continuations_left = tree.width
    while len(grown) < leaves:
        share = -(-(leaves - len(grown)) // max(continuations_left, 1))  # ceiling
        await slot.call("restore", here)
        child = recorder.fork()
        if grown:
            child.episode.metadata["tree"] = {"parent": grown[0].episode_id,
                                              "branch_turn": turn}
        grown += await _grow(slot, act, tree, child, share, split_at=turn)
        continuations_left -= 1
    return grown


async def _act_out(slot: _Slot, recorder: EpisodeRecorder, reply: Any,
                   policy_seconds: float) -> None:
    """Step the env with a reply: its text, or each of its tool calls in order."""
    text = getattr(reply, "text", reply)  # a Reply also carries token ids and tool calls
    calls = getattr(reply, "tool_calls", None) or []
    for k, action in (enumerate(c.to_dict() for c in calls) if calls else [(None, text)]):
        try:
            step, env_seconds = await slot.call("step", action)
        except LifecycleError:
            raise
        except Exception as exc:  # noqa: BLE001 - an engine crash is recorded, not raised
            recorder.fail("EnvError", _reason(exc))
            return
        recorder.record(text if calls else action, step, policy_seconds if not k else 0.0,
                        env_seconds, sampled=reply, call=k)
        if recorder.done:
            return  # the episode ended: the reply's remaining calls are not run


def _with_call_ids(reply: Any, turn: int) -> Any:
    """The reply, its tool calls given ids where the policy gave none (``call_<turn>_<k>``)."""
    calls = getattr(reply, "tool_calls", None) or []
    if all(c.id for c in calls):
        return reply
    named = [c if c.id else ToolCall(c.name, c.arguments, id=f"call_{turn}_{k}")
             for k, c in enumerate(calls)]
    return dataclasses.replace(reply, tool_calls=named)


def _call_record(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _SlotError) else f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------ slots
class _SlotError(Exception):
    """A slot's call failed; the message is the reason as the slot gives it."""


class _Slot:
    """Where episodes run: ``call(method, ...)`` returns ``(value, env_seconds)``."""

    env_id: str
    system_prompt: str
    encode: Callable[[Any], str]

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        raise NotImplementedError


class _EnvSlot(_Slot):
    """An env object in this process (a local env, or a remote env's client)."""

    def __init__(self, env: AgentEnv, threads: concurrent.futures.Executor) -> None:
        self.env, self.threads = env, threads
        self.env_id = getattr(env.unwrapped, "env_id", "") or type(env.unwrapped).__name__
        self.system_prompt, self.encode = env.system_prompt(), env.protocol.encode

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        run = functools.partial(_timed, getattr(self.env, method), *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.threads, run)


def _timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - started


class _PoolSlot(_Slot):
    """One env of a pool; a shared pump hands each slot the result of its call."""

    def __init__(self, pump: _PoolPump, index: int) -> None:
        self.pump, self.index = pump, index
        pool = pump.pool
        self.env_id = pool.call(index, "env_id")
        self.system_prompt = pool.call(index, "system_prompt")
        self.encode = pool.call(index, "protocol").encode

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        result = await self.pump.call(self.index, method, *args, **kwargs)
        if not result.ok:
            raise _SlotError(result.error or "unknown")
        return result.value, result.env_seconds


class _PoolPump:
    """Submits a pool's calls and polls it until every submitted call has its result.

    Polling runs in the loop's thread: pools are not thread-safe.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.waiting: dict[int, asyncio.Future] = {}
        self.task: asyncio.Task | None = None

    async def call(self, env: int, method: str, *args: Any, **kwargs: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting[env] = future
        self.pool.submit(env, method, *args, **kwargs)  # type: ignore[arg-type]
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._pump())
        return await future

    async def _pump(self) -> None:
        pause = 0.001  # each poll walks the workers: a 1-5 ms pause keeps it cheap
        while self.waiting:
            results = self.pool.wait(timeout=0)
            for result in results:
                self.waiting.pop(result.env).set_result(result)
            pause = 0.001 if results else min(pause * 2, 0.005)
            await asyncio.sleep(pause)


def _slot_count(env: Any) -> int:
    from agentgym.pool import Pool

    return len(env) if isinstance(env, (Pool, list, tuple)) else 1


def _slots(env: Any, threads: concurrent.futures.Executor) -> list[_Slot]:
    from agentgym.pool import Pool

    if isinstance(env, Pool):
        pump = _PoolPump(env)
        return [_PoolSlot(pump, i) for i in range(len(env))]
    if isinstance(env, (list, tuple)):
        return [_EnvSlot(e, threads) for e in env]
    return [_EnvSlot(env, threads)]


# ------------------------------------------------------------------------------ policies
class _Driver:
    """Drives one policy for a rollout; ``for_episode(seed)`` gives an episode's ``act``."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def for_episode(self, seed: int | None) -> _Act:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the policy holds for this event loop (async clients)."""
        close = getattr(self.policy, "aclose", None)
        if callable(close):
            await close()


def _driver(policy: Any) -> _Driver:
    if callable(getattr(policy, "acall", None)):
        return _AsyncDriver(policy)
    if callable(getattr(policy, "generate", None)):
        return _BatchDriver(policy)
    return _ThreadDriver(policy)


def _reseeded(policy: Any, seed: int | None) -> Any:
    """The policy for one episode: a reseeded copy, so interleaved episodes stay reproducible."""
    if seed is None or not isinstance(policy, SeededPolicy):
        return policy
    own = copy.copy(policy)
    own.reseed(seed)
    return own


class _AsyncDriver(_Driver):
    """A policy with ``async acall(conversation)``: awaited, so calls overlap."""

    def for_episode(self, seed: int | None) -> _Act:
        own = _reseeded(self.policy, seed)
        return _Act(own.acall, own)


class _ThreadDriver(_Driver):
    """A plain callable: called in a thread (the loop stays free), one call at a time."""

    def __init__(self, policy: Any) -> None:
        super().__init__(policy)
        self.lock = asyncio.Lock()

    def for_episode(self, seed: int | None) -> _Act:
        own = _reseeded(self.policy, seed)

        async def act(conversation: Conversation) -> str:
            async with self.lock:
                return await asyncio.to_thread(own, conversation)

        return _Act(act, own)


class _BatchDriver(_Driver):
    """A policy with ``generate(conversations)``: one call answers every waiting episode.

    Calls never overlap; episodes that ask while one runs go into the next.
    """

    def __init__(self, policy: Any) -> None:
        super().__init__(policy)
        self.lock = asyncio.Lock()
        self.waiting: list[tuple[Conversation, asyncio.Future]] = []

    def for_episode(self, seed: int | None) -> _Act:
        return _Act(self.ask, self.policy)

    async def ask(self, conversation: Conversation) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((conversation, future))
        await self._flush()
        return await future

    async def _flush(self) -> None:
        async with self.lock:
            for _ in range(3):  # let every episode that is ready join this batch
                await asyncio.sleep(0)
            batch, self.waiting = self.waiting, []
            if not batch:
                return
            try:
                replies = await asyncio.to_thread(self.policy.generate, [c for c, _ in batch])
            except Exception as exc:  # noqa: BLE001 - fails the episodes it served
                for _, future in batch:
                    future.set_exception(exc)
                return
            for (_, future), reply in zip(batch, replies, strict=True):
                future.set_result(reply)  # the whole generation: text, token ids, log-probs


@dataclass(frozen=True)
class _Act:
    """An episode's way to ask for an action, and the policy it speaks for."""

    ask: Callable[[Conversation], Awaitable[str]]
    policy: Any

    async def __call__(self, conversation: Conversation) -> str:
        return await self.ask(conversation)


def plan_tasks(tasks: int | Sequence[str], seed: int, split: str | None
               ) -> list[tuple[int, dict]]:
    """``(reset seed, reset options)`` of each task a rollout plays (task ``i``: seed + i)."""
    base = {"split": split} if split else {}
    if isinstance(tasks, int):
        return [(seed + i, dict(base)) for i in range(tasks)]
    return [(seed + i, {**base, "task_id": task_id}) for i, task_id in enumerate(tasks)]


class _progress_bar:
    """A rich progress bar showing the running success rate, or nothing."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self.enabled, self.total, self.name = enabled, total, name
        self.wins = self.done = 0

    def __enter__(self) -> Callable[[Episode], None]:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=self.total)
        return self.advance

    def advance(self, episode: Episode) -> None:
        self.done += 1
        self.wins += episode.outcome.success
        if self.enabled:
            self.bar.update(self.task, advance=1,
                            description=f"{self.name} success {self.wins / self.done:.0%}")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
