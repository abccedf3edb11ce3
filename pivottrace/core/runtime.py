"""Where models run: the optional ``runtime`` config section, read in one place.

``runtime.device``: ``auto`` (CUDA when visible, else CPU; the default), ``cpu``
or ``cuda``. ``runtime.bf16``: bfloat16 on CUDA (weights of inference rules,
autocast in the warm start, mixed precision in GRPO); false by default. Every
rule that loads a model (build-base, base-report, tune-pivots, score, train,
evaluate) asks this module, so one config line moves the whole DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch

DEVICES = ("auto", "cpu", "cuda")


def _section(cfg: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (cfg or {}).get("runtime") or {}


def resolve_device(cfg: Mapping[str, Any] | None) -> torch.device:
    """The device of ``runtime.device``; ``auto`` is CUDA when visible, else CPU.

    Raises:
        ValueError: ``cuda`` asked for on a machine without a visible GPU, or an
            unknown name.
    """
    name = _section(cfg).get("device", "auto")
    if name not in DEVICES:
        raise ValueError(f"runtime.device must be one of {list(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("runtime.device is 'cuda' but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use 'auto' or 'cpu'")
    return torch.device(name)


def use_bf16(cfg: Mapping[str, Any] | None) -> bool:
    """Whether ``runtime.bf16`` is on (only allowed on CUDA).

    Raises:
        ValueError: bf16 asked for on CPU (slow and not what the default numbers use).
    """
    want = bool(_section(cfg).get("bf16", False))
    if want and resolve_device(cfg).type != "cuda":
        raise ValueError("runtime.bf16 needs a CUDA device (runtime.device resolved to cpu)")
    return want


def model_dtype(cfg: Mapping[str, Any] | None) -> torch.dtype:
    """Weights dtype of inference rules: bfloat16 with ``runtime.bf16``, else float32."""
    return torch.bfloat16 if use_bf16(cfg) else torch.float32


def autocast(cfg: Mapping[str, Any] | None):
    """bf16 autocast context on CUDA with ``runtime.bf16``; a no-op otherwise."""
    if use_bf16(cfg):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def load_causal_lm(model_dir, cfg: Mapping[str, Any] | None):
    """``(model, tokenizer)`` from a local directory, in eval mode on the runtime device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=model_dtype(cfg))
    return model.to(resolve_device(cfg)).eval(), tokenizer
