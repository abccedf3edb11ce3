"""Greedy evaluation of a causal LM on local JSONL splits through lm-eval.

Each split (rows ``{"id", "prompt", "answer", "difficulty"}``) becomes one
lm-eval ``generate_until`` task rendered from
``pivottrace/rl/lmeval_tasks/task_template.yaml`` into a temporary folder (with a
copy of ``lmeval_tasks/utils.py``, whose ``process_results_<verifier>`` hook
scores a completion with :func:`pivottrace.data.verifiers.get_verifier`), registered
with ``TaskManager(include_path=DIR, include_defaults=False)`` and run with
``lm_eval.simple_evaluate(..., log_samples=True)``. Nothing is downloaded: the
model, tokenizer and data are local, and the offline switches are set.

Decoding: zero-shot, no chat template, the context is the row's ``prompt``
exactly; greedy (``do_sample: false``); generation stops at the tokenizer's
EOS token (``eos_token_id`` passed to ``generate`` and the EOS text as the
``until`` stop string) or after ``max_new_tokens``. The completion is the
decoded text after the prompt with special tokens skipped, i.e. what
``model.generate(do_sample=False)`` per prompt gives when cut at the first EOS
(``tests/test_evaluate.py`` checks this agreement; lm-eval batches with left
padding, which on CPU float32 gave identical completions).

Public API:
    evaluate_split(model_dir, data_path, ...)    one split of a saved model
    evaluate_model(model, tokenizer, data_path, ...)  an already-loaded model
    evaluate_splits(model_or_dir, splits, ...)   several splits in one lm-eval run
    write_eval(model_dir, splits, out_path, ...) the CLI's JSON artifact

Pitfalls handled here (lm-eval 0.4.13, transformers 5.23):
    - ``AutoTokenizer`` on a ``qwen2`` model directory returns a byte-level
      ``Qwen2Tokenizer`` whatever ``tokenizer_config.json`` says, which breaks
      our word-level tokenizer (glued words, ``wait`` split into letters); the
      tokenizer is loaded with :func:`load_tokenizer` and handed to lm-eval,
      and any tokenizer that does not round-trip the prompts is refused.
    - HFLM decodes with ``skip_special_tokens=True``, so the stop string
      ``</s>`` never appears in the decoded text; a row of a batch stops at
      EOS only through ``generate``'s ``eos_token_id`` (taken from the
      generation config, and passed explicitly by the rendered task).
    - ``max_length`` defaults to ``max_position_embeddings`` (256 here);
      lm-eval asserts ``max_gen_toks < max_length`` (its own default
      ``max_gen_toks`` is 256) and left-truncates prompts longer than
      ``max_length - max_gen_toks`` with only a warning; both are checked here
      up front and ``max_length`` is passed explicitly.
    - ``simple_evaluate`` reseeds ``random``/``numpy``/``torch`` by default and
      lm-eval draws from the global ``random``; seeds are passed as None and
      the global RNG states are restored afterwards, so a training loop's
      streams are untouched. ``HFLM`` puts a passed model in eval mode;
      :func:`evaluate_model` restores the training flag.
    - ``results`` keys are ``"acc,none"``; per-sample outputs are under
      ``samples[task]`` in lm-eval's (length-sorted) order; they are sorted
      back to file order by ``doc_id`` here.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import string
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from pivottrace.core.io import read_jsonl, write_json
from pivottrace.core.manifest import device_name
from pivottrace.data.verifiers import get_verifier

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

TASKS_DIR = Path(__file__).resolve().parent / "lmeval_tasks"
TEMPLATE = TASKS_DIR / "task_template.yaml"
HOOKS = TASKS_DIR / "utils.py"
METRIC = "acc"
ROW_FIELDS = {"id": str, "prompt": str, "answer": str}


def lm_eval_version() -> str:
    return metadata.version("lm_eval")


def task_name(verifier: str, split_name: str) -> str:
    """The lm-eval task name of a split: ``pivottrace_<verifier>_<split>``."""
    return "pivottrace_" + re.sub(r"\W", "_", f"{verifier}_{split_name}")


def render_task(out_dir: str | os.PathLike, task: str, data_path: str | os.PathLike,
                verifier: str, max_new_tokens: int, eos_token: str, eos_token_id: int) -> Path:
    """Write ``<task>.yaml`` (from the template) and a copy of the hooks into ``out_dir``."""
    get_verifier(verifier)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        task=task,
        data_path=json.dumps(str(Path(data_path).resolve())),
        cache_dir=json.dumps(str(out_dir / "hf_datasets_cache")),
        verifier=verifier,
        stop=json.dumps(eos_token),
        max_new_tokens=int(max_new_tokens),
        eos_token_id=int(eos_token_id),
    )
    path = out_dir / f"{task}.yaml"
    path.write_text(text, encoding="utf-8")
    shutil.copyfile(HOOKS, out_dir / "utils.py")
    return path


def load_tokenizer(model_dir: str | os.PathLike):
    """The tokenizer saved in ``model_dir``, exactly as its ``tokenizer.json`` defines it.

    Not ``AutoTokenizer``: for ``model_type`` ``qwen2`` transformers 5 ignores
    ``tokenizer_config.json`` and builds a ``Qwen2Tokenizer`` (byte-level
    pre-tokenizer and decoder) over the saved vocabulary, which splits
    ``wait`` into letters and decodes ``b = 3 + 4`` as ``b=3+4``.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(model_dir)


