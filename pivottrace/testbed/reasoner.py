"""The base reasoner of the embedded testbed, built from scratch.

A word-level tokenizer over the task vocabulary and a small Llama causal LM,
saved as a standard Hugging Face directory (``AutoTokenizer`` /
``AutoModelForCausalLM`` load it, so TRL and lm-eval use it unchanged), then
warm-started by SFT (a plain loop, completion-only loss, sequences packed
into rows) on traces of the noisy teacher of :mod:`pivottrace.testbed.modchain`.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A whitespace-split word-level tokenizer: one token per task word.

    Args:
        words: the task vocabulary, without special tokens.
    Returns:
        A fast tokenizer whose ``decode`` joins words with single spaces.
    """
    specials = [PAD, BOS, EOS, UNK]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
    )
    return tok


def build_model(tokenizer: PreTrainedTokenizerFast, cfg: dict, seed: int) -> LlamaForCausalLM:
    """A randomly initialised small Llama sized by the ``model`` config section.

    Llama rather than Qwen2: transformers 5.x's ``AutoTokenizer`` replaces the
    saved tokenizer of a ``qwen2`` directory with a byte-level Qwen2Tokenizer
    (``MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS``), which would silently
    re-tokenise prompts inside TRL and lm-eval; a ``llama`` directory keeps it.
    """
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_heads"],
        num_key_value_heads=cfg["num_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_sft(tokenizer, records: list[dict], max_length: int) -> list[tuple[list[int], int]]:
    """Token ids of ``prompt + completion + eos`` and the prompt length, per record."""
    out = []
    for r in records:
        p = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        c = tokenizer(r["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (p + c)[:max_length]
        out.append((ids, len(p)))
    return out


def packed_batch(encoded: list[tuple[list[int], int]], idx: list[int], pad_id: int
                 ) -> dict[str, torch.Tensor]:
    """Model inputs of one SFT batch, several sequences packed per row.

    The batch's sequences are placed first-fit, longest first, into rows as
    wide as its longest sequence; each keeps its own positions (from 0) and a
    block-diagonal causal mask keeps them apart, so the loss and gradients equal
    those of one padded row per sequence (to float rounding) while about half as
    many positions are computed on the default traces. Labels are -100 on prompt
    tokens and padding (completion-only loss); the first token of a packed
    sequence is a prompt token, so no loss crosses a sequence boundary.

    The mask is explicit: transformers 5.23 also infers packing from restarting
    ``position_ids`` when no mask is given, but that path let packed sequences
    see each other here (logits off by up to 0.8), the explicit mask does not.

    Args:
        encoded: ``(token ids, prompt length)`` per record (:func:`encode_sft`).
        idx: the records of this batch.
        pad_id: the padding token id.
    Returns:
        ``input_ids``, ``labels``, ``position_ids`` (R, W), ``attention_mask``
        (R, 1, W, W) boolean (True = attend), and ``n_tokens`` (real tokens).

    Examples:
        >>> b = packed_batch([([5, 6, 7], 1), ([8, 9], 1), ([4], 1)], [0, 1, 2], pad_id=0)
        >>> b["input_ids"].tolist(), b["position_ids"].tolist()
        ([[5, 6, 7], [8, 9, 4]], [[0, 1, 2], [0, 1, 0]])
        >>> b["labels"].tolist(), b["attention_mask"][1, 0].int().tolist()
        ([[-100, 6, 7], [-100, 9, -100]], [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    """
    order = sorted(idx, key=lambda i: (-len(encoded[i][0]), i))
    width = len(encoded[order[0]][0])
    rows: list[list] = []  # [used width, member records]
    for i in order:
        n = len(encoded[i][0])
        row = next((r for r in rows if r[0] + n <= width), None)
        if row is None:
            rows.append([n, [i]])
        else:
            row[0] += n
            row[1].append(i)
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, -100, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    seg = torch.full(shape, -1, dtype=torch.long)  # padding: a segment of its own
    for r, (_, members) in enumerate(rows):
        o = 0
        for k, i in enumerate(members):
            seq, plen = encoded[i]
            n = len(seq)
            ids[r, o:o + n] = torch.tensor(seq)
            labels[r, o + plen:o + n] = torch.tensor(seq[plen:])
            pos[r, o:o + n] = torch.arange(n)
            seg[r, o:o + n] = k
            o += n
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    mask = (seg[:, :, None] == seg[:, None, :]) & causal
    mask |= torch.eye(width, dtype=torch.bool)  # a padding position sees itself (no empty row)
    return {"input_ids": ids, "labels": labels, "position_ids": pos,
            "attention_mask": mask[:, None], "n_tokens": int((seg >= 0).sum())}


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor of step ``step``: linear warm-up to 1, then cosine decay to 0.

    Hand-written rather than ``transformers.get_cosine_schedule_with_warmup``:
    that schedule starts its warm-up at factor 0 (``step / warmup``), this one at
    ``1 / warmup`` (``(step + 1) / warmup``), so the first step learns; after the
    warm-up the two are equal (``tests/test_sft_packing.py``). Switching would
    change the base model and every downstream number.

    Examples:
        >>> [round(warmup_cosine(s, 2, 6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def sft(model, tokenizer, records: list[dict], cfg: dict, seed: int) -> dict:
    """Warm-start SFT on teacher traces, loss on completion tokens only.

    A plain loop (AdamW, linear warm-up, cosine decay) over uniformly random
    batches, each packed into rows by :func:`packed_batch`. Measured side by
    side on 2 CPU cores (AMD EPYC, default model, batch 64, 22 steps): 620-760
    ms per step with one padded row per sequence, 350-410 ms packed, with the
    same losses to 1e-5. Batches of similar length (bucketing) were as fast but
    changed the model: at the same 1,500 steps the final loss was 0.128 instead
    of 0.081 and the sampled pool accuracy 0.25 instead of 0.47 (measured on a
    GPU), so the batches stay random. TRL's SFTTrainer ran at 5.3k tokens/s in
    an earlier measurement, below this loop.

    Args:
        records: dicts with ``prompt`` and ``completion`` (teacher traces).
        cfg: the ``sft`` config section (max_steps, batch_size, learning_rate,
            warmup_steps, max_length, weight_decay).
        seed: seeds the batch order.
    Returns:
        Summary: steps, tokens seen, positions computed (packed rows x width),
        loss curve, wall time.
    """
    from tqdm.auto import tqdm

    encoded = encode_sft(tokenizer, records, cfg["max_length"])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"],
                            weight_decay=cfg["weight_decay"], betas=(0.9, 0.98))
    steps, warm = cfg["max_steps"], cfg["warmup_steps"]

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, warm, steps))
    device = next(model.parameters()).device
    model.train()
    curve, tokens, computed, t0 = [], 0, 0, time.perf_counter()
    order, pos = torch.empty(0, dtype=torch.long), 0
    bar = tqdm(range(steps), desc="sft", unit="step", mininterval=2.0)
    running = None
    for step in bar:
        if pos + cfg["batch_size"] > len(order):  # a new epoch; the partial last batch is dropped
            order, pos = torch.randperm(len(encoded), generator=gen), 0
        idx = order[pos : pos + cfg["batch_size"]].tolist()
        pos += cfg["batch_size"]
        batch = packed_batch(encoded, idx, tokenizer.pad_token_id)
        n_real = batch.pop("n_tokens")
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += n_real
        computed += batch["input_ids"].numel()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            curve.append([step, round(running, 4)])
            bar.set_postfix(loss=f"{running:.3f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
    model.eval()
    wall = time.perf_counter() - t0
    return {"steps": steps, "tokens": tokens, "computed_positions": computed,
            "tokens_per_s": tokens / wall, "loss_curve": curve, "final_loss": curve[-1][1],
            "wall_s": wall}
