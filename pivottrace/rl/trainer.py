"""``GRPOTrainer`` that skips the loss forward and backward of zero-advantage completions.

A GRPO group whose rewards are all equal has advantage exactly 0 for every
completion (DESIGN.md section 4: "compute that taught nothing"). Under the
``dapo`` loss (TRL's default) with ``beta = 0``, no entropy bonus and no
entropy mask, such a completion's per-token loss is ``-min(r * 0, clip(r) * 0)
= 0`` and its gradient is exactly zero, while the loss normalizer is
``num_items_in_batch``, the token count of the *whole* generation batch, which
:func:`_subset_rows` leaves untouched. So running the policy forward and
backward on the other rows only gives the same loss and the same gradient as
TRL (to float rounding: the matmuls see fewer rows), for the share of the batch
that had zero advantage (``frac_reward_zero_std``, 0.2-0.55 of the groups in
the default grid) less work. TRL's logged ``entropy`` and clip ratios then
cover the trained rows only; nothing of the suite reads them.

Where the skip would change the objective (other loss types normalize by the
rows present; a KL term or an entropy bonus gives zero-advantage rows a
gradient; an entropy mask takes a quantile over the rows present) it is off and
the trainer is TRL's (:func:`skip_is_exact`). ``grpo.skip_zero_advantage:
false`` turns it off everywhere.

The trainer's rollouts also decode with the suite's in-place key/value cache
(:mod:`pivottrace.core.kv_cache`: the same tokens as TRL's, without a
``torch.cat`` of the whole cache at every decoding step) and drop each finished
completion from the batch (:mod:`pivottrace.core.pruned_decoding`: the same tokens
and random stream as TRL's, without forwards on rows that already emitted EOS),
and every forward over
completions (the policy's loss, the reference model's log-probabilities) runs on
rows grouped by length without the padding a group shares: a GRPO batch is padded
to its longest prompt and longest completion (completions of the default testbed:
mean about 45 tokens, longest about 80), so TRL's one forward spends much of its
work on padding. Same log-probabilities to float rounding; ``grpo.trim_padding:
false`` turns it off.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from pivottrace.core.pruned_decoding import install_pruned_decoding

EXACT_LOSS_TYPES = frozenset({"dapo", "cispo"})
"""Loss types normalized by ``num_items_in_batch`` (not by the rows present) whose per-token
loss is a multiple of the advantage."""


def skip_is_exact(args) -> bool:
    """Whether dropping zero-advantage rows leaves TRL's loss and gradient unchanged for ``args``."""
    return (args.loss_type in EXACT_LOSS_TYPES and args.beta == 0.0
            and getattr(args, "entropy_coef", 0.0) == 0.0
            and not getattr(args, "use_adaptive_entropy", False)
            and getattr(args, "top_entropy_quantile", 1.0) == 1.0
            and not getattr(args, "use_liger_kernel", False))


def _subset_rows(inputs: dict, keep: torch.Tensor) -> dict:
    """``inputs`` with only the rows ``keep`` (indices) of every per-completion tensor or list.

    ``num_items_in_batch`` (a count over the whole batch) and every value that is not one row
    per completion are kept as they are.
    """
    n = inputs["advantages"].shape[0]
    out = {}
    for key, value in inputs.items():
        if key == "num_items_in_batch":
            out[key] = value
        elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n:
            out[key] = value[keep.to(value.device)]
        elif isinstance(value, list) and len(value) == n:
            out[key] = [value[i] for i in keep.tolist()]
        else:
            out[key] = value
    return out


def nonzero_advantage_rows(advantages: torch.Tensor) -> torch.Tensor:
    """Indices of the rows with a nonzero advantage; row 0 alone when there are none.

    Keeping one row when every advantage is 0 still runs a forward and backward (its loss is
    exactly 0), so every parameter gets a (zero) gradient as in TRL and DDP sees the same graph.

    Examples:
        >>> nonzero_advantage_rows(torch.tensor([0.0, 1.5, 0.0, -1.5])).tolist()
        [1, 3]
        >>> nonzero_advantage_rows(torch.zeros(4)).tolist()
        [0]
    """
    adv = advantages if advantages.dim() == 1 else advantages.abs().amax(dim=1)
    keep = torch.nonzero(adv != 0, as_tuple=True)[0]
    return keep if keep.numel() else torch.zeros(1, dtype=torch.long, device=advantages.device)


