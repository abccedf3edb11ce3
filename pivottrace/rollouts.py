"""Batched sampling of completions with the KV cache (pool rollouts, dev curve)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, k: int = 1, do_sample: bool = True,
             temperature: float = 1.0, max_new_tokens: int = 128, batch_size: int = 64,
             seed: int = 0, desc: str | None = None) -> list[list[str]]:
    """``k`` completions per prompt (left padding, prompts bucketed by length).

    Args:
        prompts: prompt strings.
        k: completions per prompt.
        do_sample: sample at ``temperature`` (else greedy; then k copies are equal).
        batch_size: sequences per ``generate`` call.
        seed: seeds sampling; the caller's global torch RNG state is left untouched.
    Returns:
        ``out[i][j]``: the j-th completion of prompt i, special tokens removed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _generate(model, tokenizer, prompts, k, do_sample, temperature, max_new_tokens,
                         batch_size, desc)


def _generate(model, tokenizer, prompts, k, do_sample, temperature, max_new_tokens, batch_size,
              desc):
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    jobs = sorted((lengths[i], i, j) for i in range(len(prompts)) for j in range(k))
    out: list[list[str | None]] = [[None] * k for _ in prompts]
    bar = tqdm(total=len(jobs), desc=desc or "generate", unit="seq", disable=desc is None,
               mininterval=2.0)
    n_tokens = 0
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        enc = tokenizer([prompts[i] for _, i, _ in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        seqs = model.generate(**enc, do_sample=do_sample, temperature=temperature if do_sample else None,
                              top_k=None, top_p=None, max_new_tokens=max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = seqs[:, enc["input_ids"].shape[1]:]
        n_tokens += int((new != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        for (_, i, j), text in zip(chunk, texts):
            out[i][j] = text.strip()
        bar.update(len(chunk))
        bar.set_postfix(tok_s=f"{n_tokens / max(bar.format_dict['elapsed'], 1e-9):.0f}")
    bar.close()
    tokenizer.padding_side = side
    model.train(was_training)
    return out
