"""Tiny tokenizers built locally: no download, a real byte-level BPE under a real chat format.

Used by the tests and by CPU smoke runs; real runs load a real model's tokenizer instead.
Three chat formats, each with the special tokens its real models use:

* ``"chatml"``: ChatML (``<|im_start|>role ... <|im_end|>``), no tools;
* ``"hermes"``: ChatML with tools as Qwen2.5 and Hermes models write them: the schemas in
  ``<tools>`` in the system message, each call as ``<tool_call>{json}</tool_call>``, results
  as ``<tool_response>`` blocks in a user message (what ``vllm serve --tool-call-parser
  hermes`` parses; ``<tool_call>`` is a token of the vocabulary, as that parser requires);
* ``"llama3"``: Llama-3.1 headers (``<|start_header_id|>role<|end_header_id|>``,
  ``<|eot_id|>``), the schemas in the first user message, a call as a bare
  ``{"name", "parameters"}`` JSON reply, results in the ``ipython`` role (one call a reply,
  as Llama 3.1 allows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from agentgym.errors import InvalidOptionError, MissingDependencyError

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
HERMES_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
LLAMA3_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>", "<|python_tag|>", "<|pad|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# arguments arrive as objects from our records and as JSON text from OpenAI-style clients
_ARGUMENTS = ("{% if call.function.arguments is string %}{{ call.function.arguments }}"
              "{% else %}{{ call.function.arguments | tojson }}{% endif %}")

HERMES_TEMPLATE = (
    "{% set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' "
    "else none %}"
    "{% if tools %}<|im_start|>system\n{% if system %}{{ system }}\n\n{% endif %}# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{% elif system is not none %}<|im_start|>system\n{{ system }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and loop.first %}"
    "{% elif message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{{ message['content'] or '' }}"
    "{% for call in message['tool_calls'] or [] %}"
    "{% if message['content'] or not loop.first %}\n{% endif %}"
    '<tool_call>\n{"name": "{{ call.function.name }}", "arguments": ' + _ARGUMENTS
    + "}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message['role'] == 'tool' %}"
    "{% if loop.first or loop.previtem['role'] != 'tool' %}<|im_start|>user{% endif %}"
    "\n<tool_response>\n{{ message['content'] }}\n</tool_response>"
    "{% if loop.last or loop.nextitem['role'] != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAMA3_TEMPLATE = (
    "<|begin_of_text|>"
    "{% set ns = namespace(tools_said=false) %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and message['tool_calls'] %}"
    "{% if message['tool_calls'] | length > 1 %}"
    "{{ raise_exception('This format takes one tool call per reply.') }}{% endif %}"
    "{% set call = message['tool_calls'][0] %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
    '{"name": "{{ call.function.name }}", "parameters": ' + _ARGUMENTS + "}<|eot_id|>"
    "{% elif message['role'] == 'tool' %}"
    "<|start_header_id|>ipython<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>"
    "{% else %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if tools and message['role'] == 'user' and not ns.tools_said %}"
    "{% set ns.tools_said = true %}"
    "Given the following functions, please respond with a JSON for a function call with "
    "its proper arguments that best answers the given prompt.\n\nRespond in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}. '
    "Do not use variables.\n\n{% for tool in tools %}{{ tool | tojson }}\n\n{% endfor %}"
    "{% endif %}{{ message['content'] }}<|eot_id|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
"""How Qwen2's tokenizer splits text into words before byte-level BPE."""

ChatFormat = Literal["chatml", "hermes", "llama3"]

_FORMATS: dict[str, tuple[str, list[str], list[str], str]] = {
    # format: (template, special tokens, plain added tokens, end-of-turn token)
    "chatml": (CHATML_TEMPLATE, SPECIAL_TOKENS, [], "<|im_end|>"),
    "hermes": (HERMES_TEMPLATE, SPECIAL_TOKENS, HERMES_TOKENS, "<|im_end|>"),
    "llama3": (LLAMA3_TEMPLATE, LLAMA3_SPECIAL_TOKENS, [], "<|eot_id|>"),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048,
                    chat_format: ChatFormat = "chatml") -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with a chat template.

    Args:
        texts: What to learn merges from.
        vocab_size: Vocabulary size, special and added tokens included.
        chat_format: ``"chatml"``, ``"hermes"`` (tool calls) or ``"llama3"`` (tool calls).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` whose eos is the format's end of turn.
    """
    if chat_format not in _FORMATS:
        raise InvalidOptionError(f"chat_format must be one of {sorted(_FORMATS)}, got "
                                 f"{chat_format!r}.")
    try:
        from tokenizers import (
            AddedToken,
            Regex,
            Tokenizer,
            decoders,
            models,
            normalizers,
            pre_tokenizers,
            trainers,
        )
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingDependencyError("transformers", "train") from exc

    template, special, plain, end = _FORMATS[chat_format]
    tokenizer = Tokenizer(models.BPE())
    # Qwen2's own pipeline: saved beside a Qwen2 model's config.json, the tokenizer reloads
    # as a Qwen2Tokenizer, which imposes it; any other would encode differently once loaded
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(plain), special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    # tool-call tags are whole tokens but not special: decoding keeps them in the text
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=end,
                                      pad_token="<|pad|>", bos_token=None, unk_token=None)
    wrapped.chat_template = template
    return wrapped


def train_chatml_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Any:
    """:func:`train_tokenizer` with the ChatML format."""
    return train_tokenizer(texts, vocab_size)
