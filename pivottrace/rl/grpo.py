"""GRPO through TRL's ``GRPOTrainer`` on the rows of a plan, with per-prompt reward regimes.

:func:`train_grpo` reads top to bottom, as open-r1's ``grpo.py``: arguments
(:func:`grpo_args`), the trainer with its rewards and callbacks
(:func:`build_trainer`), training or exact resume (:func:`train_or_restore`),
saving the model (:func:`export_model`) and the summary (:func:`summarize`).
Rewards live in :mod:`pivottrace.rl.rewards`, callbacks in
:mod:`pivottrace.rl.callbacks`, checkpoint handling in
:mod:`pivottrace.rl.checkpoints`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pivottrace.core.io import atomic_dir
from pivottrace.data.verifiers import Verifier
from pivottrace.rl.callbacks import DevCurveCallback, PseudoLabelCallback
from pivottrace.rl.checkpoints import last_complete_checkpoint
from pivottrace.rl.rewards import (
    make_gold_reward,
    make_majority_reward,
    make_self_certainty_reward,
)


def vllm_kwargs(cfg: dict) -> dict:
    """GRPOConfig arguments for vLLM rollouts (``grpo.use_vllm``); {} when off.

    ``use_vllm: auto`` uses vLLM when it is installed and a GPU is visible, else
    Hugging Face generate (logged).

    Raises:
        ValueError: ``use_vllm`` is true but vllm is not installed (say so before
            the model is loaded, not deep inside TRL).
    """
    import importlib.util
    import logging

    want = cfg.get("use_vllm", False)
    if want is False:
        return {}
    have = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if want == "auto" and not have:
        logging.getLogger(__name__).warning(
            "grpo.use_vllm=auto: vllm or a GPU is missing, rollouts use Hugging Face generate")
        return {}
    if importlib.util.find_spec("vllm") is None:
        raise ValueError("grpo.use_vllm is true but vllm is not installed (pip install 'trl[vllm]')")
    return {"use_vllm": True, "vllm_mode": cfg.get("vllm_mode", "colocate"),
            "vllm_gpu_memory_utilization": float(cfg.get("vllm_gpu_memory_utilization", 0.3))}


def grpo_args(cfg: dict, seed: int, work_dir: Path, runtime: dict | None, **overrides):
    """``trl.GRPOConfig`` from the ``grpo`` config section (and ``runtime``: device, bf16).

    ``overrides`` replace single arguments (``pivottrace bench-train`` turns saving off).
    """
    from trl import GRPOConfig

    from pivottrace.core.runtime import resolve_device, use_bf16

    rt = {"runtime": runtime or {}}
    kwargs = dict(
        output_dir=str(work_dir),
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["prompts_per_step"] * cfg["num_generations"],
        num_generations=cfg["num_generations"],
        max_completion_length=cfg["max_completion_length"],
        temperature=cfg["temperature"],
        learning_rate=cfg["learning_rate"],
        beta=cfg["beta"],
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg["save_steps"],
        report_to=[],
        use_cpu=resolve_device(rt).type == "cpu",
        bf16=use_bf16(rt),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        lr_scheduler_type=cfg.get("lr_scheduler", "linear"),
        warmup_steps=int(cfg.get("warmup_steps", 0)),
        num_iterations=int(cfg.get("num_iterations", 1)),
        adam_epsilon=float(cfg.get("adam_epsilon", 1e-8)),
        seed=seed,
        data_seed=seed,
        disable_tqdm=False,
        **vllm_kwargs(cfg),
    )
    return GRPOConfig(**{**kwargs, **overrides})


def build_trainer(model_dir: str | Path, rows: list[dict], dev_rows: list[dict],
                  verifier: Verifier, cfg: dict, args, dev_start: float | None = None):
    """The GRPO trainer (:class:`~pivottrace.rl.trainer.SkipZeroAdvantageGRPOTrainer`): one reward
    function per regime, the dev-curve and pseudo-label callbacks (``dev_start``: the
    curve's step-0 accuracy, computed once per base model)."""
    from datasets import Dataset

    from pivottrace.rl.trainer import SkipZeroAdvantageGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    pl_buffer: list = []
    holder = {"tokenizer": tokenizer, "model": model}
    trainer = SkipZeroAdvantageGRPOTrainer(
        model=model,
        reward_funcs=[make_gold_reward(verifier),
                      make_majority_reward(verifier, pl_buffer, cfg["num_generations"]),
                      make_self_certainty_reward(holder)],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[DevCurveCallback.for_grpo(tokenizer, dev_rows, verifier, cfg, start=dev_start),
                   PseudoLabelCallback(pl_buffer)],
        skip_zero_advantage=cfg.get("skip_zero_advantage", True),
        trim_padding=cfg.get("trim_padding", True),
    )
    holder["model"] = trainer.model  # the policy whose weights the self-certainty reward reads
    return trainer


def train_or_restore(trainer, work_dir: Path, max_steps: int) -> int | None:
    """Train, resuming from the last complete checkpoint in ``work_dir``; its step, or None.

    A run killed after its final checkpoint is restored rather than resumed:
    HF Trainer resumed at ``global_step == max_steps`` would run one extra step.
    """
    last = last_complete_checkpoint(work_dir)
    if last is not None and last[1] >= max_steps:
        from transformers import TrainerState

        trainer.state = TrainerState.load_from_json(str(last[0] / "trainer_state.json"))
        done = AutoModelForCausalLM.from_pretrained(last[0])
        trainer.model.load_state_dict(done.state_dict())
    else:
        trainer.train(resume_from_checkpoint=str(last[0]) if last is not None else None)
    return None if last is None else last[1]


def export_model(trainer, out_dir: str | Path) -> None:
    """Save the final model and tokenizer atomically, from the main process only (DDP)."""
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:  # one writer under `accelerate launch`
        with atomic_dir(out_dir) as tmp:  # a kill while saving leaves no model directory
            trainer.save_model(str(tmp))
            trainer.processing_class.save_pretrained(str(tmp))


def summarize(log_history: list[dict], steps: int, wall: float, resumed_from: int | None) -> dict:
    """Steps, dev curve ``[[step, acc], ...]``, reward means, the mean share of GRPO groups
    with equal rewards (TRL's ``frac_reward_zero_std``), pseudo-labels and wall time."""
    curve = sorted({h["dev_step"]: h["dev_accuracy"] for h in log_history if "dev_step" in h}.items())
    reward_keys = sorted({k for h in log_history for k in h
                          if k.startswith("rewards/") and k.endswith("/mean")})
    rewards = {k: [h[k] for h in log_history if h.get(k) is not None] for k in reward_keys}
    zero_std = [h["frac_reward_zero_std"] for h in log_history if "frac_reward_zero_std" in h]
    return {
        "steps": steps,
        "dev_curve": [[s, a] for s, a in curve],
        "reward_means": {k: (sum(v) / len(v) if v else None) for k, v in rewards.items()},
        "frac_reward_zero_std": sum(zero_std) / len(zero_std) if zero_std else None,
        "train_wall_s": wall,
        "resumed": resumed_from is not None,
        "resumed_from_step": resumed_from,
        "pseudo_labels": [[h["pl_step"], h["pseudo_labels"]] for h in log_history if "pl_step" in h],
    }


def train_grpo(model_dir: str | Path, rows: list[dict], dev_rows: list[dict], verifier: Verifier,
               cfg: dict, seed: int, work_dir: str | Path, out_dir: str | Path,
               runtime: dict | None = None, dev_start: float | None = None) -> dict:
    """Train with GRPO and save the final model; resumes from the last complete checkpoint.

    Args:
        model_dir: the starting (base) model directory.
        rows: training rows from :func:`pivottrace.rl.rewards.training_rows`.
        dev_rows: labeled dev rows for the greedy convergence curve.
        verifier: answer checker of the gold and majority rewards.
        cfg: the ``grpo`` config section.
        seed: seeds the model, TRL's sampling and data order.
        work_dir: checkpoints (kept so a killed run resumes exactly).
        out_dir: where the final model is saved.
        runtime: the ``runtime`` config section (device, bf16; :mod:`pivottrace.core.runtime`).
        dev_start: the dev curve's step-0 accuracy when already known
            (:mod:`pivottrace.rl.dev_start`); None evaluates the base model.
    Returns:
        :func:`summarize` of the run.
    """
    work_dir = Path(work_dir)
    torch.manual_seed(seed)
    args = grpo_args(cfg, seed, work_dir, runtime)
    trainer = build_trainer(model_dir, rows, dev_rows, verifier, cfg, args, dev_start)
    t0 = time.perf_counter()
    resumed_from = train_or_restore(trainer, work_dir, cfg["max_steps"])
    wall = time.perf_counter() - t0
    export_model(trainer, out_dir)
    return summarize(trainer.state.log_history, trainer.state.global_step, wall, resumed_from)