def _check_tokenizer(tokenizer, rows: dict[str, list[dict]], n: int = 8) -> None:
    """Prompts must survive encode/decode: completions are decoded with the same tokenizer."""
    for split, split_rows in rows.items():
        for row in split_rows[:n]:
            ids = tokenizer(row["prompt"])["input_ids"]
            back = tokenizer.decode(ids, skip_special_tokens=True)
            if back.split() != row["prompt"].split():
                raise ValueError(
                    f"split {split!r}, row {row['id']!r}: the tokenizer "
                    f"({type(tokenizer).__name__}) does not round-trip the prompt "
                    f"({row['prompt']!r} -> {back!r}); load it with "
                    "pivottrace.rl.evaluate.load_tokenizer, not AutoTokenizer"
                )


def _context_limit(config) -> int | None:
    """The model's position limit, read the way lm-eval's ``resolve_max_length`` does."""
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    return None


def _check_inputs(splits: dict[str, str | os.PathLike], verifier: str,
                  limit: int | None) -> dict[str, list[dict]]:
    get_verifier(verifier)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or a positive int (first rows), got {limit!r}")
    if not splits:
        raise ValueError("no splits to evaluate")
    names = [task_name(verifier, s) for s in splits]
    if len(set(names)) != len(names):
        raise ValueError(f"split names {sorted(splits)} collide as lm-eval task names")
    from pivottrace.data.splits import check_answers

    rows = {name: read_jsonl(path, required=ROW_FIELDS) for name, path in splits.items()}
    for name, path in splits.items():
        check_answers(path, rows[name], verifier)  # a gold answer the verifier cannot parse
    return rows


def _check_lengths(tokenizer, rows: dict[str, list[dict]], max_new_tokens: int,
                   max_length: int | None) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token: generation could not stop")
    if max_length is None:
        return
    for split, split_rows in rows.items():
        longest = max(len(tokenizer(r["prompt"])["input_ids"]) for r in split_rows)
        if longest + max_new_tokens > max_length:
            raise ValueError(
                f"split {split!r}: longest prompt ({longest} tokens) + max_new_tokens "
                f"({max_new_tokens}) exceeds the model's max_length {max_length}; lm-eval "
                "would truncate prompts from the left"
            )


