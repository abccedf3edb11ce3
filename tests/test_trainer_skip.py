"""Skipping zero-advantage completions in the GRPO loss (pivottrace/rl/trainer.py) changes no gradient.

One batch: the gradient with the skip equals TRL's own loss on every row (to
float rounding); the skip is on only where that holds (loss type, KL, entropy
terms); and a whole GRPO run with and without it ends with the same record and
nearly the same weights.
"""

import json

import pytest
import torch
from conftest import train_outputs

from pivottrace.data.splits import load_labeled
from pivottrace.data.verifiers import get_verifier
from pivottrace.rl.grpo import build_trainer, grpo_args
from pivottrace.rl.trainer import nonzero_advantage_rows, skip_is_exact

NO_KL = {"beta": 0.0}
"""The skip is exact only without a KL term (the default config trains with beta 0.1)."""


def _trainer(tiny, tmp_path, **overrides):
    cfg = tiny["cfg"]
    args = grpo_args({**cfg["grpo"], **NO_KL}, 0, tmp_path / "work", cfg.get("runtime"),
                     save_strategy="no", **overrides)
    dev = load_labeled(tiny["data"] / "dev.jsonl", cfg["task"]["verifier"], cfg["task"].get("modulus"))
    rows = [{"prompt": r["prompt"], "id": r["id"], "regime": "gold", "answer": r["answer"]}
            for r in dev[:4]]
    trainer = build_trainer(tiny["model"], rows, dev, get_verifier(cfg["task"]["verifier"]),
                            {**cfg["grpo"], **NO_KL}, args)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
    return trainer, rows


def _batch(trainer, rows, advantages):
    """A GRPO batch as TRL's scoring hands it to the loss: left-padded prompts, right-padded completions."""
    tok = trainer.processing_class
    tok.padding_side = "left"
    enc = tok([r["prompt"] for r in rows for _ in range(2)], return_tensors="pt", padding=True,
              add_special_tokens=False)
    g = torch.Generator().manual_seed(0)
    n, width = enc["input_ids"].shape[0], 7
    completion_ids = torch.randint(4, len(tok), (n, width), generator=g)
    lengths = torch.tensor([7, 3, 5, 7, 2, 6, 4, 1])[:n]
    completion_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return {"prompt_ids": enc["input_ids"], "prompt_mask": enc["attention_mask"],
            "completion_ids": completion_ids, "completion_mask": completion_mask,
            "advantages": advantages, "num_items_in_batch": completion_mask.sum()}


def _loss_and_grads(trainer, inputs, skip: bool):
    trainer.skip_zero_advantage = skip
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters()]


def test_skip_keeps_loss_and_gradient(tiny, tmp_path):
    trainer, rows = _trainer(tiny, tmp_path)
    assert trainer.skip_zero_advantage, "TRL's dapo loss with beta 0 allows the skip"
    adv = torch.tensor([0.0, 0.0, 1.2, -1.2, 0.0, 0.0, 0.7, -0.7])
    inputs = _batch(trainer, rows, adv)
    loss_all, grads_all = _loss_and_grads(trainer, inputs, skip=False)
    loss_skip, grads_skip = _loss_and_grads(trainer, inputs, skip=True)
    assert trainer.skipped_rows == 4
    assert torch.allclose(loss_all, loss_skip, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads_all)
    for a, b in zip(grads_all, grads_skip):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)
    # and the normalizer is the whole batch's: a zero-advantage row is not free to drop otherwise
    inputs_wrong = dict(inputs, num_items_in_batch=inputs["completion_mask"][adv != 0].sum())
    loss_wrong, _ = _loss_and_grads(trainer, inputs_wrong, skip=False)
    assert not torch.allclose(loss_all, loss_wrong)


def test_all_zero_advantages_give_a_zero_gradient(tiny, tmp_path):
    trainer, rows = _trainer(tiny, tmp_path)
    inputs = _batch(trainer, rows, torch.zeros(8))
    loss, grads = _loss_and_grads(trainer, inputs, skip=True)
    assert trainer.skipped_rows == 7 and float(loss) == 0.0
    assert all(float(g.abs().sum()) == 0.0 for g in grads)


@pytest.mark.parametrize("overrides", [{"loss_type": "grpo"}, {"loss_type": "bnpo"},
                                       {"loss_type": "dr_grpo"}, {"beta": 0.04},
                                       {"top_entropy_quantile": 0.5}])
def test_skip_is_off_where_it_would_change_the_loss(tiny, tmp_path, overrides):
    args = grpo_args(tiny["cfg"]["grpo"], 0, tmp_path, None, save_strategy="no", **overrides)
    assert not skip_is_exact(args)


def test_nonzero_rows_of_token_level_advantages():
    adv = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
    assert nonzero_advantage_rows(adv).tolist() == [1]


def test_a_run_with_the_skip_equals_one_without(tiny, mixed_plan, tmp_path):
    """A whole GRPO run without a KL term, skip on (the default) and off."""
    from pivottrace.core.config import deep_merge
    from pivottrace.rl.train import run_training

    summaries, outs = [], []
    for skip in (True, False):
        cfg = deep_merge(tiny["cfg"], {"grpo": {"skip_zero_advantage": skip, **NO_KL}})
        o = train_outputs(tmp_path / f"out_{skip}")
        run_training(cfg, mixed_plan, tiny["data"], tiny["model"], 0, tmp_path / f"work_{skip}",
                     o["model"], o["summary"], o["ledger"])
        summaries.append(json.loads(o["summary"].read_text()))
        outs.append(o)
    on, off = summaries
    assert on["frac_reward_zero_std"] > 0, "no equal-reward group: the skip was not exercised"
    for key in ("steps", "dev_curve", "reward_means", "pseudo_labels", "frac_reward_zero_std"):
        assert on[key] == off[key], key
    from safetensors.torch import load_file

    w_on = load_file(str(outs[0]["model"] / "model.safetensors"))
    w_off = load_file(str(outs[1]["model"] / "model.safetensors"))
    for name in w_on:
        torch.testing.assert_close(w_on[name], w_off[name], atol=1e-5, rtol=1e-4)


