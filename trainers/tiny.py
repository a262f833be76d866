"""Tiny tokenizers built locally: no download, a real byte-level BPE under a ChatML template.

Used by the tests and by CPU smoke runs; real runs load a real model's tokenizer instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentgym.errors import MissingDependencyError

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_chatml_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with a ChatML chat template.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` (``<|im_end|>`` ends each turn).
    """
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingDependencyError("transformers", "train") from exc

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                      pad_token="<|pad|>", bos_token=None, unk_token=None)
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped
