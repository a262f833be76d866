"""``TransformersPolicy``: a local causal LM as a policy, batched over waiting episodes.

``generate(conversations)`` renders each conversation with the tokenizer's chat template,
samples continuations for all of them in one left-padded batch, and returns each
:class:`~agentgym.policies.Reply`: the text (and tool calls), the generated token ids and
their log-probabilities. Calling the policy on one conversation
is the same with a batch of one. torch and transformers are imported only here.
"""

from __future__ import annotations

import inspect
from typing import Any

from agentgym.policies import Conversation, Reply
from agentgym.tool_text import ToolParser, read_tool_calls


class BatchPolicy:
    """A policy that samples many conversations at once; calling it samples one.

    With ``tool_parser`` set (``"hermes"`` or ``"llama3"``, matching the model's chat
    template), the policy calls tools natively: the template renders the env's tools, and
    each sampled reply's tool calls are read from its text into :attr:`Reply.tool_calls`.
    """

    tool_parser: ToolParser | None = None

    @property
    def native_tools(self) -> bool:
        """Whether the env's tools go to the template and replies are read for calls."""
        return self.tool_parser is not None

    def __call__(self, conversation: Conversation) -> Reply:
        """The reply to one conversation."""
        return self.generate([conversation])[0]

    def generate(self, conversations: list[Conversation]) -> list[Reply]:
        """One reply per conversation."""
        raise NotImplementedError

    def prompts(self, tokenizer: Any, conversations: list[Conversation]) -> list[str]:
        """Each conversation rendered by the chat template (with the tools when native)."""
        return [tokenizer.apply_chat_template(
            c.messages, tools=(c.tools or None) if self.native_tools else None,
            tokenize=False, add_generation_prompt=True) for c in conversations]

    def reply(self, text: str, token_ids: list[int], logprobs: list[float]) -> Reply:
        """A sampled reply, its tool calls read from the text when native."""
        if self.tool_parser is None:
            return Reply(text, token_ids=token_ids, logprobs=logprobs)
        content, calls = read_tool_calls(text, self.tool_parser)
        return Reply(content if calls else text, calls, token_ids, logprobs)


class TransformersPolicy(BatchPolicy):
    """Sample actions from a local model.

    Args:
        model: A ``transformers`` causal LM.
        tokenizer: Its tokenizer, with a chat template and an end-of-turn (eos) token.
        temperature: Sampling temperature (0 for greedy).
        top_p: Nucleus sampling.
        max_new_tokens: Longest reply.
        stop: Extra strings that end a reply (cut off after generation).
        seed: Seed of the policy's own torch generator.
        tool_parser: ``"hermes"`` or ``"llama3"`` to call the env's tools natively (see
            :class:`BatchPolicy`); ``None``: actions are the reply's text.
    """

    def __init__(self, model: Any, tokenizer: Any, *, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 48, stop: list[str] | None = None,
                 seed: int = 0, tool_parser: ToolParser | None = None) -> None:
        import torch

        self.tool_parser = tool_parser
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.stop = stop or []
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        """Reset the sampling generator."""
        self.generator.manual_seed(seed)

    def generate(self, conversations: list[Conversation]) -> list[Reply]:
        """Sample one reply per conversation, all in one batch."""
        import torch

        prompts = self.prompts(self.tokenizer, conversations)
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            tokens, logprobs = self._sample(input_ids, attention)
        self.model.train(was_training)
        return [self._finish(t, lp) for t, lp in zip(tokens, logprobs)]

    def _sample(self, input_ids: Any, attention: Any) -> tuple[list[list[int]], list[list[float]]]:
        import torch

        eos = self.tokenizer.eos_token_id
        batch = input_ids.shape[0]
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        done = torch.zeros(batch, dtype=torch.bool)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                         use_cache=True)
        cache_name = _cache_keyword(self.model)
        for _ in range(self.max_new_tokens):
            logits = out.logits[:, -1, :].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            choice = self._choose(logits)
            for b in range(batch):
                if not done[b]:
                    tokens[b].append(int(choice[b]))
                    logprobs[b].append(float(log_probs[b, choice[b]]))
            done |= choice == eos
            if self.stop:  # a stop string ends a reply as the end-of-turn token does
                for b in range(batch):
                    if not done[b] and self._stopped(tokens[b]):
                        done[b] = True
            if bool(done.all()):
                break
            attention = torch.cat([attention, torch.ones(batch, 1, dtype=attention.dtype)], -1)
            positions = positions[:, -1:] + 1
            out = self.model(input_ids=choice[:, None], attention_mask=attention,
                             position_ids=positions, use_cache=True,
                             **{cache_name: getattr(out, cache_name)})
        return tokens, logprobs

    def _stopped(self, tokens: list[int]) -> bool:
        tail = self.tokenizer.decode(tokens[-8:], skip_special_tokens=True)
        return any(stop in tail for stop in self.stop)

    def _choose(self, logits: Any) -> Any:
        import torch

        if self.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(-1, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < self.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)

    def _finish(self, tokens: list[int], logprobs: list[float]) -> Reply:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in self.stop:
            if stop in text:
                text = text[:text.index(stop) + len(stop)]
        return self.reply(text, tokens, logprobs)

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "transformers", "model": type(self.model).__name__,
                "sampling": {"temperature": self.temperature, "top_p": self.top_p,
                             "max_new_tokens": self.max_new_tokens},
                "tool_parser": self.tool_parser}


def _cache_keyword(model: Any) -> str:
    """What ``model.forward`` calls its key-value cache.

    transformers 5.25 renamed ``past_key_values`` (in arguments and outputs) to ``cache``
    and warns on the old name; earlier versions know only the old one.
    """
    return "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
