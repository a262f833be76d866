"""Models for training: a tiny random-initialised causal LM built locally, or a local checkpoint.

No model can be downloaded here, so ``tiny`` builds a Qwen2-architecture model of a few
hundred thousand parameters with a byte-level BPE tokenizer trained on the env's own text
(system prompt, observations, expert actions). Real runs pass a local model folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentgym.errors import InvalidOptionError, MissingDependencyError
from trainers.tiny import train_chatml_tokenizer


def quiet_transformers() -> Any:
    """The transformers module, with its progress bars off (checkpoints here are tiny)."""
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError("transformers", "train") from exc
    transformers.utils.logging.disable_progress_bar()  # no bars for tiny checkpoints
    return transformers


def tiny_model(tokenizer: Any, *, hidden: int = 64, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, seed: int = 0) -> Any:
    """A random-initialised Qwen2-style causal LM sized for CPU tests and smoke runs."""
    import torch

    transformers = quiet_transformers()
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng():  # a seeded init that leaves the caller's generator alone
        torch.manual_seed(seed)
        return transformers.AutoModelForCausalLM.from_config(config)


def tiny_from_texts(texts: Iterable[str], vocab_size: int = 1024, seed: int = 0,
                    **model_kwargs: Any) -> tuple[Any, Any]:
    """A tokenizer trained on ``texts`` and a tiny model for it."""
    tokenizer = train_chatml_tokenizer(texts, vocab_size=vocab_size)
    return tiny_model(tokenizer, seed=seed, **model_kwargs), tokenizer


def resolve_model(name: str | Path) -> Path:
    """The local folder of a model: a folder itself, or a Hugging Face id in the local cache.

    ``Qwen/Qwen2.5-0.5B-Instruct`` resolves to its snapshot in the Hugging Face cache
    (``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) with no network access.

    Raises:
        InvalidOptionError: naming where it looked and how to provide the files.
    """
    path = Path(name)
    if (path / "config.json").is_file():
        return path
    looked = [f"the folder {str(path)!r}"]
    if str(name).count("/") == 1 and not path.is_absolute():
        from huggingface_hub import constants, snapshot_download

        looked.append(f"the Hugging Face cache {constants.HF_HUB_CACHE}")
        try:
            found = Path(snapshot_download(str(name), local_files_only=True))
        except Exception:  # noqa: BLE001 - any miss means "not in the cache"
            found = None
        if found is not None and (found / "config.json").is_file():
            return found
    raise InvalidOptionError(
        f"Model {str(name)!r} is not here: looked in {' and '.join(looked)}. Nothing is "
        "downloaded; on a machine with network run `huggingface-cli download "
        f"{name}` and copy its cache folder here (or set HF_HUB_CACHE), give a local folder "
        "in save_pretrained layout, or 'tiny' to build a small model here.")


def load_pretrained(path: str | Path) -> tuple[Any, Any]:
    """A model and tokenizer from a local folder or a cached Hugging Face id.

    Raises:
        InvalidOptionError: if neither holds the model (see :func:`resolve_model`).
    """
    path = resolve_model(path)
    transformers = quiet_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    return model, tokenizer
