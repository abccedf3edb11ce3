"""Greedy and sampled decoding that drops finished rows from the batch, with ``generate``'s exact output.

Hugging Face's ``generate`` keeps every row of a batch in every forward until the
last row has emitted EOS: a finished row is fed padding and its result thrown
away. In GRPO's rollouts (8 completions of 8 prompts whose lengths differ by
the number of steps in the chain) about half of the decoding work went to rows
that had already finished. :func:`pruned_decode` is a ``custom_generate``
callable for ``model.generate``: ``generate`` prepares the inputs, the cache, the
logits processors and the stopping criteria as usual, and this loop runs the
forwards on the unfinished rows only.

It changes nothing a caller can see: the same sequences (padding after EOS, the
same width) and the same random-number stream afterwards.

- Each kept row's forward is the row's forward in the full batch. Attention and
  the linear layers act row by row; ``tests/test_pruned_decoding.py`` checks
  bitwise equality against ``generate`` on CPU.
- Sampling draws from a full-batch probability table in which finished rows hold
  a dummy distribution. ``torch.multinomial`` with one sample draws
  exponentials for the whole table, row by row, whatever its values. So the kept
  rows get the tokens, and the generator the state, that ``generate`` would give.

It handles what the suite uses and hands anything else to ``generate``'s own
loop (:func:`supported` says which):
- processors: temperature only;
- stopping: EOS and the maximum length;
- no scores, logits, attentions or streamer;
- a decoder-only model whose cache can drop rows.

The returned cache (``return_dict_in_generate``) is not returned: it holds only
the rows still running at the end.
"""

from __future__ import annotations

import torch
from transformers.generation import (
    EosTokenCriteria,
    GenerateDecoderOnlyOutput,
    MaxLengthCriteria,
    TemperatureLogitsWarper,
)
from transformers.generation.utils import GENERATION_MODES_MAPPING

MODEL_KWARGS = frozenset({"attention_mask", "past_key_values", "use_cache", "position_ids",
                          "logits_to_keep"})
"""The ``model_kwargs`` this loop knows how to feed (anything else: ``generate``'s own loop)."""


def supported(model, logits_processor, stopping_criteria, generation_config, model_kwargs) -> bool:
    """Whether :func:`pruned_decode` reproduces ``generate`` for this call exactly."""
    gc = generation_config
    cache = model_kwargs.get("past_key_values")
    return (not model.config.is_encoder_decoder
            and (gc.num_beams or 1) == 1
            and getattr(gc, "_pad_token_tensor", None) is not None
            and not (gc.output_scores or gc.output_logits or gc.output_attentions
                     or gc.output_hidden_states)
            and all(isinstance(p, TemperatureLogitsWarper) for p in logits_processor)
            and all(isinstance(c, (EosTokenCriteria, MaxLengthCriteria)) for c in stopping_criteria)
            and sum(isinstance(c, MaxLengthCriteria) for c in stopping_criteria) == 1
            and set(model_kwargs) <= MODEL_KWARGS
            and model_kwargs.get("attention_mask") is not None
            and model_kwargs.get("use_cache", True)
            and cache is not None and hasattr(cache, "batch_select_indices")
            and not getattr(cache, "is_compileable", False)
            and cache.get_seq_length() == 0)


def pruned_decode(model, input_ids, logits_processor, stopping_criteria, generation_config,
                  **model_kwargs):
    """``custom_generate`` for ``model.generate``: the decoding loop without finished rows.

    Falls back to the loop ``generate`` would have run (sampling, greedy or beam search)
    where :func:`supported` is false.
    """
    if not supported(model, logits_processor, stopping_criteria, generation_config, model_kwargs):
        return _generate_loop(model, generation_config)(
            model, input_ids, logits_processor=logits_processor,
            stopping_criteria=stopping_criteria, generation_config=generation_config, **model_kwargs)
    pad = int(generation_config._pad_token_tensor)
    eos = torch.cat([c.eos_token_id.reshape(-1) for c in stopping_criteria
                     if isinstance(c, EosTokenCriteria)] or [torch.empty(0, dtype=torch.long)])
    eos = eos.to(input_ids.device)
    max_length = next(c.max_length for c in stopping_criteria if isinstance(c, MaxLengthCriteria))
    tokens = _decode(model, input_ids, model_kwargs, logits_processor,
                     do_sample=bool(generation_config.do_sample), eos=eos, pad=pad,
                     max_new=max_length - input_ids.shape[1])
    sequences = torch.cat([input_ids, tokens], dim=1)
    if generation_config.return_dict_in_generate:
        return GenerateDecoderOnlyOutput(sequences=sequences)
    return sequences


def _generate_loop(model, generation_config):
    """The loop ``generate`` itself would run for this configuration (sampling, greedy or beam
    search); other modes need arguments a ``custom_generate`` call does not receive."""
    mode = generation_config.get_generation_mode()
    method = GENERATION_MODES_MAPPING.get(mode)
    if method not in ("_sample", "_beam_search"):
        raise NotImplementedError(f"pruned_decode: generation mode {mode.name} is not handled; "
                                  "call generate with custom_generate=None")
    return getattr(type(model), method)


def _decode(model, input_ids, model_kwargs, logits_processor, *, do_sample, eos, pad, max_new):
    """The loop: ``[batch, steps]`` new tokens, padding after each row's EOS."""
    batch = input_ids.shape[0]
    device = input_ids.device
    cache = model_kwargs["past_key_values"]
    mask = model_kwargs["attention_mask"]
    positions = model_kwargs.get("position_ids")
    if positions is None:
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    out = torch.full((batch, max(max_new, 0)), pad, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)  # batch row of each row still running
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    position = positions[:, -1:]
    steps = 0
    table = None
    while steps < max_new:
        # temperature only (supported()): the processors do not read the token ids
        scores = logits_processor(input_ids[rows], logits[:, -1].to(dtype=torch.float32))
        if do_sample:
            if table is None:
                table = scores.new_zeros(batch, scores.shape[-1])
            table.zero_()
            table[:, pad] = 1.0  # finished rows: a valid dummy distribution
            table[rows] = torch.softmax(scores, dim=-1)
            token = torch.multinomial(table, num_samples=1).squeeze(1)[rows]
        else:
            token = scores.argmax(dim=-1)
        out[rows, steps] = token
        steps += 1
        running = (~torch.isin(token, eos)).nonzero().squeeze(1)
        if steps == max_new or running.numel() == 0:
            break
        if running.numel() < rows.numel():
            cache.batch_select_indices(running)
            rows, token, mask, position = rows[running], token[running], mask[running], position[running]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        position = position + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position,
                       past_key_values=cache, use_cache=True).logits
    return out[:, :steps]


def install_pruned_decoding(model) -> None:
    """Make ``model.generate`` decode with :func:`pruned_decode` (and a fresh
    :class:`~pivottrace.core.kv_cache.GrowingCache` where the caller passes no cache).

    For generation code the suite does not call itself (TRL's rollouts). An instance
    attribute, so other models and the class are untouched; calling it twice installs
    it once; a caller's own ``custom_generate`` or cache is kept.
    """
    from pivottrace.core.kv_cache import install_growing_cache, wrap_generate

    install_growing_cache(model)
    wrap_generate(model, "_pruned_decoding",
                  lambda kwargs: kwargs.setdefault("custom_generate", pruned_decode))
