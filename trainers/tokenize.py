"""Multi-turn tokenisation: an episode becomes token ids, a loss mask and per-token advantages.

The episode is rendered as chat messages (built by :mod:`agentgym.chat`, as the rollout built
them) with the tokenizer's own chat template. The loss
mask is 1 exactly on what the model generated: each assistant message's text and its
end-of-turn token (``<|im_end|>`` under ChatML); 0 on everything the environment or the
template wrote. Per-turn advantages are broadcast to their turn's generated tokens.

Each assistant message is tokenised on its own, as it was generated after its prompt, so
the masked-in tokens decode back to exactly the assistant text. When a turn carries the ids
its sampler produced (``Turn.token_ids``: token-in/token-out), those ids are used as they are,
followed by the template's end-of-turn token if the sampler did not emit it: the tokens
trained on are the tokens sampled, even where re-encoding the text would give other ids.
Two layouts:

* ``"concatenated"``: one sequence per episode (meow-tea-taro's ``response_mask``);
* ``"per_turn"``: one row per reply, the context it was generated from as the prompt
  (verl-agent). When the rollout used a history window (``Episode.history_window``), each
  row's prompt is that reply's windowed context, so training sees what the policy saw; a
  windowed episode cannot be one sequence, and ``"concatenated"`` refuses it.

Truncation to ``max_length`` is explicit: ``truncation="error"`` (default) raises;
``"drop_turns"`` keeps whole turns that fit and lists the dropped ones in ``dropped_turns``,
so no reward-bearing turn disappears unreported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentgym.chat import episode_messages, reply_contexts, reply_message, window_cut
from agentgym.errors import AgentGymError
from agentgym.records import Episode, Turn


class TokenizationError(AgentGymError, ValueError):
    """An episode that cannot be tokenised as asked (too long, template not prefix-stable)."""


@dataclass
class TokenizedSequence:
    """One training row.

    Attributes:
        input_ids: Token ids.
        loss_mask: 1 on generated tokens, 0 elsewhere.
        advantages: The turn's advantage on its generated tokens, 0 elsewhere.
        turn_ids: The turn each token was generated in, -1 for environment/template tokens.
        episode_id: The episode the row comes from.
        dropped_turns: Turns left out by truncation.
        sampler_logprobs: The sampler's log-probability of each token it produced, NaN for
            every other token (what the trainer compares its own log-probs with).
    """

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    turn_ids: list[int] = field(default_factory=list)
    episode_id: str = ""
    dropped_turns: list[int] = field(default_factory=list)
    sampler_logprobs: list[float] = field(default_factory=list)

    def extend(self, ids: list[int], turn: int | None, advantage: float = 0.0,
               sampler: Sequence[float] = ()) -> None:
        """Append tokens: generated ones (``turn`` given) or environment/template ones."""
        self.input_ids += ids
        self.loss_mask += [0 if turn is None else 1] * len(ids)
        self.advantages += [0.0 if turn is None else advantage] * len(ids)
        self.turn_ids += [-1 if turn is None else turn] * len(ids)
        known = list(sampler)[:len(ids)]
        self.sampler_logprobs += known + [math.nan] * (len(ids) - len(known))

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class _Piece:
    text: str
    turn: int | None  # the reply's number; None: written by the environment or the template
    end: str = ""  # the special token that closed a generated piece


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool,
            tools: list[dict[str, Any]] | None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def _split_generated(tokenizer: Any, generated: str) -> tuple[str, str, str]:
    """(text up to the end-of-turn token, that token, template text after it)."""
    hits = [(generated.find(tok), tok) for tok in tokenizer.all_special_tokens
            if tok and generated.find(tok) >= 0]
    if not hits:
        raise TokenizationError(
            "The chat template closes an assistant message with no special token, so the "
            "end of the generated text cannot be found; use a template with an end-of-turn "
            "token (ChatML's <|im_end|>)."
        )
    at, token = min(hits)
    return generated[:at], token, generated[at + len(token):]


def pieces(tokenizer: Any, messages: list[dict[str, Any]],
           tools: list[dict[str, Any]] | None = None) -> list[_Piece]:
    """The rendered chat cut into environment/template pieces and generated pieces.

    ``tools``: the schemas the policy was given, rendered by the template as it did then.
    """
    out: list[_Piece] = []
    done = ""
    reply = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:k], True, tools)
        full = _render(tokenizer, messages[:k + 1], False, tools)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise TokenizationError(
                "The chat template is not prefix-stable (rendering more messages changes "
                "earlier text), so turns cannot be cut out of one sequence; use the "
                "'per_turn' layout."
            )
        body, end, after = _split_generated(tokenizer, full[len(prompt):])
        out += [_Piece(prompt[len(done):], None), _Piece(body + end, reply, end)]
        if after:
            out.append(_Piece(after, None))
        done = full
        reply += 1
    return out


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _piece_ids(tokenizer: Any, piece: _Piece, turn: Turn | None
               ) -> tuple[list[int], list[float]]:
    """A piece's token ids, and the sampler's log-probs of those it sampled.

    A generated piece whose turn recorded its sampled ids gets exactly those ids, then the
    template's end-of-turn token unless the sampler emitted it. (A text action must be the
    text the ids were sampled as; a tool-call reply is rendered by the template from the
    parsed calls, so only the ids say what was sampled.)
    """
    if turn is None or not turn.token_ids or (
            turn.tool_calls is None and not piece.text.startswith(turn.action)):
        return _ids(tokenizer, piece.text), []
    sampled, logprobs = list(turn.token_ids), list(turn.logprobs or [])
    end = _ids(tokenizer, piece.end)
    if end and sampled[-len(end):] == end:
        return sampled, logprobs  # the sampler emitted it
    return sampled + end, logprobs


def tokenize_episode(
    episode: Episode,
    tokenizer: Any,
    advantages: Sequence[float] | None = None,
    *,
    layout: Literal["concatenated", "per_turn"] = "concatenated",
    max_length: int | None = None,
    truncation: Literal["error", "drop_turns"] = "error",
    context_turns: int = 0,
) -> list[TokenizedSequence]:
    """Token ids, loss mask and per-token advantages of one episode.

    A reply whose tool calls the env ran as several turns is one generated piece: its
    tokens get the mean of those turns' advantages and the first turn's id.

    Args:
        episode: The episode.
        tokenizer: A Hugging Face tokenizer with a chat template.
        advantages: One value per turn (zeros if omitted).
        layout: ``"concatenated"`` (one row) or ``"per_turn"`` (one row per turn).
        max_length: Longest row allowed, in tokens.
        truncation: ``"error"`` or ``"drop_turns"`` (see the module docstring).
        context_turns: The first turns are context, not trained: another row trains them
            (a tree leaf's turns shared with its parent, see :mod:`trainers.tree_credit`).

    Returns:
        The rows: one for ``"concatenated"``, one per kept turn for ``"per_turn"``.
    """
    advantages = list(advantages) if advantages is not None else [0.0] * episode.num_turns
    if len(advantages) != episode.num_turns:
        raise TokenizationError(f"Episode {episode.episode_id} has {episode.num_turns} turns "
                                f"but {len(advantages)} advantages.")
    replies = _reply_spans(episode)
    values = [sum(advantages[a:b]) / (b - a) for a, b in replies]
    if layout == "per_turn":
        rows = [_reply_row(_parts(tokenizer, context, episode, replies, values, reply),
                           episode.episode_id)
                for reply, context in enumerate(reply_contexts(episode))]
    else:
        if window_cut(episode):
            raise TokenizationError(
                f"Episode {episode.episode_id} was played with history_window="
                f"{episode.history_window}, so its replies saw different contexts and no one "
                "sequence shows each what it saw; use layout='per_turn'.")
        row = TokenizedSequence(episode_id=episode.episode_id)
        for turn, ids, sampler, advantage in _parts(tokenizer, episode_messages(episode),
                                                    episode, replies, values,
                                                    len(replies) - 1):
            row.extend(ids, turn, advantage, sampler)
        rows = [row]
    rows = _fit(rows, max_length, truncation, episode)
    return [row for row in rows if _untrain(row, context_turns)] if context_turns else rows


def _untrain(row: TokenizedSequence, turns: int) -> bool:
    """Mask the row's tokens generated before turn ``turns``; whether it still trains any."""
    for k, turn in enumerate(row.turn_ids):
        if 0 <= turn < turns:
            row.loss_mask[k], row.advantages[k], row.turn_ids[k] = 0, 0.0, -1
    return any(row.loss_mask)


_Part = tuple[int | None, list[int], list[float], float]  # (turn, ids, sampler log-probs, adv)


def _reply_spans(episode: Episode) -> list[tuple[int, int]]:
    """Per reply, its turns ``[first, stop)`` (a reply's tool calls run as several turns)."""
    openers = [t.index for t in episode.turns if reply_message(t)]
    return list(zip(openers, [*openers[1:], episode.num_turns], strict=True))


def _parts(tokenizer: Any, messages: list[dict[str, Any]], episode: Episode,
           replies: list[tuple[int, int]], values: list[float], last_reply: int) -> list[_Part]:
    """The chat's pieces as token ids; ``last_reply``: the number of the chat's last reply."""
    chunks = pieces(tokenizer, messages, episode.tools)
    first_reply = last_reply - sum(c.turn is not None for c in chunks) + 1
    parts: list[_Part] = []
    for piece in chunks:
        if piece.turn is None:
            parts.append((None, *_piece_ids(tokenizer, piece, None), 0.0))
            continue
        reply = first_reply + piece.turn
        first = replies[reply][0]
        parts.append((first, *_piece_ids(tokenizer, piece, episode.turns[first]), values[reply]))
    return parts


def _reply_row(parts: list[_Part], episode_id: str) -> TokenizedSequence:
    """The chat's last reply trained on, everything before it as its prompt."""
    last = max(i for i, part in enumerate(parts) if part[0] is not None)
    row = TokenizedSequence(episode_id=episode_id)
    for _, ids, _, _ in parts[:last]:
        row.extend(ids, None)
    turn, ids, sampler, advantage = parts[last]
    row.extend(ids, turn, advantage, sampler)
    return row


def _fit(rows: list[TokenizedSequence], max_length: int | None, truncation: str,
         episode: Episode) -> list[TokenizedSequence]:
    if max_length is None or all(len(r) <= max_length for r in rows):
        return rows
    if truncation == "error":
        longest = max(len(r) for r in rows)
        raise TokenizationError(
            f"Episode {episode.episode_id} needs {longest} tokens; max_length is {max_length}. "
            "Raise max_length, shorten the history, or pass truncation='drop_turns' to keep "
            "the whole turns that fit (the dropped turns are listed)."
        )
    kept = [r for r in rows if len(r) <= max_length]
    if len(rows) > 1:  # per_turn: drop the rows that do not fit
        dropped = sorted({t for r in rows if len(r) > max_length for t in r.turn_ids if t >= 0})
        for r in kept:
            r.dropped_turns = dropped
        return kept
    return [_cut_to_whole_turns(rows[0], max_length, episode.num_turns)]


def _cut_to_whole_turns(row: TokenizedSequence, max_length: int, n_turns: int
                        ) -> TokenizedSequence:
    end = 0  # keep through the last generated token of the last turn that fits entirely
    for i in range(min(len(row), max_length)):
        nxt = row.turn_ids[i + 1] if i + 1 < len(row) else -1
        if row.turn_ids[i] >= 0 and nxt != row.turn_ids[i]:
            end = i + 1
    kept_turns = sorted({t for t in row.turn_ids[:end] if t >= 0})
    return TokenizedSequence(row.input_ids[:end], row.loss_mask[:end], row.advantages[:end],
                             row.turn_ids[:end], row.episode_id,
                             [t for t in range(n_turns) if t not in kept_turns],
                             row.sampler_logprobs[:end])
