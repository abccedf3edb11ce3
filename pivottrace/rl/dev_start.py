"""The dev curve's first point, computed once per base model (rule ``dev_start``).

Every GRPO run of a config starts from the same base model, and its step-0 dev
evaluation is greedy decoding of the same dev rows with the same settings on
the same device: the same number in every run. Rule ``dev_start`` computes it
once; ``pivottrace train --dev-start FILE`` logs it as the curve's step-0 entry
instead of evaluating again (one of the nine greedy evaluations of a default
run). The file names what it was computed for (:func:`start_key`), and a run
whose model, dev rows, dev-curve settings or device differ stops with an error
naming the field, so a stale file never enters a curve.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pivottrace.core.io import model_fingerprint, read_json, write_json


def start_key(model_dir: str | Path, dev_rows: list[dict], grpo: dict, device: str) -> dict:
    """Everything the step-0 greedy dev accuracy depends on.

    On the CPU that includes this process's torch thread count (a reduction split
    over another number of threads can round differently); the ``dev_start`` and
    ``train`` rules both run one thread.
    """
    import torch

    from pivottrace.rl.callbacks import DEV_BATCH_SIZE

    rows = [[r["id"], r["prompt"], str(r["answer"])] for r in dev_rows[: grpo["dev_n"]]]
    return {
        "model": model_fingerprint(model_dir),
        "dev_rows": hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16],
        "dev_n": len(rows),
        "max_new_tokens": grpo["max_completion_length"],
        "batch_size": DEV_BATCH_SIZE,
        "device": device,
        "threads": torch.get_num_threads() if device == "cpu" else None,
    }


def write_dev_start(path: str | Path, key: dict, accuracy: float) -> None:
    """The step-0 point and its key, atomically."""
    write_json(path, {"dev_step": 0, "dev_accuracy": accuracy, "key": key})


def read_dev_start(path: str | Path, key: dict) -> float:
    """The step-0 accuracy of ``path``, after checking it was computed for ``key``.

    Raises:
        ValueError: naming the file and the first field that differs.
    """
    data = read_json(path)
    try:
        stored, accuracy = data["key"], float(data["dev_accuracy"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a dev_start file (field {e} missing or malformed)") from e
    for field, value in key.items():
        if stored.get(field) != value:
            raise ValueError(
                f"{path}: field '{field}' is {stored.get(field)!r}, this run has {value!r}: the "
                "step-0 dev accuracy was computed for another model, dev split or setting "
                "(rerun rule dev_start, or train without --dev-start)")
    return accuracy


def compute_dev_start(cfg: dict, model_dir: str | Path, data_dir: str | Path, out: str | Path
                      ) -> float:
    """Rule ``dev_start``: the base model's greedy dev accuracy as a run's step 0 computes it.

    The model is loaded as the trainer holds it at step 0 (full precision, on the
    runtime device) and evaluated by the dev curve of the run's own config
    (:meth:`~pivottrace.rl.callbacks.DevCurveCallback.for_grpo`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pivottrace.core.io import check_model_dir
    from pivottrace.core.runtime import resolve_device
    from pivottrace.data.splits import load_labeled
    from pivottrace.data.verifiers import get_verifier
    from pivottrace.rl.callbacks import DevCurveCallback

    task, grpo = cfg["task"], cfg["grpo"]
    check_model_dir(model_dir)
    dev = load_labeled(Path(data_dir) / "dev.jsonl", task["verifier"], task.get("modulus"))
    device = resolve_device(cfg)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    curve = DevCurveCallback.for_grpo(tokenizer, dev, get_verifier(task["verifier"]), grpo)
    accuracy = curve.accuracy(model)
    write_dev_start(out, start_key(model_dir, dev, grpo, device.type), accuracy)
    return accuracy