def length_chunks(attention_mask: torch.Tensor, rows_per_chunk: int) -> list[tuple[torch.Tensor, int, int]]:
    """Rows grouped by length, each group with the padding columns every row of it has.

    Returns ``(row indices, left, right)`` per chunk of at most ``rows_per_chunk`` rows
    (rows sorted by their number of attended tokens): columns ``[:left]`` and ``[right:]``
    are padding (mask 0) in every row of the chunk.

    Examples:
        >>> m = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0]])
        >>> [(r.tolist(), a, b) for r, a, b in length_chunks(m, 2)]
        [([2, 0], 1, 3), ([1], 0, 4)]
    """
    order = torch.argsort(attention_mask.sum(dim=1), stable=True)
    cols = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    chunks = []
    for start in range(0, len(order), rows_per_chunk):
        rows = order[start:start + rows_per_chunk]
        used = attention_mask[rows].any(dim=0)
        left = int(cols[used].min()) if used.any() else 0
        right = int(cols[used].max()) + 1 if used.any() else 1
        chunks.append((rows, left, right))
    return chunks


TRIM_CHUNKS = 4
"""Length groups a batch's forward is cut into (:meth:`SkipZeroAdvantageGRPOTrainer._get_per_token_logps_and_entropies`)."""

TRIM_MIN_ROWS = 8
"""Fewest rows per length group (smaller batches run as one, TRL's way)."""


class SkipZeroAdvantageGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` whose loss runs only on completions with a nonzero advantage
    (module docstring); TRL's own loss where that would not be exact. Rollouts use the
    in-place key/value cache and drop finished rows, and forwards over completions skip
    shared padding (``trim_padding``)."""

    def __init__(self, *args, skip_zero_advantage: bool = True, trim_padding: bool = True,
                 **kwargs):
        super().__init__(*args, **kwargs)
        install_pruned_decoding(self.model)
        self.trim_padding = bool(trim_padding)
        self.skip_zero_advantage = bool(skip_zero_advantage) and skip_is_exact(self.args)
        self.skipped_rows = 0
        """Completions whose loss forward and backward were skipped (all steps, this process)."""

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False,
                                           compute_aux_loss=False, **extra):
        """TRL's forward over completions, run on rows grouped by length without their shared padding.

        Rows are sorted by length and cut into :data:`TRIM_CHUNKS` groups; each group's
        forward drops the columns that are padding in all its rows (left: prompt padding;
        right: after the longest completion of the group), so the model sees fewer padded
        positions. Dropped right columns are padding in TRL's own call too (masked out of
        the loss and every logged metric); they come back as zeros. A left shift of every
        position of a row leaves rotary attention unchanged but for float rounding
        (``tests/test_trainer_skip.py`` checks log-probabilities and gradients against TRL's);
        a model without rotary embeddings keeps its left padding.
        Multimodal inputs, MoE auxiliary losses and batches too small to group go to TRL's own.
        """
        if (not self.trim_padding or compute_aux_loss or any(v is not None for v in extra.values())
                or input_ids.shape[0] < 2 * TRIM_MIN_ROWS):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **extra)
        n, width = input_ids.shape
        per_chunk = max(TRIM_MIN_ROWS, -(-n // TRIM_CHUNKS))
        rotary = getattr(getattr(model, "config", None), "rope_parameters", None) is not None
        logps = entropies = None
        for rows, left, right in length_chunks(attention_mask, per_chunk):
            left = left if rotary else 0  # absolute positions: keep every row's positions
            right = max(right, width - logits_to_keep + 1)  # keep >= 1 completion column
            keep = logits_to_keep - (width - right)
            lp, ent, _ = super()._get_per_token_logps_and_entropies(
                model, input_ids[rows, left:right], attention_mask[rows, left:right], keep,
                batch_size=batch_size, compute_entropy=compute_entropy)
            if logps is None:
                logps = lp.new_zeros((n, logits_to_keep))
                entropies = lp.new_zeros((n, logits_to_keep)) if compute_entropy else None
            logps = logps.index_put((rows[:, None], torch.arange(keep, device=lp.device)), lp)
            if compute_entropy:
                entropies = entropies.index_put(
                    (rows[:, None], torch.arange(keep, device=lp.device)), ent)
        return logps, entropies, None

    def _compute_loss(self, model, inputs):
        if not self.skip_zero_advantage or not self.model.training:
            return super()._compute_loss(model, inputs)
        keep = nonzero_advantage_rows(inputs["advantages"])
        n = inputs["advantages"].shape[0]
        if keep.numel() == n:
            return super()._compute_loss(model, inputs)
        self.skipped_rows += n - keep.numel()
        return super()._compute_loss(model, _subset_rows(inputs, keep))
