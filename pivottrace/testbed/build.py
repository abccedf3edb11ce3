"""Build the base reasoner (rule ``base_model``): tokenizer, from-scratch Llama, warm-start SFT.

Its measurement on the pool (rule ``base_report``) reads gold answers and so lives in
:mod:`pivottrace.labeled.base_report`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pivottrace.core.io import atomic_dir, read_jsonl, write_json
from pivottrace.core.runtime import autocast, resolve_device
from pivottrace.testbed import modchain as mc
from pivottrace.testbed.reasoner import build_model, build_tokenizer, n_parameters, sft

log = logging.getLogger(__name__)


def link_base(src: Path, out_dir: Path) -> dict:
    """Use an existing local Hugging Face model directory as the base model (``model.path``).

    Files are hard-linked where the file system allows (no copy of multi-GB
    weights), else copied; the source is checked first (config, weights,
    tokenizer), so a missing or broken directory fails here, naming it.
    Snakemake's marker files are not linked: a shared ``.snakemake_timestamp``
    would make touching ``models/base`` touch the source directory too (when the
    source is itself a rule's output, e.g. ``models/smollm2``), and every later
    invocation would rerun the whole DAG from the data rule.
    """
    import os
    import shutil

    from pivottrace.core.io import check_model_dir

    src = Path(src)
    check_model_dir(src)

    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    with atomic_dir(out_dir) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=link_or_copy,
                        ignore=shutil.ignore_patterns(".git", ".cache", ".snakemake*"))
        summary = {"source": str(src.resolve()), "linked": True}
        write_json(tmp / "build.json", summary)
    log.info("base model: linked %s -> %s", src, out_dir)
    return summary


def build_base(cfg: dict, data_dir: Path, out_dir: Path) -> dict:
    """Tokenizer + from-scratch Llama + SFT on teacher traces, saved as an HF directory.

    With ``model.path`` set, that local model directory is used instead (:func:`link_base`).
    """
    if cfg["model"].get("path"):
        return link_base(Path(cfg["model"]["path"]), out_dir)
    t0 = time.perf_counter()
    task = cfg["task"]
    max_steps = max(s["max_steps"] for s in task["splits"].values())
    tokenizer = build_tokenizer(mc.vocabulary(task["modulus"], tuple(task["ops"]), max_steps))
    model = build_model(tokenizer, cfg["model"], seed=cfg["seed"]).to(resolve_device(cfg))
    records = read_jsonl(data_dir / "sft.jsonl", required={"prompt": str, "completion": str})
    log.info("base model: %d parameters, %d SFT traces", n_parameters(model), len(records))
    with autocast(cfg):
        summary = sft(model, tokenizer, records, cfg["sft"], seed=cfg["seed"])
    summary.update(n_parameters=n_parameters(model), n_sft_traces=len(records),
                   build_wall_s=time.perf_counter() - t0)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "build.json", summary)
    return summary