def _normalise(out: dict, task: str, verifier: str, split: str, n_rows: int,
               limit: int | None) -> dict[str, Any]:
    v = get_verifier(verifier)
    raw = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    samples = []
    for s in raw:
        completion = s["filtered_resps"][0]
        if isinstance(completion, list):  # lm-eval keeps a list when no filter collapses it
            completion = completion[0]
        samples.append({
            "id": s["doc"]["id"],
            "prompt": s["doc"]["prompt"],
            "completion": completion,
            "pred": v.extract(completion),
            "correct": bool(s[METRIC]),
        })
    expected = n_rows if limit is None else min(n_rows, int(limit))
    if len(samples) != expected:
        raise RuntimeError(f"lm-eval returned {len(samples)} samples for {task}, expected {expected}")
    accuracy = float(out["results"][task][f"{METRIC},none"])
    direct = sum(s["correct"] for s in samples) / len(samples)
    if abs(accuracy - direct) > 1e-9:
        raise RuntimeError(f"{task}: lm-eval accuracy {accuracy} != per-sample mean {direct}")
    return {"accuracy": accuracy, "n": len(samples), "samples": samples,
            "lm_eval_version": lm_eval_version(), "task": task, "split": split,
            "verifier": verifier}


@contextmanager
def _preserved_rng():
    """Restore the global ``random``/``numpy``/``torch`` RNG states afterwards: lm-eval
    draws from (and by default reseeds) them, which would shift a training run's streams."""
    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def _run(lm, model_args: dict | None, tokenizer, rows: dict[str, list[dict]],
         splits: dict[str, str | os.PathLike], verifier: str, max_new_tokens: int,
         batch_size: int, limit: int | None, device: str) -> dict[str, dict]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="pivottrace_lmeval_") as tmp:
        tasks = {}
        for split, path in splits.items():
            tasks[split] = task_name(verifier, split)
            render_task(tmp, tasks[split], path, verifier, max_new_tokens,
                        tokenizer.eos_token, tokenizer.eos_token_id)
        manager = TaskManager(include_path=tmp, include_defaults=False)
        with _preserved_rng():
            out = lm_eval.simple_evaluate(
                model=lm,
                model_args=model_args,
                tasks=list(tasks.values()),
                task_manager=manager,
                batch_size=batch_size,
                device=device,
                limit=limit,
                log_samples=True,
                bootstrap_iters=0,
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                fewshot_random_seed=None,
            )
    return {split: _normalise(out, task, verifier, split, len(rows[split]), limit)
            for split, task in tasks.items()}


def evaluate_splits(model: str | os.PathLike | Any, splits: dict[str, str | os.PathLike],
                    tokenizer=None, verifier: str = "modchain", max_new_tokens: int = 128,
                    batch_size: int = 64, limit: int | None = None,
                    device: str = "cpu", dtype: str = "float32") -> dict[str, dict]:
    """Evaluate several splits in one lm-eval run (the model is loaded once).

    Args:
        model: a saved model directory, or a loaded ``PreTrainedModel`` (then
            ``tokenizer`` is required and ``device`` is ignored: the model's is used).
        splits: split name -> JSONL path with rows ``id``, ``prompt``, ``answer``.
        verifier: a :func:`pivottrace.data.verifiers.get_verifier` name.
        limit: evaluate only the first ``limit`` rows of each split.
        device, dtype: where and in which precision a model directory is loaded
            (``runtime`` config; ignored for a loaded model).
    Returns:
        split name -> the dict described in :func:`evaluate_split`.
    Raises:
        pivottrace.core.io.DataError: a missing or malformed data file (names file, row, field).
        FileNotFoundError: a model directory without ``config.json``.
        ValueError: unknown verifier, or prompts too long for the model.
    """
    rows = _check_inputs(splits, verifier, limit)
    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoConfig

        # absolute: lm-eval's model-sha lookup then fails locally instead of asking the hub
        from pivottrace.core.io import check_model_dir

        model_dir = Path(model).resolve()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model}: not a model directory (no config.json)")
        check_model_dir(model_dir)  # corrupt config, weights or tokenizer: DataError naming the file
        if tokenizer is not None:
            raise ValueError("a model directory brings its own tokenizer; pass tokenizer=None")
        tok = load_tokenizer(model_dir)
        max_length = _context_limit(AutoConfig.from_pretrained(model_dir))
        _check_tokenizer(tok, rows)
        _check_lengths(tok, rows, max_new_tokens, max_length)
        model_args = {"pretrained": str(model_dir), "tokenizer": tok, "dtype": dtype}
        if max_length is not None:
            model_args["max_length"] = max_length
        return _run("hf", model_args, tok, rows, splits, verifier, max_new_tokens,
                    batch_size, limit, device)

    from lm_eval.models.huggingface import HFLM

    if tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer")
    max_length = _context_limit(model.config)
    _check_tokenizer(tokenizer, rows)
    _check_lengths(tokenizer, rows, max_new_tokens, max_length)
    was_training = model.training
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  max_length=max_length)
        return _run(lm, None, tokenizer, rows, splits, verifier, max_new_tokens,
                    batch_size, limit, device)
    finally:
        model.train(was_training)


