import math
import random

import pytest
import torch

from trainers.models import tiny_model
from trainers.policy_gradient import (
    TokenBatch,
    aggregate,
    clipped_surrogate,
    kl,
    length_grouped,
    token_logprobs,
)
from trainers.tiny import train_chatml_tokenizer
from trainers.tokenize import TokenizedSequence

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = train_chatml_tokenizer(["go north take key open door look"] * 50, vocab_size=300)
    return tiny_model(tokenizer, seed=0), tokenizer


def row(ids, mask, adv):
    return TokenizedSequence(input_ids=ids, loss_mask=mask, advantages=adv,
                             turn_ids=[0 if m else -1 for m in mask])


def test_masked_tokens_get_exactly_zero_gradient(tiny):
    model, _ = tiny
    ids = [5, 9, 17, 23, 40, 41, 42, 50]
    mask = [0, 0, 0, 1, 1, 0, 0, 1]
    batch = TokenBatch.from_rows([row(ids, mask, [1.0] * 8)], pad_id=0)
    logp = token_logprobs(model, batch)
    old = logp.detach()
    loss = aggregate(clipped_surrogate(logp, old, batch.advantages, 0.2)[0], batch.loss_mask,
                     "token-mean")
    grads = torch.autograd.grad(loss, logp)[0]
    # positions predicting masked tokens (input tokens 1, 2, 5, 6) get no gradient at all
    assert torch.equal(grads[0, [0, 1, 4, 5]], torch.zeros(4))
    assert (grads[0, [2, 3, 6]] != 0).all()


def test_kl_to_an_identical_reference_is_zero(tiny):
    model, _ = tiny
    reference = type(model)(model.config)
    reference.load_state_dict(model.state_dict())
    batch = TokenBatch.from_rows([row([3, 4, 5, 6, 7], [0, 1, 1, 1, 1], [0.5] * 5)], 0)
    with torch.no_grad():
        logp, ref = token_logprobs(model, batch), token_logprobs(reference, batch)
    for estimator in ("k1", "k3"):
        assert aggregate(kl(logp, ref, estimator), batch.loss_mask, "token-mean").item() == 0.0
    assert (kl(logp, ref - 0.3, "k3") > 0).all()  # and positive when they differ


def test_clipping_and_aggregation_by_hand():
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5]]))
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, 0.2)
    # ratios 1.5, 1.0, 0.5: the first is clipped to 1.2 (A > 0), the last to 0.8 (A < 0)
    assert torch.allclose(loss, torch.tensor([[-1.2, -1.0, 0.8]]))
    assert clipped.tolist() == [[1.0, 0.0, 1.0]]
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    values = torch.tensor([[2.0, 4.0, 100.0], [6.0, 100.0, 100.0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(4.0)
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx(4.5)
    assert aggregate(values, mask, "seq-mean-token-sum-norm").item() == pytest.approx(2.0)
    assert math.isclose(float(kl(torch.tensor(0.0), torch.tensor(math.log(2)), "k3")),
                        2 - math.log(2) - 1, rel_tol=1e-6)


def test_truncated_importance_weights_and_the_sampler_gap():
    """By hand: exp(old - sampler) capped at C; 1 where the sampler said nothing."""
    import math

    from trainers.policy_gradient import TokenBatch, sampler_gap, truncated_is_weight

    first = TokenizedSequence(input_ids=[1, 2, 3, 4], loss_mask=[0, 1, 1, 1],
                              advantages=[0, 1, 1, 1], turn_ids=[-1, 0, 0, 0],
                              sampler_logprobs=[math.nan, -1.0, -2.0, math.nan])
    batch = TokenBatch.from_rows([first], pad_id=0)
    old = torch.tensor([[-1.5, -0.5, -2.0]])  # predicted tokens 2, 3, 4
    weight = truncated_is_weight(old, batch, cap=1.2)
    expected = [min(math.exp(-1.5 + 1.0), 1.2), min(math.exp(-0.5 + 2.0), 1.2), 1.0]
    assert torch.allclose(weight, torch.tensor([expected]))
    mean, top, count = sampler_gap(old, batch)
    assert count == 2 and math.isclose(top, 1.5) and math.isclose(mean, 1.0)


def padded_share(rows, size):
    """Tokens computed (every row padded to its minibatch's longest) per real token."""
    batches = [rows[i:i + size] for i in range(0, len(rows), size)]
    return sum(max(map(len, b)) * len(b) for b in batches) / sum(map(len, rows))


def test_length_grouped_minibatches_pad_little_and_keep_every_row_once():
    rng = random.Random(0)
    rows = [row(list(range(n)), [1] * n, [0.0] * n) for n in
            (rng.randint(300, 1000) for _ in range(203))]
    grouped = length_grouped(rows, 16, random.Random(1))
    assert sorted(map(id, grouped)) == sorted(map(id, rows))
    assert padded_share(rows, 16) > 1.25  # random order: a quarter or more is padding
    assert padded_share(grouped, 16) < 1.05
    again = length_grouped(rows, 16, random.Random(1))
    assert [id(r) for r in again] == [id(r) for r in grouped]  # the rng decides the order
    other = length_grouped(rows, 16, random.Random(2))
    assert [id(r) for r in other] != [id(r) for r in grouped]
