"""pivottrace.core.kv_cache: the in-place cache gives the same generations as the dynamic cache."""

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, MistralConfig
from transformers.cache_utils import DynamicLayer

from pivottrace.core.kv_cache import GrowingCache, GrowingLayer, fits, install_growing_cache

SIZES = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
             intermediate_size=64, vocab_size=40, pad_token_id=0, eos_token_id=1, bos_token_id=2)


def _model(seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**SIZES)).eval()


def _kv(b, t, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, t, 8, generator=g), torch.randn(b, 2, t, 8, generator=g)


def test_layer_holds_what_concatenation_holds_across_doublings_and_edits():
    plain, grow = DynamicLayer(), GrowingLayer()
    steps = [_kv(3, 50, 0)] + [_kv(3, 1, s) for s in range(1, 100)]  # crosses 64 and 128
    for i, (k, v) in enumerate(steps):
        a, b = plain.update(k, v), grow.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        if i == 30:  # inherited edits replace or shorten the views; the next update copes
            plain.crop(-5), grow.crop(-5)
        if i == 60:
            idx = torch.tensor([2, 0])
            plain.batch_select_indices(idx), grow.batch_select_indices(idx)
            steps[61:] = [(k[:2], v[:2]) for k, v in steps[61:]]
    assert grow.get_seq_length() == plain.get_seq_length() == 50 + 99 - 5
    assert grow._buffers[0].shape[-2] >= grow.get_seq_length()


def _generate(model, cache, do_sample):
    ids = torch.tensor([[0, 0, 0, 5, 6, 7], [3, 4, 5, 6, 7, 8]])  # left padded
    torch.manual_seed(3)
    return model.generate(input_ids=ids, attention_mask=(ids != 0).long(), do_sample=do_sample,
                          max_new_tokens=80, min_new_tokens=80, top_k=None, top_p=None,
                          temperature=1.0 if do_sample else None, pad_token_id=0,
                          past_key_values=cache)


def test_generate_gives_the_same_tokens_greedy_and_sampled():
    model = _model()
    for do_sample in (False, True):
        expected = _generate(model, None, do_sample)
        got = _generate(model, GrowingCache(), do_sample)
        assert expected.shape[1] == 6 + 80 and torch.equal(expected, got)


def test_install_wraps_generate_once_and_keeps_a_callers_cache():
    model = _model()
    seen = []
    plain = model.generate

    def spy(*a, **kw):
        seen.append(type(kw.get("past_key_values")).__name__)
        return plain(*a, **kw)

    model.generate = spy
    install_growing_cache(model)
    install_growing_cache(model)  # no second wrapper
    ids = torch.tensor([[5, 6, 7]])
    model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, pad_token_id=0)
    model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, pad_token_id=0,
                   past_key_values=DynamicCache())
    assert seen == ["GrowingCache", "DynamicCache"]


def test_models_with_sliding_window_layers_keep_their_own_cache():
    config = MistralConfig(**SIZES, sliding_window=16)
    assert fits(_model()) and not fits(type("M", (), {"config": config})())
