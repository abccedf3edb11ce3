"""pivottrace.core.pruned_decoding: dropping finished rows gives generate's exact output and RNG state."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pivottrace.core import pruned_decoding
from pivottrace.core.kv_cache import GrowingCache
from pivottrace.core.pruned_decoding import install_pruned_decoding, pruned_decode

SIZES = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
             intermediate_size=64, vocab_size=12, pad_token_id=0, eos_token_id=1, bos_token_id=2)
IDS = torch.tensor([[0, 0, 0, 5, 6, 7], [3, 4, 5, 6, 7, 8], [0, 9, 4, 4, 3, 5],
                    [0, 0, 0, 0, 0, 6], [7, 7, 8, 9, 10, 11], [0, 0, 3, 3, 3, 3]])


def _model(seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**SIZES)).eval()


def _generate(model, seed, **kw):
    torch.manual_seed(seed)
    out = model.generate(input_ids=IDS, attention_mask=(IDS != 0).long(), pad_token_id=0,
                         max_new_tokens=40, **kw)
    return out, torch.get_rng_state()


CASES = [
    dict(do_sample=False),
    dict(do_sample=True, temperature=1.0, top_k=None, top_p=None),
    dict(do_sample=True, temperature=0.7, top_k=None, top_p=None, eos_token_id=[1, 4]),
    dict(do_sample=True, temperature=1.0, top_k=None, top_p=None, return_dict_in_generate=True),
    dict(do_sample=True, temperature=1.0, top_k=3, top_p=None),  # unsupported: generate's loop
    dict(do_sample=False, past_key_values="growing"),
    dict(do_sample=False, num_beams=3),  # unsupported: generate's beam search, not sampling
]


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_sequences_and_random_stream_as_generate(kw, seed, monkeypatch):
    calls = []
    real = pruned_decoding._decode
    monkeypatch.setattr(pruned_decoding, "_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = _model()
    make = (lambda: dict(kw, past_key_values=GrowingCache())) if kw.get("past_key_values") else (
        lambda: dict(kw))
    expected, rng_expected = _generate(model, seed, **make())
    got, rng_got = _generate(model, seed, custom_generate=pruned_decode, **make())
    if kw.get("return_dict_in_generate"):
        expected, got = expected.sequences, got.sequences
    assert expected.shape == got.shape and torch.equal(expected, got)
    assert torch.equal(rng_expected, rng_got)
    unsupported = kw.get("top_k") or kw.get("num_beams")
    assert len(calls) == (0 if unsupported else 1)  # pruned where supported, else generate's loop


def test_rows_finish_at_different_steps_so_rows_are_really_dropped():
    model = _model()
    out, _ = _generate(model, 0, do_sample=True, temperature=1.0, top_k=None, top_p=None)
    new = out[:, IDS.shape[1]:]
    ends = [(row == 1).nonzero()[0].item() if (row == 1).any() else new.shape[1] for row in new]
    assert len(set(ends)) >= 3, ends  # the test above would not exercise pruning otherwise


def test_install_wraps_once_and_keeps_a_callers_choice():
    model = _model()
    seen = []
    plain = model.generate

    def spy(*a, **kw):
        seen.append((type(kw.get("past_key_values")).__name__, kw.get("custom_generate")))
        return plain(*a, **kw)

    model.generate = spy
    install_pruned_decoding(model)
    install_pruned_decoding(model)
    ids = torch.tensor([[5, 6, 7]])
    model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, pad_token_id=0)
    model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, pad_token_id=0,
                   custom_generate=None)
    assert seen == [("GrowingCache", pruned_decode), ("GrowingCache", None)]
