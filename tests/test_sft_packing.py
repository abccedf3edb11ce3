"""Warm-start SFT packs several traces per row: same loss and gradients as one row each."""

import random

import pytest
import torch

from pivottrace.testbed import modchain, reasoner

OPS = ("+", "-", "*")
MODEL_CFG = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                 max_position_embeddings=256)


def _padded(encoded, idx, pad_id):
    """The reference: one right-padded row per sequence, 2D mask."""
    width = max(len(encoded[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id)
    labels = torch.full((len(idx), width), -100)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq, plen = encoded[i]
        ids[row, :len(seq)] = torch.tensor(seq)
        labels[row, plen:len(seq)] = torch.tensor(seq[plen:])
        mask[row, :len(seq)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def test_packed_batch_matches_one_row_per_sequence():
    tok = reasoner.build_tokenizer(modchain.vocabulary(10, OPS, 6))
    model = reasoner.build_model(tok, MODEL_CFG, seed=0)
    rng = random.Random(0)
    probs = modchain.generate_split(rng, 24, 1, 6, 10, OPS, set())
    records = [{"prompt": p.prompt, "completion": modchain.solve_trace(p)} for p in probs]
    encoded = reasoner.encode_sft(tok, records, max_length=160)
    idx = list(range(len(encoded)))
    packed = reasoner.packed_batch(encoded, idx, tok.pad_token_id)
    n_tokens = packed.pop("n_tokens")
    assert n_tokens == sum(len(e[0]) for e in encoded)
    assert packed["input_ids"].shape[0] < len(idx)  # something was packed
    ref_loss, ref_grads = _loss_and_grads(model, _padded(encoded, idx, tok.pad_token_id))
    loss, grads = _loss_and_grads(model, packed)
    assert abs(loss - ref_loss) < 1e-5
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_packed_rows_keep_every_sequence_whole_and_in_order():
    encoded = [([1, 2, 3, 4], 2), ([5, 6], 1), ([7, 8], 1), ([9], 1), ([10, 11, 12], 1)]
    b = reasoner.packed_batch(encoded, [4, 0, 1, 2, 3], pad_id=0)
    assert b["input_ids"].shape == (3, 4)  # widths 4 | 3+1 | 2+2
    rows = b["input_ids"].tolist()
    assert sorted(x for row in rows for x in row if x) == list(range(1, 13))
    assert b["n_tokens"] == 12


def test_warmup_cosine_against_transformers_schedule():
    """Equal to transformers' cosine schedule after the warm-up; one step ahead during it."""
    from transformers import get_cosine_schedule_with_warmup

    for warm, total in ((5, 30), (1, 10), (50, 1500)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        ref = get_cosine_schedule_with_warmup(opt, warm, total).lr_lambdas[0]
        for step in range(total):
            got = reasoner.warmup_cosine(step, warm, total)
            if step >= warm:
                assert got == pytest.approx(ref(step), abs=1e-12), (warm, total, step)
            else:
                assert got == pytest.approx(ref(step + 1), abs=1e-12)  # starts at 1/warm, not 0
        assert reasoner.warmup_cosine(total - 1, warm, total) > 0 >= ref(total) - 1e-12
