"""pivottrace.sampling: the one batched sampling loop (scoring, dev sweep, base report, dev curve)."""

import torch

from pivottrace.core.io import read_jsonl
from pivottrace.core.runtime import load_causal_lm
from pivottrace.data.verifiers import get_verifier
from pivottrace.sampling import decode, generate, greedy_accuracy, sample_batches


def _prompts(tiny, n=6):
    return [r["prompt"] for r in read_jsonl(tiny["data"] / "dev.jsonl")[:n]]


def test_sampling_leaves_the_callers_rng_untouched(tiny):
    """A dev evaluation inside GRPO must not move GRPO's own sampling stream."""
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    generate(model, tok, _prompts(tiny), k=2, max_new_tokens=8, batch_size=4, seed=7)
    assert torch.equal(torch.get_rng_state(), before)


def test_mode_and_padding_side_are_restored(tiny):
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    model.train()
    tok.padding_side = "right"
    generate(model, tok, _prompts(tiny), k=1, max_new_tokens=4)
    assert model.training and tok.padding_side == "right"


def test_same_seed_same_samples_and_batching_keeps_rows_apart(tiny):
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    prompts = _prompts(tiny)
    a = generate(model, tok, prompts, k=3, max_new_tokens=16, batch_size=5, seed=1)
    b = generate(model, tok, prompts, k=3, max_new_tokens=16, batch_size=5, seed=1)
    assert a == b and len(a) == len(prompts) and all(len(x) == 3 for x in a)
    c = generate(model, tok, prompts, k=3, max_new_tokens=16, batch_size=5, seed=2)
    assert a != c


def test_greedy_matches_one_prompt_at_a_time(tiny):
    """Independent reference: unbatched, unpadded model.generate per prompt."""
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    prompts = _prompts(tiny)
    batched = generate(model, tok, prompts, k=1, do_sample=False, max_new_tokens=16, batch_size=4)
    for prompt, (text,) in zip(prompts, batched):
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=16,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[0, ids.shape[1]:].tolist()
        if tok.eos_token_id in new:
            new = new[:new.index(tok.eos_token_id) + 1]
        assert text == tok.decode(new, skip_special_tokens=True).strip()


def test_greedy_accuracy_counts_verified_answers(tiny):
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    rows = read_jsonl(tiny["data"] / "dev.jsonl")[:6]
    verifier = get_verifier("modchain")
    texts = generate(model, tok, [r["prompt"] for r in rows], k=1, do_sample=False,
                     max_new_tokens=16)
    expected = sum(verifier.verify(t[0], r["answer"]) for t, r in zip(texts, rows)) / len(rows)
    assert greedy_accuracy(model, tok, rows, verifier, max_new_tokens=16) == expected
    wrong = [{**r, "answer": str((int(r["answer"]) + 1) % 10)} for r in rows]
    assert greedy_accuracy(model, tok, rows, verifier, max_new_tokens=16) + \
        greedy_accuracy(model, tok, wrong, verifier, max_new_tokens=16) <= 1.0


def test_tracing_does_not_change_the_samples(tiny):
    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    prompts = _prompts(tiny)
    kw = dict(k=2, max_new_tokens=12, batch_size=4, seed=3)
    plain = [ids for b in sample_batches(model, tok, prompts, **kw) for ids in b.rows()]
    traced_batches = list(sample_batches(model, tok, prompts, trace_layers="all",
                                         output_logits=True, **kw))
    traced = [ids for b in traced_batches for ids in b.rows()]
    assert plain == traced
    for b in traced_batches:
        assert len(b.stats) == len(b.jobs) and b.logits.shape[:2] == b.tokens.shape
        for (_, _, _, ids), st in zip(b.rows(), b.stats):
            assert st["shift"].shape[0] == len(ids)  # statistics cover the tokens up to EOS
            assert decode(tok, ids) == tok.decode(ids, skip_special_tokens=True).strip()


def test_sampling_forks_the_cuda_stream_of_a_cuda_model(monkeypatch):
    """On CUDA, seeding the dev curve must not reset GRPO's own CUDA sampling stream.

    No GPU is needed: a stand-in model reports a CUDA device, ``fork_rng`` is
    recorded, and the generation loop itself is skipped.
    """
    import contextlib
    import types

    import pivottrace.sampling as sampling

    forked = []

    @contextlib.contextmanager
    def record_fork(devices=None, enabled=True):
        forked.append(list(devices or []))
        yield

    monkeypatch.setattr(torch.random, "fork_rng", record_fork)
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # no CUDA to seed here
    monkeypatch.setattr(sampling, "_batches", lambda *a, **k: iter(()))
    cuda = torch.device("cuda", 0)
    model = types.SimpleNamespace(parameters=lambda: iter([types.SimpleNamespace(device=cuda)]),
                                  training=True, eval=lambda: None, train=lambda mode=True: None)
    tok = types.SimpleNamespace(padding_side="right")
    assert list(sampling.sample_batches(model, tok, ["p"], seed=3)) == []
    assert forked == [[cuda]]


def test_sampled_accuracy_is_the_mean_over_k_samples(tiny):
    from pivottrace.sampling import sampled_accuracy

    model, tok = load_causal_lm(tiny["model"], tiny["cfg"])
    rows = read_jsonl(tiny["data"] / "dev.jsonl")[:4]
    verifier = get_verifier("modchain")
    rows[0] = {**rows[0], "answer": "0"}
    outs = generate(model, tok, [r["prompt"] for r in rows], k=3, do_sample=True,
                    max_new_tokens=16, seed=5)
    expected = sum(verifier.verify(o, r["answer"]) for os_, r in zip(outs, rows) for o in os_) / 12
    got = sampled_accuracy(model, tok, rows, verifier, k=3, max_new_tokens=16, seed=5)
    assert got == expected
    assert sampled_accuracy(model, tok, rows, verifier, k=3, max_new_tokens=16, seed=5) == got
