"""GRPO training through TRL's GRPOTrainer with per-prompt reward regimes.

A selection plan routes every pool prompt to ``annotate`` (gold verifiable
reward, answer fetched through the annotation oracle), ``self`` (a label-free
reward chosen by the plan's ``self_reward``: agreement with the majority answer
of the prompt's own group, TTRL, or the policy's self-certainty, Intuitor) or
``defer`` (not trained). Each regime is one reward function that returns
``None`` for prompts of other regimes; TRL sums rewards with nansum.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from pivottrace.io import atomic_dir
from pivottrace.rollouts import generate
from pivottrace.verifiers import Verifier

GOLD, SELF, SELF_CERTAINTY = "gold", "self", "self_certainty"


def make_gold_reward(verifier: Verifier):
    """Reward 1/0 from the verifier for gold-regime prompts, None elsewhere."""

    def gold_reward(completions, answer, regime, **_):
        return [float(verifier.verify(c, a)) if r == GOLD else None
                for c, a, r in zip(completions, answer, regime)]

    return gold_reward


def make_majority_reward(verifier: Verifier, log: list | None = None):
    """TTRL reward: 1 if a completion's answer equals its group's majority answer.

    Groups are the completions sharing a prompt ``id`` within one reward call
    (TRL's sampler keeps a prompt's ``num_generations`` completions together).
    Ties are broken by the smallest answer string, so the reward is
    deterministic; a group with no parseable answer gets 0 everywhere.

    Args:
        verifier: extracts answers from completions.
        log: if given, one ``{id: [majority answer or None, votes, group size]}``
            dict is appended per call (the pseudo-labels; for analysis only,
            see :class:`PseudoLabelCallback`).
    """

    def majority_reward(completions, id, regime, **_):  # noqa: A002 (TRL passes the column name)
        answers = [verifier.extract(c) for c in completions]
        groups: dict[str, Counter] = defaultdict(Counter)
        sizes: Counter = Counter()
        for i, a, r in zip(id, answers, regime):
            if r == SELF:
                sizes[i] += 1
                if a is not None:
                    groups[i][a] += 1
        majority = {i: min(cnt.items(), key=lambda kv: (-kv[1], kv[0])) for i, cnt in groups.items()}
        if log is not None and sizes:
            log.append({i: [*majority.get(i, (None, 0)), n] for i, n in sorted(sizes.items())})
        return [(float(a is not None and a == majority[i][0]) if r == SELF and i in majority
                 else (0.0 if r == SELF else None))
                for i, a, r in zip(id, answers, regime)]

    return majority_reward


def make_self_certainty_reward(holder: dict, batch_size: int = 64):
    """Intuitor reward: the policy's mean self-certainty KL(U || p) over a completion's tokens.

    ``holder["model"]`` must be set to the policy before training (the reward
    reads the current weights); the prompt is re-encoded with
    ``holder["tokenizer"]`` and the completion's token ids come from TRL. GRPO
    normalises rewards within each group, so only their order within a group
    matters. None for prompts of other regimes.
    """
    from pivottrace.scoring import token_entropy_and_self_certainty

    @torch.no_grad()
    def self_certainty_reward(prompts, completion_ids, regime, **_):
        out: list[float | None] = [None] * len(regime)
        idx = [i for i, r in enumerate(regime) if r == SELF_CERTAINTY]
        model, tok = holder["model"], holder["tokenizer"]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            p_ids = [tok(prompts[i], add_special_tokens=False)["input_ids"] for i in chunk]
            c_ids = [list(completion_ids[i]) for i in chunk]
            width = max(len(p) + len(c) for p, c in zip(p_ids, c_ids))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (p, c) in enumerate(zip(p_ids, c_ids)):
                ids[row, :len(p) + len(c)] = torch.tensor(p + c)
                mask[row, :len(p) + len(c)] = 1
            device = next(model.parameters()).device
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            _, cert = token_entropy_and_self_certainty(logits)
            for row, (i, p, c) in enumerate(zip(chunk, p_ids, c_ids)):
                if not c:
                    out[i] = 0.0
                    continue  # positions len(p)-1 .. len(p)+len(c)-2 predict the completion
                out[i] = float(cert[row, len(p) - 1:len(p) + len(c) - 1].mean())
        return out

    return self_certainty_reward


class PseudoLabelCallback(TrainerCallback):
    """Moves the majority-vote pseudo-labels of each step into ``state.log_history``.

    Stored as ``{"pl_step": step, "pseudo_labels": {id: [answer, votes, n]}}`` so
    they are checkpointed and survive a resume. Never read by training; the
    record rule compares them with gold after the fact.
    """

    def __init__(self, buffer: list):
        self.buffer = buffer

    def on_step_end(self, args, state, control, **kw):
        merged: dict = {}
        for entry in self.buffer:
            merged.update(entry)
        self.buffer.clear()
        if merged:
            state.log_history.append({"pl_step": state.global_step, "pseudo_labels": merged})


def training_rows(plan: dict, pool, gold: dict[str, str]) -> list[dict]:
    """Dataset rows for GRPO from a plan; deferred prompts are dropped.

    Args:
        plan: the selection plan (routes id -> annotate/self/defer).
        pool: the :class:`~pivottrace.pool.UnlabeledPool` (no answers).
        gold: answers of the annotated ids, as returned by the oracle.
    """
    rows = []
    for item in pool:
        route = plan["routes"][item.id]
        if route == "defer":
            continue
        if route == "annotate":
            regime = GOLD
        else:
            regime = SELF_CERTAINTY if plan.get("self_reward") == "self_certainty" else SELF
        rows.append({"prompt": item.prompt, "id": item.id, "regime": regime,
                     "answer": gold[item.id] if regime == GOLD else ""})
    return rows


def greedy_accuracy(model, tokenizer, rows: list[dict], verifier: Verifier,
                    max_new_tokens: int, batch_size: int) -> float:
    """Greedy accuracy of ``model`` on labeled rows (dev curve)."""
    outs = generate(model, tokenizer, [r["prompt"] for r in rows], k=1, do_sample=False,
                    max_new_tokens=max_new_tokens, batch_size=batch_size)
    return sum(verifier.verify(o[0], r["answer"]) for o, r in zip(outs, rows)) / len(rows)


class DevCurveCallback(TrainerCallback):
    """Logs greedy dev accuracy every ``every`` steps into ``state.log_history``.

    The entries live in the trainer state, so they are saved with checkpoints
    and restored on resume (the curve of a resumed run equals an uninterrupted one).
    """

    def __init__(self, tokenizer, rows, verifier, every, max_new_tokens, batch_size):
        self.tokenizer, self.rows, self.verifier, self.every = tokenizer, rows, verifier, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def _log(self, state, model):
        if any(h.get("dev_step") == state.global_step for h in state.log_history):
            return
        acc = greedy_accuracy(model, self.tokenizer, self.rows, self.verifier,
                              self.max_new_tokens, self.batch_size)
        state.log_history.append({"dev_step": state.global_step, "dev_accuracy": acc})

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:
            self._log(state, model)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._log(state, model)


#: Files HF Trainer writes into ``checkpoint-N`` (``trainer_state.json`` last) that a resume needs.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                    "trainer_state.json")


def checkpoint_step(ckpt: Path) -> int | None:
    """``global_step`` of a complete checkpoint directory, None for an incomplete one.

    HF Trainer writes a checkpoint in place and ``trainer_state.json`` last, so a
    run killed while saving leaves a ``checkpoint-N`` without a (parseable)
    state file or without one of :data:`CHECKPOINT_FILES`; resuming from it would fail.
    """
    import json

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
    import re
    import shutil

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


def train_grpo(model_dir: str | Path, rows: list[dict], dev_rows: list[dict], verifier: Verifier,
               cfg: dict, seed: int, work_dir: str | Path, out_dir: str | Path,
               runtime: dict | None = None) -> dict:
    """Train with GRPO and save the final model; resumes from the last complete checkpoint in ``work_dir``.

    Args:
        model_dir: the starting (base) model directory.
        rows: training rows from :func:`training_rows`.
        dev_rows: labeled dev rows for the greedy convergence curve.
        cfg: the ``grpo`` config section.
        work_dir: checkpoints (kept so a killed run resumes exactly).
        out_dir: where the final model is saved.
        runtime: the ``runtime`` config section (device, bf16; :mod:`pivottrace.runtime`).
    Returns:
        Summary: steps, dev curve [[step, acc]...], reward means, wall time.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from pivottrace.runtime import resolve_device, use_bf16

    rt = {"runtime": runtime or {}}
    on_cpu = resolve_device(rt).type == "cpu"
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    work_dir = Path(work_dir)
    args = GRPOConfig(
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
        use_cpu=on_cpu,
        bf16=use_bf16(rt),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        seed=seed,
        data_seed=seed,
        disable_tqdm=False,
        **vllm_kwargs(cfg),
    )
    callback = DevCurveCallback(tokenizer, dev_rows[: cfg["dev_n"]], verifier, cfg["eval_every"],
                                cfg["max_completion_length"], 128)
    pl_buffer: list = []
    holder = {"tokenizer": tokenizer, "model": model}
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_gold_reward(verifier), make_majority_reward(verifier, pl_buffer),
                      make_self_certainty_reward(holder)],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[callback, PseudoLabelCallback(pl_buffer)],
    )
    holder["model"] = trainer.model  # the policy whose weights the self-certainty reward reads
    last = last_complete_checkpoint(work_dir)
    has_ckpt = last is not None
    t0 = time.perf_counter()
    if has_ckpt and last[1] >= cfg["max_steps"]:
        # Killed after the final checkpoint: HF Trainer resumed at global_step ==
        # max_steps would run one extra step, so restore the finished state instead.
        from transformers import TrainerState

        trainer.state = TrainerState.load_from_json(str(last[0] / "trainer_state.json"))
        done = AutoModelForCausalLM.from_pretrained(last[0])
        trainer.model.load_state_dict(done.state_dict())
    else:
        trainer.train(resume_from_checkpoint=str(last[0]) if has_ckpt else None)
    wall = time.perf_counter() - t0
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:  # one writer under `accelerate launch` (DDP)
        with atomic_dir(out_dir) as tmp:  # a kill while saving leaves no model directory
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(str(tmp))
    hist = trainer.state.log_history
    curve = sorted({h["dev_step"]: h["dev_accuracy"] for h in hist if "dev_step" in h}.items())
    reward_keys = sorted({k for h in hist for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    rewards = {k: [h[k] for h in hist if h.get(k) is not None] for k in reward_keys}
    pseudo = [[h["pl_step"], h["pseudo_labels"]] for h in hist if "pl_step" in h]
    return {
        "steps": trainer.state.global_step,
        "dev_curve": [[s, a] for s, a in curve],
        "reward_means": {k: (sum(v) / len(v) if v else None) for k, v in rewards.items()},
        "train_wall_s": wall,
        "resumed": has_ckpt,
        "resumed_from_step": last[1] if has_ckpt else None,
        "pseudo_labels": pseudo,
    }

