"""Attention dynamics of generated tokens, traced without storing attention maps.

For every generated token and every selected layer (heads averaged) three
statistics of the attention *row* that produced the token:

* ``lookback``: attention mass on prompt positions divided by the mass on
  prompt plus generated positions (Lookback Lens, with sums of weights rather
  than per-token means). Padding has zero probability and counts as neither.
* ``shift``: Jensen-Shannon divergence (nats, in ``[0, ln 2]``) between this
  row and the previous token's row, on their shared prefix (the keys the
  previous row could see), both rows renormalised on that prefix.
* ``entropy``: Shannon entropy (nats) of the row.

Each statistic is computed per head and then averaged over heads (for the
lookback ratio the two orders agree; for shift and entropy they do not).

Row convention (both paths). Write the padded sequence as ``L`` prompt slots
(left padding) followed by generated tokens ``g_1 .. g_N`` at positions
``L .. L+N-1``. Generated token ``g_t`` is *produced by* the attention row
whose query sits one position earlier:

* ``g_1`` by the row of the last prompt token (the last query row of the
  prefill, i.e. of ``model.generate``'s first forward);
* ``g_t`` (t >= 2) by the row of ``g_{t-1}`` (decode step ``t-1``, whose only
  query is ``g_{t-1}``).

So ``N`` generated tokens have exactly ``N`` rows: the prefill's last row plus
``N-1`` decode rows (the last generated token is never fed back). Row ``t``
sees the prompt and ``g_1 .. g_{t-1}``, which are exactly "the generated
positions before t". Consequences for the first generated token: its row sees
only prompt positions, so ``lookback[0] == 1`` exactly, and it has no previous
generated row, so ``shift[0] == 0`` by definition (not NaN, so downstream
robust statistics need no special case). ``entropy[0]`` is the ordinary
entropy of that row.

Two paths give the same numbers:

* :class:`StreamingTracer` wraps ``model.generate``: a registered attention
  function delegates the output to PyTorch SDPA and, for the newest query row
  of each selected layer only, recomputes the scores ``q k^T * scaling`` of
  that one row; after the last selected layer of a forward, the rows of all
  selected layers are masked, soft-maxed and reduced to the three statistics
  together (a fixed number of small kernels per decoding step, whatever the
  number of layers; no ``xlogy``, one ``log`` over the keys). Only the previous
  row per layer is kept (for the shift): memory is linear in the length. The
  cost left is one extra read of the keys per selected layer and step
  (``pivottrace bench-trace`` measures it).
* :func:`trace_forced` does one teacher-forced forward pass over finished
  sequences (e.g. from vLLM, which returns no attention) and computes the same
  rows in chunks of query rows inside the same attention function.

Both match statistics computed from eager attention maps
(``attn_implementation="eager"``, ``output_attentions=True``) to float32
rounding (the streaming path's rearranged sums to about 1e-6 absolute at a
thousand keys). Scores and softmax are computed in float32 whatever the model dtype.

Limitations: beam search (cache reordering), continuing from a filled cache,
static (pre-allocated) caches, attention softcapping, sinks and position
biases are not supported (they raise). Generic over Hugging Face causal LMs whose attention modules call
``ALL_ATTENTION_FUNCTIONS`` and carry ``layer_idx`` (Llama, Qwen2, Mistral ...),
including grouped-query attention.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTN_IMPLEMENTATION = "pivottrace_sdpa"
"""Name under which the tracing attention function and its mask are registered."""

STATS = ("lookback", "shift", "entropy")
"""Statistic names, in the order of the last axis of the internal buffers."""

# id(attention module) -> (recorder, column of that layer in the recorder)
_ACTIVE: dict[int, tuple[_Recorder, int]] = {}


# ---------------------------------------------------------------------------
# Row statistics (shared by both paths)
# ---------------------------------------------------------------------------


def _attention_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    q_pos: torch.Tensor | None,
) -> torch.Tensor:
    """Attention probabilities of some query rows, float32.

    Args:
        query: (B, H, R, d) the selected query rows.
        key: (B, Hkv, K, d) all keys (not repeated for GQA).
        mask: the rows of the 4D mask the model built, (B or 1, 1 or H, R, K),
            boolean (True = attend) or additive float; None means causal.
        scaling: the score scale.
        q_pos: (R,) key-axis position of each query row, for the causal cut
            when ``mask`` is None; None: no cut (the rows see every key).
    Returns:
        (B, H, R, K) rows summing to 1 (all-zero for fully masked rows).
    """
    b, h, r, d = query.shape
    h_kv, k_len = key.shape[1], key.shape[2]
    g = h // h_kv
    # Head h uses kv head h // g (as transformers' repeat_kv); no repeated copy of the keys.
    q = query.float().reshape(b, h_kv, g * r, d)
    scores = torch.matmul(q, key.float().transpose(-1, -2)).view(b, h, r, k_len) * scaling
    if mask is None:
        if q_pos is None:
            return torch.softmax(scores, dim=-1)
        allowed = torch.arange(k_len, device=scores.device)[None, :] <= q_pos[:, None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask[..., :k_len], float("-inf"))
    else:
        scores = scores + mask[..., :k_len].float()
    probs = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(probs, nan=0.0)


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(x, y)


def _row_stats(
    probs: torch.Tensor,
    prev: torch.Tensor,
    q_pos: torch.Tensor,
    prompt_end: torch.Tensor,
) -> torch.Tensor:
    """Reduce attention rows to (lookback, shift, entropy), heads averaged.

    Args:
        probs: (B, H, R, K) rows; row ``r`` has query at key position ``q_pos[r]``.
        prev: (B, H, R, K) the previous token's row for each row (zeros where
            there is none; the caller overwrites those shifts).
        q_pos: (R,) query positions; the shared prefix of row ``r`` and its
            previous row is the keys ``< q_pos[r]``.
        prompt_end: (B,) keys at positions ``< prompt_end[b]`` are prompt.
    Returns:
        (B, R, 3) float32 statistics in the order of :data:`STATS`.
    """
    k_len = probs.shape[-1]
    keys = torch.arange(k_len, device=probs.device)
    is_prompt = (keys[None, :] < prompt_end[:, None]).to(probs.dtype)[:, None, None, :]
    total = probs.sum(-1)
    prompt_mass = (probs * is_prompt).sum(-1)
    lookback = torch.where(total > 0, prompt_mass / total.clamp_min(1e-30), torch.nan)
    entropy = -_xlogy(probs, probs).sum(-1)

    prefix = (keys[None, :] < q_pos[:, None]).to(probs.dtype)[None, None]
    p = probs * prefix
    q = prev * prefix
    shift = _js_divergence(p, q)
    return torch.stack([lookback, shift, entropy], dim=-1).mean(dim=1)


def _js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) over the last axis, both rows renormalised first."""
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    q = q / q.sum(-1, keepdim=True).clamp_min(1e-30)
    # clamp: 0.5 * (p + q) underflows to 0 for p or q at the smallest subnormal (KL -> inf)
    m = (0.5 * (p + q)).clamp_min(1e-38)
    kl_pm = (_xlogy(p, p) - _xlogy(p, m)).sum(-1)
    kl_qm = (_xlogy(q, q) - _xlogy(q, m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)


_MASKED = -1.0e30
"""Score of a masked key in the streaming path: finite, so its log-probability is
finite too, ``exp`` of it is exactly 0 in float32 and ``0 * logp == 0``; masked keys
need no special case (and no NaN clean-up pass) in the dot products."""
_LN2 = 0.6931471805599453


def _newest_row_scores(
    query: torch.Tensor, key: torch.Tensor, scaling: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Scaled attention scores of the newest query row, float32, no mask yet (streaming path).

    Args:
        query: (B, H, R, d); only the last row ``R - 1`` is used.
        key: (B, Hkv, K, d) all keys (not repeated for GQA).
        scaling: the score scale.
        out: optional contiguous float32 (B, H, K) to write into.
    Returns:
        (B, H, K) scores.
    """
    b, h, _, d = query.shape
    h_kv, k_len = key.shape[1], key.shape[2]
    # Head h uses kv head h // g (as transformers' repeat_kv); no repeated copy of the keys.
    q = query[:, :, -1:, :]
    q = (q if q.dtype == torch.float32 else q.float()) * scaling
    k = key if key.dtype == torch.float32 else key.float()
    if out is None:
        out = torch.empty(b, h, k_len, dtype=torch.float32, device=query.device)
    torch.matmul(q.view(b, h_kv, h // h_kv, d), k.transpose(-1, -2),
                 out=out.view(b, h_kv, h // h_kv, k_len))
    return out


def _mask_newest_row(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply the last query row of a 4D mask to (..., B, H, K) scores, in place.

    ``mask``: (B or 1, 1 or H, R, K'), boolean (True = attend) or additive
    float; None: no mask (the newest row sees every key, no causal cut needed).
    """
    if mask is None:
        return scores
    row = mask[..., -1, : scores.shape[-1]]  # (B or 1, 1 or H, K)
    if row.dtype == torch.bool:
        return scores.masked_fill_(~row, _MASKED)
    return scores.add_(row.float()).clamp_min_(_MASKED)  # -inf entries -> finite


def _log_probs(scores: torch.Tensor) -> torch.Tensor:
    """Log-softmax over keys (masked keys get about :data:`_MASKED`, probability 0).

    A fully masked row would come out uniform; it cannot occur in generation
    (the newest token always sees itself, and prompts are left padded).
    """
    return torch.log_softmax(scores, dim=-1)


def _newest_row_stats(
    logp: torch.Tensor,
    prev: tuple[torch.Tensor, torch.Tensor] | None,
    prompt_width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_row_stats` for one newest row per sequence, in O(K) cheap kernels.

    Same statistics as :func:`_row_stats`, rearranged so that no ``xlogy`` (a
    slow kernel on CPU) and only one ``log`` over the keys is needed: with
    ``p' = p[:n] / c`` (``c = sum(p[:n])``, ``n = K - 1``), previous row ``q``
    and ``m = (p' + q) / 2``,
    ``KL(p'||m) = (sum_{i<n} p_i log p_i) / c - log c - (p[:n] . log m) / c``
    where ``sum_{i<n} p_i log p_i`` is the row's ``p . log p`` (minus entropy)
    less its last term, and ``KL(q||m) = (q . log q) - q . log m`` with
    ``q . log q`` kept from the previous step. ``log m = log(p' + q) - ln 2``,
    and the ``ln 2`` terms are added to the per-head sums (``q`` sums to 1).

    Any leading dimensions (``...``) are batched, e.g. (L, B) for L layers at once.

    Args:
        logp: (..., H, K) from :func:`_log_probs` (query at key ``K - 1``).
        prev: the previous row ``q`` (..., H, K - 1) and its ``q . log q`` (..., H),
            or None for the first generated token.
        prompt_width: keys ``< prompt_width`` are prompt (or zero-probability padding).
    Returns:
        (stats (..., 3) in the order of :data:`STATS`, heads averaged;
        this row's probabilities (..., H, K); its ``p . log p`` (..., H)).
    """
    p = logp.exp()
    plogp = torch.linalg.vecdot(p, logp)
    if prompt_width >= p.shape[-1]:  # the first generated token sees only the prompt
        lookback = torch.ones_like(plogp)
    else:  # rows sum to 1 (softmax over finite scores): no division by the total
        lookback = p[..., :prompt_width].sum(-1)
    if prev is None:
        shift = torch.zeros_like(plogp)
    else:
        q, q_plogp = prev
        n = q.shape[-1]
        pp = p[..., :n]
        c = pp.sum(-1)
        cc = c.clamp_min(1e-30)
        # log(2m) = log(p' + q); 0 where both are 0, where the clamp keeps 0 * log finite
        log_2m = torch.addcmul(q, pp, cc.reciprocal().unsqueeze(-1)).clamp_min_(1e-38).log_()
        head = plogp - p[..., n] * logp[..., n]  # sum_{i<n} p_i log p_i
        kl_pm = (head - torch.linalg.vecdot(pp, log_2m)) / cc - torch.log(cc) + _LN2
        kl_pm = torch.where(c > 0, kl_pm, 0.0)  # p' == 0: 0 log 0 terms only
        kl_qm = q_plogp - torch.linalg.vecdot(q, log_2m) + _LN2
        shift = (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)
    stats = torch.stack([lookback, shift, -plogp], dim=-1).mean(dim=-2)
    return stats, p, plogp


# ---------------------------------------------------------------------------
# Recorders
# ---------------------------------------------------------------------------


class _Recorder:
    """Receives (query, key, mask) of selected layers from the attention function."""

    def observe(self, col, query, key, mask, scaling) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def tensors(self) -> Iterator[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class _StreamRecorder(_Recorder):
    """Newest-row statistics of every traced layer, one (L, B, 3) tensor per forward.

    Each layer's attention call only computes its newest row's scores (one
    matmul); when the last traced layer of a forward has been seen, the rows of
    all L layers are reduced together (masking, softmax and statistics batched
    over layers, so the number of small kernels per decoding step does not grow
    with L). Kept between forwards: the previous rows (L, B, H, K) and their
    ``p . log p`` (L, B, H), for the shift.
    """

    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.prev: tuple[torch.Tensor, torch.Tensor] | None = None
        self.steps: list[torch.Tensor] = []
        self.prompt_width: int | None = None
        self.prefill_rows: torch.Tensor | None = None
        self._pending: list = [None] * n_layers  # per layer: its mask, once its row is scored
        self._seen = [False] * n_layers
        self._n_pending = 0
        self._scores: torch.Tensor | None = None

    def observe(self, col, query, key, mask, scaling) -> None:
        q_len, k_len = query.shape[2], key.shape[2]
        first = self.prev is None
        if not first and q_len != 1:
            raise RuntimeError(
                "StreamingTracer saw a second multi-token forward: use one generate() call per "
                "tracer (beam search, assisted decoding and cache continuation are unsupported)."
            )
        if first:
            if k_len != q_len:
                raise RuntimeError(
                    "StreamingTracer needs generate() to start from an empty dynamic cache."
                )
            if self.prompt_width is None:
                self.prompt_width = k_len
        if self._seen[col]:
            raise RuntimeError("StreamingTracer saw a layer twice in one forward")
        self._seen[col] = True
        if self._n_pending == 0:  # the rows of all layers of this forward, (L, B, H, K)
            b, h = query.shape[:2]
            self._scores = torch.empty(self.n_layers, b, h, k_len, dtype=torch.float32,
                                       device=query.device)
        _newest_row_scores(query, key, scaling, out=self._scores[col])
        self._pending[col] = mask
        self._n_pending += 1
        if self._n_pending == self.n_layers:
            self._flush()

    def _flush(self) -> None:
        masks, self._pending, self._n_pending = self._pending, [None] * self.n_layers, 0
        self._seen = [False] * self.n_layers
        scores, self._scores = self._scores, None
        if all(m is masks[0] for m in masks):
            _mask_newest_row(scores, masks[0])
        else:  # e.g. sliding-window layers beside full-attention ones
            for i, m in enumerate(masks):
                _mask_newest_row(scores[i], m)
        stats, probs, plogp = _newest_row_stats(_log_probs(scores), self.prev, self.prompt_width)
        if self.prev is None:
            self.prefill_rows = probs[0].mean(1)  # (B, K), for the padding check
        self.prev = (probs, plogp)
        self.steps.append(stats)

    def tensors(self) -> Iterator[torch.Tensor]:
        if self.prev is not None:
            yield from self.prev
        if self.prefill_rows is not None:
            yield self.prefill_rows
        yield from self.steps


class _ForcedRecorder(_Recorder):
    """Computes every needed query row, chunk by chunk, into (B, T, 3) per layer."""

    def __init__(self, n_layers: int, prompt_end: torch.Tensor, row_start: int, chunk_size: int):
        self.prompt_end = prompt_end
        self.row_start = row_start
        self.chunk_size = chunk_size
        self.out: list[torch.Tensor | None] = [None] * n_layers

    def observe(self, col, query, key, mask, scaling) -> None:
        b, _, t, _ = query.shape
        if key.shape[2] != t:
            raise RuntimeError("trace_forced expects one forward pass without a cache.")
        out = torch.full((b, t, len(STATS)), torch.nan, device=query.device)
        prev = None
        for lo in range(self.row_start, t, self.chunk_size):
            hi = min(t, lo + self.chunk_size)
            q_pos = torch.arange(lo, hi, device=query.device)
            rows_mask = None if mask is None else mask[..., lo:hi, :]
            probs = _attention_rows(query[:, :, lo:hi, :], key, rows_mask, scaling, q_pos)
            first = torch.zeros_like(probs[:, :, :1, :]) if prev is None else prev
            prev_rows = torch.cat([first, probs[:, :, :-1, :]], dim=2)
            out[:, lo:hi] = _row_stats(probs, prev_rows, q_pos, self.prompt_end)
            prev = probs[:, :, -1:, :]
        self.out[col] = out

    def tensors(self) -> Iterator[torch.Tensor]:
        yield from (t for t in self.out if t is not None)


# ---------------------------------------------------------------------------
# The registered attention function
# ---------------------------------------------------------------------------


def traced_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """SDPA attention output, plus statistics of selected rows for an active tracer.

    Same signature and output as
    ``transformers.integrations.sdpa_attention.sdpa_attention_forward``; modules
    not registered with an active tracer pay nothing extra.
    """
    out = sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )
    entry = _ACTIVE.get(id(module))
    if entry is not None:
        if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
            raise NotImplementedError("attention softcapping / sinks are not traced")
        if kwargs.get("position_bias") is not None:
            raise NotImplementedError("attention position bias is not traced")
        recorder, col = entry
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        with torch.no_grad():
            recorder.observe(col, query.detach(), key.detach(), attention_mask, scale)
    return out


AttentionInterface.register(ATTN_IMPLEMENTATION, traced_sdpa_attention)
# Without a mask builder under the same name, transformers builds no mask at all
# for an unknown implementation and padding is silently ignored.
AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def resolve_layers(model: torch.nn.Module, layers: Sequence[int] | str = "all") -> list[int]:
    """Layer indices to trace: ``"all"`` or a list (negative indices count from the end).

    Examples:
        >>> class M: config = type("C", (), {"num_hidden_layers": 4})()
        >>> resolve_layers(M(), "all"), resolve_layers(M(), [0, -1])
        ([0, 1, 2, 3], [0, 3])
    """
    n = model.config.num_hidden_layers
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all' or a list of indices, got {layers!r}")
        return list(range(n))
    out = []
    for i in layers:
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise ValueError(f"layer {i} out of range for {n} layers")
        out.append(j)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate layers in {list(layers)}")
    return out


def _attention_modules(model: torch.nn.Module, layers: list[int]) -> dict[int, int]:
    """id(module) -> column, for every submodule whose ``layer_idx`` is selected."""
    col = {layer: c for c, layer in enumerate(layers)}
    found = {}
    seen_layers = set()
    for m in model.modules():
        idx = getattr(m, "layer_idx", None)
        if isinstance(idx, int) and idx in col and hasattr(m, "num_key_value_groups"):
            found[id(m)] = col[idx]
            seen_layers.add(idx)
    missing = set(layers) - seen_layers
    if missing:
        raise ValueError(f"no attention module with layer_idx in {sorted(missing)}")
    return found


@contextmanager
def _traced(model: torch.nn.Module, recorder: _Recorder, layers: list[int]):
    """Switch ``model`` to the tracing attention and route selected layers to ``recorder``."""
    original = model.config._attn_implementation
    ids = _attention_modules(model, layers)
    if any(i in _ACTIVE for i in ids):
        raise RuntimeError("this model is already being traced")
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    if model.config._attn_implementation != ATTN_IMPLEMENTATION:
        raise RuntimeError(
            f"{type(model).__name__} refused attention implementation {ATTN_IMPLEMENTATION!r} "
            "(it does not dispatch through AttentionInterface)"
        )
    try:
        for i, c in ids.items():
            _ACTIVE[i] = (recorder, c)
        yield
    finally:
        for i in ids:
            _ACTIVE.pop(i, None)
        model.set_attn_implementation(original)


def generated_lengths(
    generated: torch.Tensor | np.ndarray, eos_token_id: int | Sequence[int] | None
) -> list[int]:
    """Number of generated tokens per row, up to and including the first EOS.

    Args:
        generated: (B, N) generated ids only (``sequences[:, prompt_width:]``).
        eos_token_id: one id or several; None keeps all ``N``.

    Examples:
        >>> generated_lengths(np.array([[5, 2, 0], [5, 6, 7]]), eos_token_id=2)
        [2, 3]
    """
    gen = np.asarray(generated.cpu() if isinstance(generated, torch.Tensor) else generated)
    n = gen.shape[1]
    if eos_token_id is None:
        return [n] * gen.shape[0]
    eos = np.atleast_1d(np.asarray(eos_token_id))
    is_eos = np.isin(gen, eos)
    return [int(np.argmax(r)) + 1 if r.any() else n for r in is_eos]


def _to_result(stats: torch.Tensor, layers: list[int]) -> dict[str, np.ndarray]:
    """(n_tokens, n_layers, 3) -> {"lookback", "shift", "entropy": (n_tokens, n_layers), "layers"}."""
    arr = stats.detach().to("cpu", torch.float64).numpy()
    out = {name: np.ascontiguousarray(arr[..., i]) for i, name in enumerate(STATS)}
    out["layers"] = np.asarray(layers, dtype=np.int64)
    return out


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


class StreamingTracer:
    """Trace attention dynamics while ``model.generate`` runs (one call per tracer).

    Usage::

        with StreamingTracer(model, layers=[-2, -1]) as tr:
            out = model.generate(**enc, max_new_tokens=64)
        gen = out[:, enc["input_ids"].shape[1]:]
        stats = tr.result(lengths=generated_lengths(gen, tok.eos_token_id))

    Prompts must be left padded (the tokenizer default of the base model) so
    that the prompt occupies key positions ``< prompt_width`` (the prefill
    length) for every row. Greedy or sampled decoding, any batch size
    (``num_return_sequences`` included); no beam search.

    Args:
        model: a Hugging Face causal LM (its attention implementation is
            switched to :data:`ATTN_IMPLEMENTATION` inside the ``with`` block
            and restored afterwards, also on error).
        layers: ``"all"`` or layer indices (negative from the end).
        prompt_lengths: optional number of real (non-pad) prompt tokens per
            row; if given, the prefill row is checked to put no mass on the
            padding (guards against a mask that silently ignores padding).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Sequence[int] | str = "all",
        prompt_lengths: Sequence[int] | None = None,
    ):
        self.model = model
        self.layers = resolve_layers(model, layers)
        self.prompt_lengths = None if prompt_lengths is None else [int(x) for x in prompt_lengths]
        self._recorder = _StreamRecorder(len(self.layers))
        self._ctx = None

    def __enter__(self) -> StreamingTracer:
        self._ctx = _traced(self.model, self._recorder, self.layers)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        ctx, self._ctx = self._ctx, None
        ctx.__exit__(*exc)
        if exc[0] is None:
            self._check_padding()

    @property
    def prompt_width(self) -> int | None:
        """Padded prompt length seen at the prefill (None before generation)."""
        return self._recorder.prompt_width

    def _check_padding(self, tol: float = 1e-6) -> None:
        if self.prompt_lengths is None or self._recorder.prefill_rows is None:
            return
        rows = self._recorder.prefill_rows
        if len(self.prompt_lengths) != rows.shape[0]:
            raise ValueError(f"{len(self.prompt_lengths)} prompt_lengths for batch {rows.shape[0]}")
        for b, n in enumerate(self.prompt_lengths):
            pad = self.prompt_width - n
            if pad > 0 and float(rows[b, :pad].sum()) > tol:
                raise RuntimeError("attention mass on padding: the padding mask was ignored")

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every tensor the tracer holds (for memory accounting and tests)."""
        return self._recorder.tensors()

    def result(self, lengths: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
        """Per-row statistics of the generated tokens.

        Args:
            lengths: generated tokens to keep per row (e.g. from
                :func:`generated_lengths`); None keeps all steps. Rows of a
                finished sequence after its EOS are padding steps.
        Returns:
            One dict per batch row: ``lookback``, ``shift``, ``entropy`` as
            float64 arrays of shape (n_generated_tokens, n_layers), row ``t``
            for generated token ``t`` (see the module docstring), and ``layers``.
        """
        steps = self._recorder.steps
        if not steps:
            raise RuntimeError("nothing traced: call model.generate inside the tracer")
        stats = torch.stack(steps, dim=0)  # (N, n_layers, B, 3)
        b = stats.shape[2]
        if lengths is None:
            lengths = [stats.shape[0]] * b
        if len(lengths) != b:
            raise ValueError(f"{len(lengths)} lengths for batch {b}")
        return [_to_result(stats[: int(lengths[i]), :, i, :], self.layers) for i in range(b)]


@torch.no_grad()
def trace_forced(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    prompt_lengths: Sequence[int],
    layers: Sequence[int] | str = "all",
    position_ids: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> list[dict[str, np.ndarray]]:
    """Attention dynamics of already generated tokens from one teacher-forced pass.

    Args:
        model: a Hugging Face causal LM.
        input_ids: (B, T) prompt followed by its generated tokens, per row.
        attention_mask: (B, T) 1 for real tokens, 0 for padding (left and/or
            right); None means no padding. The real tokens of a row must be
            contiguous (padding only at the ends).
        prompt_lengths: real prompt tokens per row; the remaining real tokens
            are the generated ones.
        layers: ``"all"`` or layer indices (negative from the end).
        position_ids: (B, T); by default ``cumsum(mask) - 1`` as in
            ``model.generate``, so the statistics equal those traced during
            generation.
        chunk_size: query rows per chunk; at most (B, H, chunk_size, T) scores
            exist at once per layer.
    Returns:
        One dict per row as :meth:`StreamingTracer.result`, one entry per
        generated token (first EOS included if it is unmasked).
    """
    layer_ids = resolve_layers(model, layers)
    device = input_ids.device
    b, t = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    mask = attention_mask.to(device).long()
    if len(prompt_lengths) != b:
        raise ValueError(f"{len(prompt_lengths)} prompt_lengths for batch {b}")
    valid = mask.bool().cpu().numpy()
    prompt_end, gen_rows = [], []
    for i, n_prompt in enumerate(prompt_lengths):
        pos = np.flatnonzero(valid[i])
        if len(pos) and pos[-1] - pos[0] + 1 != len(pos):
            raise ValueError(f"row {i}: padding inside the sequence is not supported")
        if not 1 <= n_prompt <= len(pos):
            raise ValueError(f"row {i}: prompt length {n_prompt} with {len(pos)} real tokens")
        prompt_end.append(int(pos[n_prompt - 1]) + 1)
        gen_rows.append(pos[n_prompt:] - 1)  # the row producing each generated token
    if position_ids is None:
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    row_start = min(prompt_end) - 1
    recorder = _ForcedRecorder(
        len(layer_ids), torch.tensor(prompt_end, device=device), row_start, chunk_size
    )
    backbone = getattr(model, "base_model", model)
    was_training = model.training
    model.eval()
    try:
        with _traced(model, recorder, layer_ids):
            backbone(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids.to(device),
                use_cache=False,
            )
    finally:
        model.train(was_training)
    stats = torch.stack(recorder.out, dim=2)  # (B, T, n_layers, 3)
    results = []
    for i, rows in enumerate(gen_rows):
        s = stats[i, torch.as_tensor(rows, dtype=torch.long, device=device)]
        if len(rows):
            s[0, :, 1] = 0.0  # first generated token: no previous generated row
        results.append(_to_result(s, layer_ids))
    return results
