"""Streaming and teacher-forced attention tracing agree with eager attention maps."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.masking_utils import AttentionMaskInterface

from pivottrace.method import trace
from pivottrace.method.trace import (
    ATTN_IMPLEMENTATION,
    STATS,
    StreamingTracer,
    generated_lengths,
    trace_forced,
)
from pivottrace.testbed.modchain import vocabulary
from pivottrace.testbed.reasoner import build_tokenizer

torch.set_num_threads(1)

ATOL = 1e-5
NEW_TOKENS = 12
PROMPTS = [
    "a = 3 , b = a + 4 , c = b * 2 , c ?",
    "a = 1 ?",
    "a = 3 , b = a * 2 , c = b - 1 , d = c + 5 , d ?",
]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(vocabulary(10, ("+", "-", "*"), 8))


@pytest.fixture(scope="module")
def enc(tok):
    e = tok(PROMPTS, return_tensors="pt", padding=True)
    assert len(set(e["attention_mask"].sum(1).tolist())) == 3  # three different lengths
    assert e["attention_mask"][:, 0].tolist() == [0, 0, 1]  # left padded
    return e


def make_model(tok, n_kv_heads: int = 4, arch: str = "qwen2", seed: int = 0):
    """Tiny random causal LM with sharp (non-uniform) attention."""
    torch.manual_seed(seed)
    kw = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=128,
        initializer_range=0.2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        attn_implementation="sdpa",
    )
    model = (
        Qwen2ForCausalLM(Qwen2Config(**kw))
        if arch == "qwen2"
        else LlamaForCausalLM(LlamaConfig(**kw))
    )
    return model.eval()


def generate(model, enc, **kw):
    with torch.no_grad():
        return model.generate(
            **enc, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, **kw
        )


# ---- reference: statistics straight from eager attention rows -------------------------


def _jsd(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _entropy(p: np.ndarray) -> float:
    nz = p > 0
    return float(-np.sum(p[nz] * np.log(p[nz])))


def reference_stats(rows: list[np.ndarray], prompt_width: int) -> dict[str, np.ndarray]:
    """rows[t]: (H, len_t) eager attention row that produced generated token t (one layer)."""
    out = {k: [] for k in STATS}
    for t, row in enumerate(rows):
        row = row.astype(np.float64)
        lb = [r[:prompt_width].sum() / r.sum() for r in row]
        ent = [_entropy(r) for r in row]
        if t == 0:
            sh = [0.0]
        else:
            prev = rows[t - 1].astype(np.float64)
            n = prev.shape[-1]
            sh = [_jsd(row[h, :n], prev[h, :n]) for h in range(row.shape[0])]
        out["lookback"].append(np.mean(lb))
        out["entropy"].append(np.mean(ent))
        out["shift"].append(np.mean(sh))
    return {k: np.array(v) for k, v in out.items()}


def eager_forward_rows(model, seqs, mask, layer, prompt_width, n_new):
    """Rows from one eager forward with output_attentions (positions as in generate)."""
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(
                seqs, attention_mask=mask, position_ids=pos, output_attentions=True
            ).attentions
    finally:
        model.set_attn_implementation("sdpa")
    a = att[layer].numpy()  # (B, H, T, T)
    return [
        [a[b, :, r, : r + 1] for r in range(prompt_width - 1, prompt_width - 1 + n_new)]
        for b in range(a.shape[0])
    ]


def max_err(got: list[dict], ref: list[list[dict]]) -> float:
    """got[b][stat]: (N, n_layers); ref[layer][b][stat]: (N,)."""
    err = 0.0
    for b, g in enumerate(got):
        for c, layer_ref in enumerate(ref):
            for k in STATS:
                r = layer_ref[b][k]
                assert g[k][:, c].shape == r.shape
                err = max(err, float(np.max(np.abs(g[k][: len(r), c] - r))))
    return err


# ---- tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_streaming_matches_eager_generate_maps(tok, enc, n_kv_heads):
    """Streaming stats == stats of the maps eager generate returns (prefill last row + decode rows)."""
    model = make_model(tok, n_kv_heads)
    width = enc["input_ids"].shape[1]
    with StreamingTracer(model, layers="all", prompt_lengths=enc["attention_mask"].sum(1)) as tr:
        out = generate(model, enc)
    got = tr.result()
    assert tr.prompt_width == width

    model.set_attn_implementation("eager")
    ref_out = generate(model, enc, output_attentions=True, return_dict_in_generate=True)
    model.set_attn_implementation("sdpa")
    assert torch.equal(ref_out.sequences, out)
    steps = ref_out.attentions  # steps[0]: (B,H,L,L) prefill; steps[k]: (B,H,1,L+k)
    assert len(steps) == NEW_TOKENS
    ref = []
    for layer in range(2):
        rows = [[s[layer][b, :, -1, :].numpy() for s in steps] for b in range(out.shape[0])]
        ref.append([reference_stats(r, width) for r in rows])
    err = max_err(got, ref)
    assert err < ATOL, err
    for g in got:
        assert g["lookback"].shape == (NEW_TOKENS, 2)
        np.testing.assert_array_equal(g["lookback"][0], 1.0)  # first token sees only the prompt
        np.testing.assert_array_equal(g["shift"][0], 0.0)
        assert np.all(g["shift"][1:] > 0)
        np.testing.assert_array_equal(g["layers"], [0, 1])


@pytest.mark.parametrize("n_kv_heads,arch", [(4, "qwen2"), (2, "qwen2"), (2, "llama")])
def test_forced_and_streaming_match_eager_forward(tok, enc, n_kv_heads, arch):
    model = make_model(tok, n_kv_heads, arch)
    width = enc["input_ids"].shape[1]
    prompt_lengths = enc["attention_mask"].sum(1).tolist()
    with StreamingTracer(model, layers=[1, 0]) as tr:
        out = generate(model, enc)
    streamed = tr.result()
    mask = torch.cat([enc["attention_mask"], torch.ones_like(out[:, width:])], dim=1)
    forced = trace_forced(model, out, mask, prompt_lengths, layers=[1, 0], chunk_size=5)

    ref = [
        [
            reference_stats(r, width)
            for r in eager_forward_rows(model, out, mask, layer, width, NEW_TOKENS)
        ]
        for layer in (1, 0)
    ]
    assert max_err(forced, ref) < ATOL
    assert max_err(streamed, ref) < ATOL
    for f in forced:
        np.testing.assert_array_equal(f["layers"], [1, 0])
        assert f["entropy"].shape == (NEW_TOKENS, 2)


def test_forced_right_padding_and_lengths(tok, enc):
    """Rows that stop early (right padding after EOS) keep only their own tokens."""
    model = make_model(tok, 2)
    with StreamingTracer(model, layers="all") as tr:
        out = generate(model, enc)
    keep = [5, NEW_TOKENS, 1]
    streamed = tr.result(lengths=keep)
    gen_mask = (torch.arange(NEW_TOKENS)[None, :] < torch.tensor(keep)[:, None]).long()
    mask = torch.cat([enc["attention_mask"], gen_mask], dim=1)
    forced = trace_forced(model, out, mask, enc["attention_mask"].sum(1).tolist())
    for n, s, f in zip(keep, streamed, forced, strict=True):
        for k in STATS:
            assert s[k].shape == f[k].shape == (n, 2)
            np.testing.assert_allclose(s[k], f[k], atol=ATOL)


def test_generation_unchanged_and_implementation_restored(tok, enc):
    model = make_model(tok, 2)
    plain = generate(model, enc)
    with StreamingTracer(model, layers=[-1]) as tr:
        assert model.config._attn_implementation == ATTN_IMPLEMENTATION
        traced = generate(model, enc)
    assert model.config._attn_implementation == "sdpa"
    assert torch.equal(plain, traced)
    assert tr.result()[0]["shift"].shape == (NEW_TOKENS, 1)
    assert not trace._ACTIVE

    with pytest.raises(ZeroDivisionError), StreamingTracer(model):
        _ = 1 / 0
    assert model.config._attn_implementation == "sdpa"
    assert not trace._ACTIVE

    model.set_attn_implementation("eager")
    trace_forced(model, traced, None, [traced.shape[1] - 1] * 3)
    assert model.config._attn_implementation == "eager"


def test_streaming_memory_is_linear(tok, enc):
    """The recorder holds per-layer previous rows and per-step scalars, never a T x T map."""
    model = make_model(tok, 2)
    width = enc["input_ids"].shape[1]
    assert width > 4  # larger than batch, heads and stat count, so sizes identify seq dims
    with StreamingTracer(model) as tr:
        generate(model, enc)
    total = width + NEW_TOKENS
    held = list(tr.tensors())
    assert held
    for t in held:
        assert sum(d >= width for d in t.shape) <= 1, t.shape
    b, h, n_layers = 3, 4, 2
    budget = n_layers * (b * h * total + b * total + NEW_TOKENS * b * len(STATS))
    assert sum(t.numel() for t in held) <= budget


def test_ignored_padding_is_detected(tok, enc, monkeypatch):
    """Without the mask builder transformers silently drops the padding mask; the check catches it."""
    monkeypatch.delitem(AttentionMaskInterface._global_mapping, ATTN_IMPLEMENTATION)
    model = make_model(tok, 2)
    with pytest.raises(RuntimeError, match="padding"):
        with StreamingTracer(model, prompt_lengths=enc["attention_mask"].sum(1)):
            generate(model, enc)
    assert model.config._attn_implementation == "sdpa"


def test_one_generate_per_tracer(tok, enc):
    model = make_model(tok, 2)
    with pytest.raises(RuntimeError, match="one generate"):
        with StreamingTracer(model):
            generate(model, enc)
            generate(model, enc)


def test_helpers_and_doctests():
    assert generated_lengths(torch.tensor([[4, 2, 2], [4, 4, 4]]), [2, 9]) == [2, 3]
    assert generated_lengths(np.zeros((2, 5)), None) == [5, 5]
    model = type("M", (), {"config": type("C", (), {"num_hidden_layers": 3})()})()
    with pytest.raises(ValueError):
        trace.resolve_layers(model, [3])
    with pytest.raises(ValueError):
        trace.resolve_layers(model, "last")
    assert doctest.testmod(trace).failed == 0