def test_optional_grpo_keys_reach_trl_and_defaults_are_transformers(tmp_path):
    """grpo.lr_scheduler, warmup_steps, num_iterations and adam_epsilon (ablation knobs; the
    default config leaves them unset) become GRPOConfig arguments; unset, TRL's defaults."""
    from pivottrace.core.config import ConfigError, load_config

    cfg = load_config()
    default = grpo_args(cfg["grpo"], 0, tmp_path, None)
    assert (str(default.lr_scheduler_type), default.warmup_steps, default.num_iterations,
            default.adam_epsilon) == ("SchedulerType.LINEAR", 0, 1, 1e-8)
    knobs = {"lr_scheduler": "constant_with_warmup", "warmup_steps": 3, "num_iterations": 2,
             "adam_epsilon": 1e-5}
    args = grpo_args({**cfg["grpo"], **knobs}, 0, tmp_path, None)
    assert (str(args.lr_scheduler_type), args.warmup_steps, args.num_iterations,
            args.adam_epsilon) == ("SchedulerType.CONSTANT_WITH_WARMUP", 3, 2, 1e-5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo:\n  lr_scheduler: cyclic\n")
    with pytest.raises(ConfigError, match="lr_scheduler"):
        load_config(bad)


def _long_batch(trainer, rows, n_rows=32, width=12):
    """A batch big enough to be grouped by length: prompts of several lengths, ragged completions."""
    tok = trainer.processing_class
    tok.padding_side = "left"
    prompts = [rows[i % len(rows)]["prompt"][: 8 + 5 * (i % 4)] for i in range(n_rows)]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    g = torch.Generator().manual_seed(1)
    completion_ids = torch.randint(4, len(tok), (n_rows, width), generator=g)
    lengths = torch.randint(1, width + 1, (n_rows,), generator=g)
    completion_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    assert enc["attention_mask"].min() == 0 and lengths.max() == width > lengths.min()
    return {"prompt_ids": enc["input_ids"], "prompt_mask": enc["attention_mask"],
            "completion_ids": completion_ids, "completion_mask": completion_mask,
            "advantages": torch.randn(n_rows, generator=g),
            "num_items_in_batch": completion_mask.sum()}


def _joined(inputs):
    """``(input_ids, attention_mask)`` of prompts and completions, as TRL's forward takes them."""
    return (torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1))


def _spy_on_trls_forward(monkeypatch, note):
    """Calls ``note(input_ids, attention_mask)`` on every call of TRL's own forward over completions."""
    from trl import GRPOTrainer

    real = GRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, model, ids, mask, *a, **k):
        note(ids, mask)
        return real(self, model, ids, mask, *a, **k)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", spy)


def test_trimmed_padding_keeps_log_probabilities_loss_and_gradient(tiny, tmp_path):
    from trl import GRPOTrainer

    trainer, rows = _trainer(tiny, tmp_path, beta=0.1)  # a KL term: the reference forward too
    trainer.skip_zero_advantage = False
    inputs = _long_batch(trainer, rows)
    ids, mask = _joined(inputs)
    keep = inputs["completion_ids"].shape[1]
    cm = inputs["completion_mask"].bool()
    with torch.no_grad():
        ours, ent, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, keep, compute_entropy=True)
        trl, trl_ent, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, trainer.model, ids, mask, keep, compute_entropy=True)
    assert ours.shape == trl.shape and ent.shape == trl_ent.shape
    torch.testing.assert_close(ours[cm], trl[cm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent[cm], trl_ent[cm], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(ours).all() and not torch.equal(ours, trl), "no padding was dropped"
    inputs["ref_per_token_logps"] = trl.detach() - 0.05  # the KL term is exercised
    grads = []
    for trim in (True, False):
        trainer.trim_padding = trim
        grads.append(_loss_and_grads(trainer, inputs, skip=False))
    (l_trim, g_trim), (l_trl, g_trl) = grads
    torch.testing.assert_close(l_trim, l_trl, atol=1e-6, rtol=1e-5)
    for a, b in zip(g_trim, g_trl):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_small_batches_and_the_switch_use_trls_forward(tiny, tmp_path, monkeypatch):
    calls = []
    _spy_on_trls_forward(monkeypatch, lambda ids, mask: calls.append(ids.shape[0]))
    trainer, rows = _trainer(tiny, tmp_path)
    ids, mask = _joined(_long_batch(trainer, rows))
    with torch.no_grad():
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
        assert calls == [8, 8, 8, 8]  # four length groups
        calls.clear()
        trainer._get_per_token_logps_and_entropies(trainer.model, ids[:15], mask[:15], 12)
        trainer.trim_padding = False
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
    assert calls == [15, 32]


def test_left_padding_is_kept_for_models_without_rotary_positions(tiny, tmp_path, monkeypatch):
    """Dropping a row's left padding shifts its positions: harmless only under rotary embeddings."""
    seen = []
    _spy_on_trls_forward(monkeypatch, lambda ids, mask: seen.append(int(mask[:, 0].any())))
    trainer, rows = _trainer(tiny, tmp_path)
    ids, mask = _joined(_long_batch(trainer, rows))
    with torch.no_grad():
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
        assert all(seen), "rotary model: every group starts at its first attended column"
        seen.clear()
        monkeypatch.setattr(trainer.model.config, "rope_parameters", None)
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
    assert not all(seen), "without rotary positions the left padding stays"
