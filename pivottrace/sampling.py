"""The one batched sampling loop: pool scoring, the dev sweep, the base report and the dev curve.

:func:`sample_batches` runs ``model.generate`` over ``k`` copies of every prompt
(left padding, jobs sorted by prompt length so a batch pads little) and
yields each batch's generated ids, lengths and, on request, the streaming
tracer's attention statistics and the raw next-token logits.
:func:`generate` is the text-only view of the same loop.

Seeding: the loop runs under ``torch.random.fork_rng`` over the CPU and the
model's CUDA device, seeded with ``seed``, so the caller's RNG streams are
left exactly as they were (a dev evaluation inside GRPO never resets
GRPO's own sampling stream, on CPU or CUDA). Results depend on
``batch_size`` (it decides how the RNG stream is consumed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class SampledBatch:
    """One ``generate`` call of :func:`sample_batches`.

    Attributes:
        jobs: ``(prompt index, sample index)`` of each row.
        tokens: (B, N) generated ids on the CPU (prompt removed).
        lengths: generated tokens per row up to and including the first EOS.
        stats: per-row attention statistics of
            :meth:`~pivottrace.method.trace.StreamingTracer.result` (when traced).
        logits: (B, N, V) raw next-token logits (temperature 1), when requested.
    """

    jobs: list[tuple[int, int]]
    tokens: torch.Tensor
    lengths: list[int]
    stats: list[dict[str, np.ndarray]] | None = None
    logits: torch.Tensor | None = None

    def rows(self) -> Iterator[tuple[int, int, int, list[int]]]:
        """``(row, prompt index, sample index, generated ids up to EOS)`` per row."""
        for row, (i, j) in enumerate(self.jobs):
            yield row, i, j, self.tokens[row, :self.lengths[row]].tolist()


def sample_batches(model, tokenizer, prompts: Sequence[str], *, k: int = 1,
                   do_sample: bool = True, temperature: float = 1.0, max_new_tokens: int = 128,
                   batch_size: int = 64, seed: int = 0, trace_layers: Sequence[int] | str | None = None,
                   output_logits: bool = False, desc: str | None = None) -> Iterator[SampledBatch]:
    """Sample ``k`` completions per prompt, one batch at a time.

    Args:
        model: a Hugging Face causal LM (eval mode is set and restored).
        tokenizer: its tokenizer (left padding for the call, then restored).
        prompts: prompt strings (no special tokens are added).
        k: completions per prompt.
        do_sample: sample at ``temperature`` (top-k/top-p off), else greedy.
        max_new_tokens: generation length limit.
        batch_size: sequences per ``generate`` call.
        seed: seeds sampling; the caller's RNG state is untouched.
        trace_layers: layers to trace with
            :class:`~pivottrace.method.trace.StreamingTracer` (None: no tracing).
        output_logits: also return the raw logits of every generated step.
        desc: progress bar label (None: no bar).
    Yields:
        :class:`SampledBatch` per ``generate`` call; the generator must be
        consumed to the end (or closed) to restore the RNG, mode and padding side.
    """
    device = next(model.parameters()).device
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                torch.no_grad():
            torch.manual_seed(seed)
            yield from _batches(model, tokenizer, list(prompts), k, do_sample, temperature,
                                max_new_tokens, batch_size, trace_layers, output_logits, desc,
                                device)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)


def _batches(model, tokenizer, prompts, k, do_sample, temperature, max_new_tokens, batch_size,
             trace_layers, output_logits, desc, device):
    from pivottrace.core.kv_cache import new_cache
    from pivottrace.core.pruned_decoding import pruned_decode
    from pivottrace.method.trace import StreamingTracer, generated_lengths

    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    jobs = sorted((lengths[i], i, j) for i in range(len(prompts)) for j in range(k))
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bar = tqdm(total=len(jobs), desc=desc or "generate", unit="seq", disable=desc is None,
               mininterval=2.0)
    n_tokens, t0 = 0, time.perf_counter()
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        enc = tokenizer([prompts[i] for _, i, _ in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        kwargs: dict[str, Any] = dict(
            do_sample=do_sample, temperature=float(temperature) if do_sample else None,
            top_k=None, top_p=None, max_new_tokens=max_new_tokens, pad_token_id=pad,
            eos_token_id=eos, return_dict_in_generate=True, output_logits=output_logits,
            past_key_values=new_cache(model))
        tracer = None
        if trace_layers is not None:  # the tracer reads every row at every step
            tracer = StreamingTracer(model, layers=trace_layers, prompt_lengths=[n for n, _, _ in chunk])
            with tracer:
                out = model.generate(**enc, **kwargs)
        else:  # finished rows leave the batch; the same tokens (pivottrace.core.pruned_decoding)
            out = model.generate(**enc, **kwargs, custom_generate=pruned_decode)
        gen = out.sequences[:, enc["input_ids"].shape[1]:]
        n_gen = generated_lengths(gen, eos)
        if min(n_gen) < 1:  # generate always emits at least one token
            raise RuntimeError("empty generation")
        yield SampledBatch(
            jobs=[(i, j) for _, i, j in chunk], tokens=gen.cpu(), lengths=n_gen,
            stats=tracer.result(lengths=n_gen) if tracer is not None else None,
            logits=torch.stack(out.logits, dim=1) if output_logits else None)
        n_tokens += sum(n_gen)
        bar.update(len(chunk))
        bar.set_postfix(tok_s=f"{n_tokens / max(time.perf_counter() - t0, 1e-9):.0f}")
    bar.close()


def chat_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """``user`` (after an optional ``system`` turn) in the tokenizer's chat template, as text.

    The generation prompt is appended; the result is sampled as is (the loop adds no
    special tokens, so the template's own markers are the whole framing).
    """
    messages = [{"role": "user", "content": user}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def decode(tokenizer, token_ids: list[int]) -> str:
    """A completion's text: its ids up to EOS, special tokens removed, stripped."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).strip()


def generate(model, tokenizer, prompts: Sequence[str], *, k: int = 1, do_sample: bool = True,
             temperature: float = 1.0, max_new_tokens: int = 128, batch_size: int = 64,
             seed: int = 0, desc: str | None = None) -> list[list[str]]:
    """``k`` completion texts per prompt (:func:`sample_batches` without tracing).

    Returns:
        ``out[i][j]``: the j-th completion of prompt i (greedy: k equal copies).
    """
    out: list[list[str]] = [[""] * k for _ in prompts]
    for batch in sample_batches(model, tokenizer, prompts, k=k, do_sample=do_sample,
                                temperature=temperature, max_new_tokens=max_new_tokens,
                                batch_size=batch_size, seed=seed, desc=desc):
        for _, i, j, ids in batch.rows():
            out[i][j] = decode(tokenizer, ids)
    return out


def greedy_accuracy(model, tokenizer, rows: Sequence[dict], verifier, *, max_new_tokens: int,
                    batch_size: int = 64) -> float:
    """Greedy accuracy on labeled rows (``prompt``, ``answer``) under ``verifier``.

    The dev curve inside GRPO uses this loop rather than lm-eval
    (:func:`pivottrace.rl.evaluate.evaluate_model`, which the final evaluation
    uses): lm-eval renders and registers a task and wraps the model on every
    call, nine calls a run, for the same completions (``tests/test_evaluate.py``).
    """
    return _accuracy(model, tokenizer, rows, verifier, k=1, do_sample=False,
                     max_new_tokens=max_new_tokens, batch_size=batch_size)


def sampled_accuracy(model, tokenizer, rows: Sequence[dict], verifier, *, k: int,
                     temperature: float = 1.0, max_new_tokens: int, batch_size: int = 64,
                     seed: int = 0) -> float:
    """Mean accuracy of ``k`` sampled completions per labeled row (avg@k at ``temperature``).

    A smoother measure than greedy accuracy: greedy changes only when the most
    likely answer flips, sampled accuracy moves with every shift of probability
    toward the right answer.
    """
    return _accuracy(model, tokenizer, rows, verifier, k=k, do_sample=True,
                     temperature=temperature, max_new_tokens=max_new_tokens,
                     batch_size=batch_size, seed=seed)


def _accuracy(model, tokenizer, rows: Sequence[dict], verifier, *, k: int, do_sample: bool,
              **kwargs) -> float:
    """Share of the ``k`` completions per row that ``verifier`` accepts (the loop of both above)."""
    outs = generate(model, tokenizer, [r["prompt"] for r in rows], k=k, do_sample=do_sample,
                    **kwargs)
    hits = [bool(verifier.verify(o, r["answer"])) for os_, r in zip(outs, rows) for o in os_]
    return sum(hits) / len(hits)
