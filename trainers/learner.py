"""The learner: one model, its optimiser, an optional frozen reference, and checkpoints.

``sft_step`` fits generated tokens of expert rows; ``rl_step`` is the clipped policy-gradient
update of :mod:`trainers.policy_gradient` over per-token advantages, with optional KL to the
reference, in minibatches with gradient accumulation. Both return namespaced metrics.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainers.config import LoraConfig, LossConfig, OptimConfig
from trainers.policy_gradient import (
    TokenBatch,
    aggregate,
    clipped_surrogate,
    kl,
    sampler_gap,
    sft_loss,
    token_logprobs,
    truncated_is_weight,
)
from trainers.tokenize import TokenizedSequence


def _gap_metrics(gaps: list[tuple[float, float, int]]) -> dict[str, float]:
    """The sampler/trainer log-prob mismatch of a batch (none if no turn recorded its own)."""
    counted = [(mean, top, n) for mean, top, n in gaps if n]
    if not counted:
        return {}
    tokens = sum(n for *_, n in counted)
    return {"sampler/logprob_gap_mean": sum(m * n for m, _, n in counted) / tokens,
            "sampler/logprob_gap_max": max(top for _, top, _ in counted),
            "sampler/tokens": float(tokens)}


class Learner:
    """Updates a model; keeps the optimiser and, with ``kl_coef > 0``, a frozen reference.

    With LoRA (``lora.r > 0``) only the adapters train, and the reference is the model with
    its adapters switched off: no second copy of the weights.
    """

    def __init__(self, model: Any, tokenizer: Any, optim: OptimConfig | None = None,
                 loss: LossConfig | None = None, lora: LoraConfig | None = None) -> None:
        import torch

        self.lora = lora or LoraConfig()
        if self.lora.r > 0 and not hasattr(model, "disable_adapter"):
            model = _with_adapters(model, self.lora)
        self.model, self.tokenizer = model, tokenizer
        self.optim, self.loss = optim or OptimConfig(), loss or LossConfig()
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=self.optim.lr,
                                           weight_decay=self.optim.weight_decay)
        # under torchrun: averages gradients over the ranks before each step
        self.grad_sync: Any = None  # a trainers.distributed.GradientAverage
        self.reference = None
        if self.loss.kl_coef > 0 and self.lora.r == 0:
            self.reference = copy.deepcopy(model).eval()
            self.reference.requires_grad_(False)
        self.step = 0

    def reset_reference(self) -> None:
        """Make the KL reference the model as it is now (after the warm-up)."""
        if self.reference is not None:
            self.reference.load_state_dict(self.model.state_dict())

    def inference_model(self) -> Any:
        """The model as a plain transformers model (LoRA adapters merged into a copy)."""
        return copy.deepcopy(self.model).merge_and_unload() if self.lora.r > 0 else self.model

    def _reference_logprobs(self, batch: TokenBatch) -> Any:
        if self.reference is not None:
            return token_logprobs(self.reference, batch)
        with self.model.disable_adapter():
            return token_logprobs(self.model, batch)

    def _minibatches(self, rows: Sequence[TokenizedSequence],
                     size: int | None = None) -> list[TokenBatch]:
        size, pad = size or self.optim.minibatch_size, self.tokenizer.pad_token_id
        return [TokenBatch.from_rows(rows[i:i + size], pad) for i in range(0, len(rows), size)]

    def _apply(self) -> float:
        import torch

        if self.grad_sync is not None:
            self.grad_sync(self.trainable)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def sft_step(self, rows: Sequence[TokenizedSequence],
                 minibatch_size: int | None = None) -> dict[str, float]:
        """One pass of supervised fine-tuning over ``rows``.

        Minibatches hold ``minibatch_size`` rows, by default ``optim.minibatch_size``.
        """
        self.model.train()
        losses, norms = [], []
        batches = self._minibatches(rows, minibatch_size)
        for n, batch in enumerate(batches, 1):
            loss = sft_loss(self.model, batch) / self.optim.grad_accum
            loss.backward()
            losses.append(loss.item() * self.optim.grad_accum)
            if n % self.optim.grad_accum == 0 or n == len(batches):
                norms.append(self._apply())
        self.step += 1
        return {"sft/loss": sum(losses) / len(losses), "sft/grad_norm": sum(norms) / len(norms)}

    def rl_step(self, rows: Sequence[TokenizedSequence]) -> dict[str, float]:
        """The clipped policy-gradient update over rows carrying per-token advantages.

        No rows, no optimiser step (unless other ranks step: then this one steps with them).
        """
        import torch

        self.model.train()
        batches = self._minibatches(rows)
        with torch.no_grad():  # the behaviour policy: this model before the update
            old = [token_logprobs(self.model, b) for b in batches]
            ref = ([self._reference_logprobs(b) for b in batches]
                   if self.loss.kl_coef > 0 else None)
        stats: dict[str, list[float]] = {"loss": [], "kl": [], "clipfrac": [], "approx_kl": [],
                                         "grad_norm": []}
        gaps = [sampler_gap(o, b) for o, b in zip(old, batches, strict=True)]
        # under torchrun every rank must step as often as the busiest (agreed before any step)
        steps = self.loss.epochs * -(-len(batches) // self.optim.grad_accum)
        behind = self.grad_sync.steps_behind(steps) if self.grad_sync is not None else 0
        for _ in range(self.loss.epochs):
            for n, batch in enumerate(batches):
                metrics = self._rl_loss(batch, old[n], ref[n] if ref else None)
                (metrics.pop("_loss") / self.optim.grad_accum).backward()
                for key, value in metrics.items():
                    stats[key].append(value)
                if (n + 1) % self.optim.grad_accum == 0 or n + 1 == len(batches):
                    stats["grad_norm"].append(self._apply())
        for _ in range(behind):  # other ranks had more minibatches: step with them (no grad)
            self._apply()
        self.step += 1
        return {f"losses/{k}": sum(v) / len(v) for k, v in stats.items() if v} | {
            "tokens/trained": float(sum(b.tokens for b in batches))} | _gap_metrics(gaps)

    def _rl_loss(self, batch: TokenBatch, old: Any, ref: Any) -> dict[str, Any]:
        import torch

        logp = token_logprobs(self.model, batch)
        surrogate, clipped = clipped_surrogate(logp, old, batch.advantages, self.loss.clip)
        per_token = surrogate
        if self.loss.tis_cap is not None:
            per_token = per_token * truncated_is_weight(old, batch, self.loss.tis_cap)
        kl_value = torch.zeros(())
        if ref is not None:
            kl_tokens = kl(logp, ref, self.loss.kl_estimator)
            per_token = per_token + self.loss.kl_coef * kl_tokens
            kl_value = aggregate(kl_tokens, batch.loss_mask, "token-mean")
        loss = aggregate(per_token, batch.loss_mask, self.loss.loss_agg)
        mask = batch.loss_mask
        return {"_loss": loss, "loss": loss.item(), "kl": kl_value.item(),
                "clipfrac": float(aggregate(clipped, mask, "token-mean")),
                "approx_kl": float(aggregate(old - logp.detach(), mask, "token-mean"))}

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Model, tokenizer, optimiser and step in ``folder`` (resumable).

        With LoRA the folder holds the merged model (what ``agentgym eval`` loads), and
        ``base/`` and ``adapter/`` to resume from.
        """
        import torch

        from trainers.models import quiet_transformers

        quiet_transformers()  # quiets the save progress bar
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.lora.r > 0:
            self.inference_model().save_pretrained(folder)
            copy.deepcopy(self.model).unload().save_pretrained(folder / "base")
            self.model.save_pretrained(folder / "adapter")
        else:
            self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "reference": self.reference.state_dict() if self.reference else None},
                   folder / "trainer_state.pt")
        state = {"step": self.step, "optim": self.optim.model_dump(),
                 "loss": self.loss.model_dump(), "lora": self.lora.model_dump(), **(extra or {})}
        # written last and renamed into place: its presence means the checkpoint is whole
        (folder / "trainer_state.json.tmp").write_text(json.dumps(state, indent=2))
        (folder / "trainer_state.json.tmp").replace(folder / "trainer_state.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> tuple[Learner, dict[str, Any]]:
        """A learner restored from :meth:`save`, and the extra state saved with it."""
        import torch

        from trainers.models import load_pretrained

        folder = Path(folder)
        state = json.loads((folder / "trainer_state.json").read_text())
        lora = LoraConfig(**state.pop("lora", {}))
        model, tokenizer = load_pretrained(folder / "base" if lora.r > 0 else folder)
        if lora.r > 0:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder / "adapter", is_trainable=True)
        learner = cls(model, tokenizer, OptimConfig(**state.pop("optim")),
                      LossConfig(**state.pop("loss")), lora)
        tensors = torch.load(folder / "trainer_state.pt", weights_only=False)
        learner.optimizer.load_state_dict(tensors["optimizer"])
        if learner.reference is not None and tensors["reference"] is not None:
            learner.reference.load_state_dict(tensors["reference"])
        learner.step = state.pop("step")
        return learner, state


def _with_adapters(model: Any, lora: LoraConfig) -> Any:
    try:
        import peft
    except ImportError as exc:
        from agentgym.errors import MissingDependencyError

        raise MissingDependencyError("peft", "train") from exc
    config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, config)
