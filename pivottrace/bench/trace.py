"""``pivottrace bench-trace``: the cost of tracing attention dynamics during generation.

The same rollouts (same prompts, greedy decoding, the same number of new
tokens, no early stop) are generated three ways, side by side in one run:

* ``plain``: SDPA ``model.generate`` (what scoring would cost without tracing);
* ``stream``: the same call inside :class:`pivottrace.method.trace.StreamingTracer`
  (statistics of the newest attention row of every layer, then ``result()``);
* ``eager``: ``attn_implementation="eager"`` with ``output_attentions=True``
  and ``return_dict_in_generate=True``: every attention map is kept, (B, H, P, P)
  at the prefill and (B, H, 1, T) per step, which grows as T^2.

Timing: one warm-up of every variant, then ``repeats`` rounds in which the
variants run interleaved (plain, stream, eager, plain, ...) so that drift of
the machine hits all of them alike; the median per variant of wall-clock
time and of process CPU time is reported (CPU time is the steadier one when
other jobs share the cores; ``--threads 1`` avoids waiting on a busy second
core). ``same_tokens`` says whether a variant generated exactly the plain ids.

Memory, per variant, from one extra (untimed) run:

* ``retained_MB``: bytes of tracing state alive after generation (the tracer's
  stored rows and statistics, or the returned attention maps; 0 for plain).
  This is what grows with the sequence: linear for ``stream``, T^2 for ``eager``.
* ``peak_MB``: on CUDA, ``torch.cuda.max_memory_allocated`` above the level
  before the run; on CPU, the high-water mark of the process RSS above its
  level before the run (freed heap returned to the OS first with glibc's
  ``malloc_trim``), sampled every millisecond by a thread: an estimate that
  includes the activations and KV cache every variant needs.

The model is a randomly initialised Llama (tracing cost does not depend on
the weights), sized so that the default benchmark finishes in about two
minutes on 2 CPU cores. The last printed line is
``trace_overhead_ratio=<stream/plain wall time at the longest prompt length>``.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

VARIANTS = ("plain", "stream", "eager")


@dataclass
class BenchConfig:
    prompt_lengths: Sequence[int] = (64, 256, 1024)
    new_tokens: int = 32
    batch_size: int = 4
    repeats: int = 5
    device: str = "auto"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    vocab_size: int = 8192
    seed: int = 0


@dataclass
class Row:
    prompt_length: int
    variant: str
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    retained_bytes: int = 0
    peak_bytes: int | None = None
    same_tokens: bool = True

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_times)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else mps if available, else cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def build_bench_model(bc: BenchConfig, device: torch.device):
    """A randomly initialised Llama with sharp attention, in eval mode on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(bc.seed)
    max_len = max(bc.prompt_lengths) + bc.new_tokens + 8
    config = LlamaConfig(
        vocab_size=bc.vocab_size,
        hidden_size=bc.hidden_size,
        intermediate_size=bc.hidden_size * 8 // 3 // 8 * 8,
        num_hidden_layers=bc.num_layers,
        num_attention_heads=bc.num_heads,
        num_key_value_heads=bc.num_heads,
        max_position_embeddings=max_len,
        initializer_range=0.1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).to(device).eval()


def make_batch(bc: BenchConfig, prompt_length: int, device: torch.device) -> dict:
    """Left-padded random prompts; row i is ``prompt_length * (1 - i/16)`` tokens long."""
    g = torch.Generator().manual_seed(bc.seed + prompt_length)
    b = bc.batch_size
    lengths = [max(1, prompt_length - (i % 8) * prompt_length // 16) for i in range(b)]
    ids = torch.zeros(b, prompt_length, dtype=torch.long)
    mask = torch.zeros(b, prompt_length, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, prompt_length - n:] = torch.randint(3, bc.vocab_size, (n,), generator=g)
        mask[i, prompt_length - n:] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "lengths": lengths}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gen_kwargs(bc: BenchConfig) -> dict:
    # Greedy and no EOS: every variant generates exactly new_tokens tokens per row.
    return dict(max_new_tokens=bc.new_tokens, do_sample=False, top_k=None, top_p=None,
                temperature=None, eos_token_id=None, pad_token_id=0)


@torch.no_grad()
def run_variant(model, variant: str, batch: dict, bc: BenchConfig) -> tuple[torch.Tensor, int]:
    """One generation; returns (generated ids, bytes of tracing state kept)."""
    enc = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    kw = _gen_kwargs(bc)
    width = enc["input_ids"].shape[1]
    if variant == "plain":
        out = model.generate(**enc, **kw)
        return out[:, width:], 0
    if variant == "stream":
        from pivottrace.method.trace import StreamingTracer

        with StreamingTracer(model, layers="all", prompt_lengths=batch["lengths"]) as tr:
            out = model.generate(**enc, **kw)
        retained = sum(t.numel() * t.element_size() for t in tr.tensors())
        tr.result()
        return out[:, width:], retained
    if variant == "eager":
        original = model.config._attn_implementation
        model.set_attn_implementation("eager")
        try:
            out = model.generate(**enc, **kw, output_attentions=True, return_dict_in_generate=True)
        finally:
            model.set_attn_implementation(original)
        retained = sum(a.numel() * a.element_size() for step in out.attentions for a in step)
        return out.sequences[:, width:], retained
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc), so an RSS delta sees a run's own allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _RssPeak:
    """High-water mark of the process RSS while the ``with`` block runs (sampling thread)."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak: int | None = None
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            r = _rss_bytes()
            if r is not None and (self.peak is None or r > self.peak):
                self.peak = r
            time.sleep(self.interval_s)

    def __enter__(self):
        self.base = _rss_bytes()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def delta(self) -> int | None:
        if self.base is None or self.peak is None:
            return None
        return self.peak - self.base


def measure_peak(model, variant: str, batch: dict, bc: BenchConfig,
                 device: torch.device) -> int | None:
    """Peak memory above the starting level of one (untimed) run of ``variant``."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        gen, _ = run_variant(model, variant, batch, bc)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del gen
        return peak
    if _rss_bytes() is None:
        return None
    _malloc_trim()
    with _RssPeak() as rp:
        gen, _ = run_variant(model, variant, batch, bc)
        del gen
    return rp.delta


