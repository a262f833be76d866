"""``VLLMPolicy``: vLLM's offline engine as a batched policy, with the trainer's weights synced.

Same interface as :class:`~agentgym.hf_policy.TransformersPolicy`: ``generate`` renders each
conversation with the chat template and samples all of them in one engine call, returning
text, token ids and log-probabilities. ``load_weights(model)`` copies a training model's
current weights into the engine between updates, so rollouts always come from the policy
being trained. The engine runs in this process (vLLM's V1 multiprocessing is switched off)
so that the weights can be handed over in memory. Scripts that use it need an
``if __name__ == "__main__":`` guard, because vLLM may spawn helper processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentgym.errors import MissingDependencyError
from agentgym.hf_policy import BatchPolicy
from agentgym.policies import Conversation, Reply
from agentgym.tool_text import ToolParser


class VLLMPolicy(BatchPolicy):
    """Sample actions with vLLM.

    Args:
        model: A local model folder (``save_pretrained`` layout, tokenizer included).
        temperature: Sampling temperature (0 for greedy).
        top_p: Nucleus sampling.
        max_new_tokens: Longest reply.
        stop: Strings that end a reply (kept in the reply, as TransformersPolicy keeps them).
        seed: The engine's seed.
        dtype: Weights' dtype in the engine (``float32`` matches a CPU trainer exactly).
        max_model_len: Longest prompt plus reply.
        tool_parser: ``"hermes"`` or ``"llama3"`` to call the env's tools natively (see
            :class:`~agentgym.hf_policy.BatchPolicy`).
        engine_kwargs: Anything else for ``vllm.LLM``.
    """

    def __init__(self, model: str | Path, *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 48, stop: list[str] | None = None, seed: int = 0,
                 dtype: str = "float32", max_model_len: int = 2048,
                 tool_parser: ToolParser | None = None, **engine_kwargs: Any) -> None:
        self.tool_parser = tool_parser
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise MissingDependencyError("vllm", "vllm") from exc
        self.model_path = str(model)
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.stop = stop or []
        self.seed = seed
        engine_kwargs.setdefault("enforce_eager", True)  # no compile step: a 30 s start on CPU
        # on CPU this is the share of the machine's memory vLLM reserves for its KV cache
        engine_kwargs.setdefault("gpu_memory_utilization", 0.15)
        self.llm = LLM(model=self.model_path, dtype=dtype, max_model_len=max_model_len,
                       seed=seed, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._calls = 0

    def reseed(self, seed: int) -> None:
        """Restart the sampling seeds from ``seed``."""
        self.seed, self._calls = seed, 0

    def generate(self, conversations: list[Conversation]) -> list[Reply]:
        """Sample one reply per conversation, all in one engine call."""
        from vllm import SamplingParams

        prompts = self.prompts(self.tokenizer, conversations)
        self._calls += 1
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_new_tokens, stop=self.stop or None,
                                include_stop_str_in_output=True, logprobs=0,
                                seed=self.seed * 1_000_003 + self._calls)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [self._reply(out.outputs[0]) for out in outputs]

    def _reply(self, completion: Any) -> Reply:
        ids = list(completion.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs, ids)]
        return self.reply(completion.text, ids, logprobs)

    def load_weights(self, model: Any) -> None:
        """Copy a (training) model's current weights into the engine."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self._model_runner().reload_weights(weights_iterator=weights)
        self.llm.reset_prefix_cache()  # cached prompts were computed with the old weights

    def _model_runner(self) -> Any:
        worker = self.llm.llm_engine.model_executor.driver_worker
        return getattr(worker, "worker", worker).model_runner

    def describe(self) -> dict[str, Any]:
        """Metadata for the Episode record."""
        return {"policy": "vllm", "model": self.model_path,
                "sampling": {"temperature": self.temperature, "top_p": self.top_p,
                             "max_new_tokens": self.max_new_tokens},
                "tool_parser": self.tool_parser}
