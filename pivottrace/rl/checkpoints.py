"""Resumable GRPO checkpoints: where a run keeps them and which one a rerun resumes from."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from pivottrace.core.io import model_fingerprint


def checkpoint_dir(work_dir: Path, plan_path: Path, model_dir: Path, grpo: dict, seed: int) -> Path:
    """Checkpoints live under a key of everything that determines the run.

    A rerun after a kill resumes only from checkpoints of the same plan, base
    model, GRPO settings and seed; anything else starts afresh.
    """
    h = hashlib.sha256(plan_path.read_bytes())
    h.update(model_fingerprint(model_dir).encode())
    h.update(json.dumps({"grpo": grpo, "seed": seed}, sort_keys=True).encode())
    return Path(work_dir) / h.hexdigest()[:16]


#: Files HF Trainer writes into ``checkpoint-N`` (``trainer_state.json`` last) that a resume needs.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                    "trainer_state.json")


def checkpoint_step(ckpt: Path) -> int | None:
    """``global_step`` of a complete checkpoint directory, None for an incomplete one.

    HF Trainer writes a checkpoint in place and ``trainer_state.json`` last, so a
    run killed while saving leaves a ``checkpoint-N`` without a (parseable)
    state file or without one of :data:`CHECKPOINT_FILES`; resuming from it would fail.
    """
    if not all((ckpt / f).is_file() for f in CHECKPOINT_FILES):
        return None
    try:
        step = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) and ckpt.name == f"checkpoint-{step}" else None


def last_complete_checkpoint(work_dir: str | Path) -> tuple[Path, int] | None:
    """The newest complete ``checkpoint-N`` in ``work_dir`` and its step, or None.

    Incomplete checkpoints newer than it (a kill during a save) are deleted so
    that the resumed run writes them afresh.
    """
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return None
    ckpts = sorted((int(m.group(1)), d) for d in work_dir.iterdir()
                   if d.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", d.name)))
    for _, d in reversed(ckpts):
        step = checkpoint_step(d)
        if step is not None:
            return d, step
        shutil.rmtree(d, ignore_errors=True)
    return None
