"""Warm-start SFT packs several traces per row: same loss and gradients as one row each."""

import random

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
