"""The conversation a policy sees, built one way for rollout and for training.

A chat is: the env's system prompt; one user message with the task and the first
observation; then, per reply, the assistant message (its text, or its tool calls) and what
the env answered (a user message, or one ``role: "tool"`` message per call). A history
window keeps the system prompt, the opening message and the last ``history_window``
replies with their answers.

The rollout appends to a chat as the episode runs (:func:`observation_message`,
:func:`reply_message`) and shows the policy :func:`windowed` of it; tokenisation rebuilds the
same chat from the finished :class:`~agentgym.records.Episode` (:func:`episode_messages`) and,
for each reply, the context that reply was generated from (:func:`reply_contexts`), with the
window the episode recorded. So training sees the context the policy saw.
"""

from __future__ import annotations

from typing import Any

from agentgym.records import Episode, Turn

Message = dict[str, Any]


def first_user_message(instruction: str, observation: str) -> str:
    """The opening user message: the task, then the first observation."""
    if not instruction or instruction in observation:
        return observation
    return f"Task: {instruction}\n\n{observation}"


def observation_message(text: str, answers: str | None) -> Message:
    """An observation as a chat message: a tool result answering call ``answers``, or user text."""
    if answers is None:
        return {"role": "user", "content": text}
    return {"role": "tool", "tool_call_id": answers, "content": text}


def reply_message(turn: Turn) -> list[Message]:
    """The assistant message a turn's action was, or ``[]`` for a further call of one reply.

    Tool calls are written as OpenAI chat messages carry them, their arguments as objects
    (what chat templates render; a client sends them as JSON strings).
    """
    if turn.tool_calls is None and turn.tool_call_id is not None:
        return []  # its call is listed on the turn whose reply made it
    message: Message = {"role": "assistant", "content": turn.action}
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in turn.tool_calls]
    return [message]


def windowed(messages: list[Message], history_window: int | None) -> list[Message]:
    """Keep the system prompt, the opening message, and the last ``history_window`` replies.

    A kept reply is an assistant message and everything after it up to the next one (its
    observation, or its tool results), so a tool result never loses the call it answers.
    ``messages`` must start with the system prompt.
    """
    if history_window is None:
        return list(messages)
    head, rest = messages[:2], messages[2:]
    starts = [i for i, m in enumerate(rest) if m["role"] == "assistant"]
    if history_window == 0 or not starts:
        return head
    return head + rest[starts[-min(history_window, len(starts))]:]


def episode_messages(episode: Episode) -> list[Message]:
    """The whole episode as one chat (the final observation left out).

    An empty system prompt is left out, as the rollout's policy templates treat it: a chat
    template given none adds its own.
    """
    return _without_empty_system(_chat(episode), episode.system_prompt)


def _chat(episode: Episode) -> list[Message]:
    messages = [{"role": "system", "content": episode.system_prompt}]
    for turn in episode.turns:
        if turn.index == 0:
            messages.append({"role": "user", "content": first_user_message(
                episode.instruction, turn.observation)})
        else:
            answered = episode.turns[turn.index - 1].tool_call_id
            messages.append(observation_message(turn.observation, answered))
        messages += reply_message(turn)
    return messages


def reply_contexts(episode: Episode) -> list[list[Message]]:
    """Per reply, the chat it was generated from (under the episode's window) and the reply.

    Each context ends with the assistant message; an empty system prompt is left out, as a
    chat template given none would add its own.
    """
    messages = _chat(episode)
    contexts = [windowed(messages[:k], episode.history_window) + [message]
                for k, message in enumerate(messages) if message["role"] == "assistant"]
    return [_without_empty_system(c, episode.system_prompt) for c in contexts]


def window_cut(episode: Episode) -> bool:
    """Whether the window hid earlier turns from some reply (then no one chat shows them all)."""
    whole = episode_messages(episode)
    return any(context != whole[:len(context)] for context in reply_contexts(episode))


def _without_empty_system(messages: list[Message], system_prompt: str) -> list[Message]:
    return messages if system_prompt else messages[1:]