def run_bench(bc: BenchConfig, log=print) -> list[Row]:
    """Time and measure every variant at every prompt length (see the module docstring)."""
    device = resolve_device(bc.device)
    model = build_bench_model(bc, device)
    rows: list[Row] = []
    for plen in bc.prompt_lengths:
        batch = make_batch(bc, plen, device)
        by_variant = {v: Row(plen, v) for v in VARIANTS}
        reference = None
        for v in VARIANTS:  # warm-up, and the retained state / token check
            gen, retained = run_variant(model, v, batch, bc)
            by_variant[v].retained_bytes = retained
            if reference is None:
                reference = gen
            by_variant[v].same_tokens = bool(torch.equal(gen, reference))
            del gen
        for _ in range(bc.repeats):
            for v in VARIANTS:
                gc.collect()
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                gen, _ = run_variant(model, v, batch, bc)
                _sync(device)
                by_variant[v].times.append(time.perf_counter() - t0)
                by_variant[v].cpu_times.append(time.process_time() - c0)
                del gen
        for v in VARIANTS:
            by_variant[v].peak_bytes = measure_peak(model, v, batch, bc, device)
        rows.extend(by_variant.values())
        plain = by_variant["plain"].median_s
        log(f"# prompt {plen}: " + ", ".join(
            f"{v} {by_variant[v].median_s:.3f}s ({by_variant[v].median_s / plain:.2f}x)"
            for v in VARIANTS))
    return rows


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return (f"cpu {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores")


def format_table(rows: list[Row], bc: BenchConfig) -> str:
    """The result table; its last line is ``trace_overhead_ratio=<x>``."""
    device = resolve_device(bc.device)
    peak_kind = ("torch.cuda.max_memory_allocated delta" if device.type == "cuda"
                 else "process RSS high-water delta, sampled every 1 ms")
    plain = {r.prompt_length: r.median_s for r in rows if r.variant == "plain"}
    plain_cpu = {r.prompt_length: r.median_cpu_s for r in rows if r.variant == "plain"}
    lines = [
        f"# bench-trace: {machine_description(device)}; torch {torch.__version__}",
        f"# random Llama hidden {bc.hidden_size}, {bc.num_layers} layers, {bc.num_heads} heads, "
        f"vocab {bc.vocab_size}; batch {bc.batch_size}, {bc.new_tokens} new tokens (greedy, no EOS), "
        f"left-padded prompts; median of {bc.repeats} interleaved repeats after warm-up",
        f"# retained_MB = tracing state kept after generate (tracer rows+stats / attention maps); "
        f"peak_MB = {peak_kind}",
        "# wall_s, cpu_s = median wall-clock / process CPU seconds per generate call; ratio, "
        "cpu_ratio = over plain at the same prompt length (CPU time is the steadier one on a "
        "shared machine)",
        f"{'prompt':>6} {'variant':<7} {'wall_s':>8} {'ratio':>6} {'cpu_s':>8} {'cpu_ratio':>9} "
        f"{'retained_MB':>12} {'peak_MB':>9} {'same_tokens':>11}",
    ]
    for r in rows:
        peak = "n/a" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}"
        lines.append(
            f"{r.prompt_length:>6} {r.variant:<7} {r.median_s:>8.3f} "
            f"{r.median_s / plain[r.prompt_length]:>6.3f} {r.median_cpu_s:>8.3f} "
            f"{r.median_cpu_s / max(plain_cpu[r.prompt_length], 1e-9):>9.3f} "
            f"{r.retained_bytes / 2**20:>12.3f} "
            f"{peak:>9} {'yes' if r.same_tokens else 'no':>11}")
    longest = max(bc.prompt_lengths)
    stream = next(r.median_s for r in rows if r.variant == "stream" and r.prompt_length == longest)
    lines.append(f"trace_overhead_ratio={stream / plain[longest]:.3f}")
    return "\n".join(lines)


def main(bc: BenchConfig) -> str:
    rows = run_bench(bc)
    table = format_table(rows, bc)
    print(table, flush=True)
    return table