def evaluate_split(model_dir: str | os.PathLike, data_path: str | os.PathLike,
                   verifier: str = "modchain", split_name: str = "test",
                   max_new_tokens: int = 128, batch_size: int = 64, limit: int | None = None,
                   device: str = "cpu") -> dict[str, Any]:
    """Greedy accuracy of the model saved in ``model_dir`` on one JSONL split.

    Returns:
        ``{"accuracy", "n", "samples", "lm_eval_version", "task", "split",
        "verifier"}``; ``samples`` are in file order, each
        ``{"id", "prompt", "completion", "pred", "correct"}``.
    """
    return evaluate_splits(model_dir, {split_name: data_path}, verifier=verifier,
                           max_new_tokens=max_new_tokens, batch_size=batch_size,
                           limit=limit, device=device)[split_name]


def evaluate_model(model, tokenizer, data_path: str | os.PathLike, verifier: str = "modchain",
                   split_name: str = "test", max_new_tokens: int = 128, batch_size: int = 64,
                   limit: int | None = None) -> dict[str, Any]:
    """:func:`evaluate_split` for an already-loaded model (e.g. inside a training loop).

    The model is wrapped in ``lm_eval.models.huggingface.HFLM`` on its own
    device; its train/eval mode is restored afterwards.
    """
    return evaluate_splits(model, {split_name: data_path}, tokenizer=tokenizer,
                           verifier=verifier, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, limit=limit)[split_name]


def write_eval(model_dir: str | os.PathLike, splits: dict[str, str | os.PathLike],
               out_path: str | os.PathLike, verifier: str = "modchain",
               max_new_tokens: int = 128, batch_size: int = 64, limit: int | None = None,
               device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """Evaluate ``splits`` and write one JSON atomically to ``out_path``.

    The file: ``{"model_dir", "verifier", "max_new_tokens", "limit",
    "lm_eval_version", "device", "accuracy": {split: acc},
    "splits": {split: evaluate_split-style dict}}``.
    Returns the same dict.
    """
    results = evaluate_splits(model_dir, splits, verifier=verifier,
                              max_new_tokens=max_new_tokens, batch_size=batch_size,
                              limit=limit, device=device, dtype=dtype)
    record = {
        "model_dir": str(model_dir),
        "verifier": verifier,
        "max_new_tokens": max_new_tokens,
        "limit": limit,
        "lm_eval_version": lm_eval_version(),
        "device": device_name(),  # where the model was evaluated (the run record's manifest)
        "accuracy": {name: r["accuracy"] for name, r in results.items()},
        "splits": results,
    }
    write_json(out_path, record)
    return record
