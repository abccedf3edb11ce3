"""pivottrace.rl.evaluate: lm-eval greedy evaluation agrees with a direct greedy computation."""

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import random  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from pivottrace.core.io import DataError, write_jsonl  # noqa: E402
from pivottrace.rl import evaluate  # noqa: E402
from pivottrace.testbed import modchain, reasoner  # noqa: E402

OPS = ("+", "-", "*")
MODEL_CFG = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                 max_position_embeddings=256)
MAX_NEW = 24


def _rows(seed: int, n: int, min_steps: int = 1, max_steps: int = 3) -> list[dict]:
    probs = modchain.generate_split(random.Random(seed), n, min_steps, max_steps, 10, OPS, set())
    return [{"id": f"s{seed}-{i}", "prompt": p.prompt, "answer": p.answer,
             "difficulty": p.difficulty} for i, p in enumerate(probs)]


def _briefly_train(model, tok, steps: int = 100, batch: int = 32) -> None:
    """A few teacher-forced steps on error-free traces: the model then writes
    well-formed traces of varying length ending in EOS, some of them right.

    100 steps, not fewer: after 60, an AMD EPYC host wrote a final answer for 8 of
    the 16 test prompts where an Intel Xeon host wrote 12+ (float rounding differs
    by CPU); after 100 both write one for every prompt."""
    probs = modchain.generate_split(random.Random(0), steps * batch, 1, 2, 10, OPS, set(),
                                    unique=False)
    texts = [f"{p.prompt} {modchain.solve_trace(p)} {tok.eos_token}" for p in probs]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster on a shared machine
    try:
        _steps(model, tok, texts, opt, steps, batch)
    finally:
        torch.set_num_threads(threads)
    model.eval()


def _steps(model, tok, texts, opt, steps, batch):
    for s in range(steps):
        ids = [tok(x)["input_ids"] for x in texts[s * batch:(s + 1) * batch]]
        width = max(map(len, ids))
        inp = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids])
        att = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
        loss = model(input_ids=inp, attention_mask=att, labels=inp.masked_fill(att == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    tok = reasoner.build_tokenizer(modchain.vocabulary(10, OPS, 8))
    model = reasoner.build_model(tok, MODEL_CFG, seed=0)
    _briefly_train(model, tok)
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = root / "test.jsonl"
    write_jsonl(data, _rows(5, 16))
    return {"root": root, "model_dir": model_dir, "data": data, "model": model, "tok": tok}


def _direct(model, tok, rows, max_new_tokens):
    """Per-prompt (unpadded) greedy generation, cut at the first EOS."""
    out = []
    for row in rows:
        enc = tok(row["prompt"], return_tensors="pt")
        gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = gen[0, enc["input_ids"].shape[1]:].tolist()
        if tok.eos_token_id in new:
            new = new[:new.index(tok.eos_token_id)]
        out.append(tok.decode(new, skip_special_tokens=True))
    return out


def test_lm_eval_agrees_with_direct_greedy(setup):
    rows = [json.loads(line) for line in setup["data"].read_text().splitlines()]
    # batch 8 < 16 rows of different lengths: two left-padded batches
    res = evaluate.evaluate_split(setup["model_dir"], setup["data"], max_new_tokens=MAX_NEW,
                                  batch_size=8)
    assert res["n"] == 16 and res["task"] == "pivottrace_modchain_test"
    assert res["lm_eval_version"]
    assert [s["id"] for s in res["samples"]] == [r["id"] for r in rows]
    assert [s["prompt"] for s in res["samples"]] == [r["prompt"] for r in rows]

    model = setup["model"]
    direct = _direct(model, setup["tok"], rows, MAX_NEW)
    assert [s["completion"] for s in res["samples"]] == direct
    # the dev curve's loop (pivottrace.sampling) gives the same completions
    from pivottrace.sampling import generate

    loop = generate(model, setup["tok"], [r["prompt"] for r in rows], k=1, do_sample=False,
                    max_new_tokens=MAX_NEW, batch_size=8)
    assert [c[0] for c in loop] == direct
    correct = [modchain.verify(c, r["answer"]) for c, r in zip(direct, rows, strict=True)]
    assert [s["correct"] for s in res["samples"]] == correct
    assert [s["pred"] for s in res["samples"]] == [modchain.extract_answer(c) for c in direct]
    assert res["accuracy"] == pytest.approx(sum(correct) / len(correct))
    # the briefly trained model writes traces with a final answer, not noise
    assert sum(s["pred"] is not None for s in res["samples"]) >= 12


def test_loaded_model_matches_directory_and_keeps_state(setup):
    model, tok = setup["model"], setup["tok"]
    model.train()
    py_state, torch_state = random.getstate(), torch.get_rng_state()
    res = evaluate.evaluate_model(model, tok, setup["data"], max_new_tokens=MAX_NEW,
                                  batch_size=16, limit=6, split_name="dev")
    assert model.training  # HFLM switched to eval; restored afterwards
    model.eval()
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert res["n"] == 6 and res["task"] == "pivottrace_modchain_dev"
    rows = [json.loads(line) for line in setup["data"].read_text().splitlines()][:6]
    assert [s["completion"] for s in res["samples"]] == _direct(model, tok, rows, MAX_NEW)


def test_write_eval_two_splits(setup, tmp_path):
    hard = tmp_path / "test_hard.jsonl"
    write_jsonl(hard, _rows(9, 3, 4, 5))
    out = tmp_path / "eval" / "eval.json"
    record = evaluate.write_eval(setup["model_dir"], {"test": setup["data"], "test_hard": hard},
                                 out, max_new_tokens=8, batch_size=4, limit=4)
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert set(on_disk["accuracy"]) == {"test", "test_hard"}
    assert on_disk["splits"]["test"]["n"] == 4 and on_disk["splits"]["test_hard"]["n"] == 3
    for split in ("test", "test_hard"):
        samples = on_disk["splits"][split]["samples"]
        assert on_disk["accuracy"][split] == pytest.approx(
            sum(s["correct"] for s in samples) / len(samples))
        assert len(samples[0]["completion"].split()) <= 8
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # atomic, no leftovers


def test_bad_data_path_is_a_clear_error(setup, tmp_path):
    missing = tmp_path / "nope" / "test.jsonl"
    with pytest.raises(DataError, match=r"nope/test\.jsonl: file not found"):
        evaluate.evaluate_split(setup["model_dir"], missing)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": "a = 1 , a ?"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl: row 1: missing field 'answer'"):
        evaluate.evaluate_split(setup["model_dir"], bad)


def test_bad_model_dir_verifier_and_lengths(setup, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        evaluate.evaluate_split(tmp_path / "no_model", setup["data"])
    with pytest.raises(ValueError, match="unknown verifier"):
        evaluate.evaluate_split(setup["model_dir"], setup["data"], verifier="nope")
    with pytest.raises(ValueError, match="exceeds the model's max_length 256"):
        evaluate.evaluate_split(setup["model_dir"], setup["data"], max_new_tokens=250)
    with pytest.raises(ValueError, match="limit must be None or a positive int"):
        evaluate.evaluate_split(setup["model_dir"], setup["data"], limit=0.5)


def test_autotokenizer_is_rejected(setup):
    """transformers 5 turns a qwen2 directory's word-level tokenizer into a
    byte-level Qwen2Tokenizer; evaluation refuses it instead of gluing words."""
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(setup["model_dir"])
    if auto.decode(auto("a = 1 , a ?")["input_ids"]) == "a = 1 , a ?":
        pytest.skip("this transformers keeps the saved tokenizer")
    with pytest.raises(ValueError, match="does not round-trip"):
        evaluate.evaluate_model(setup["model"], auto, setup["data"])
    assert evaluate.load_tokenizer(setup["model_dir"]).decode([4, 5]) != ""


def test_process_results_hooks():
    from pivottrace.rl.lmeval_tasks import utils

    p = modchain.make_problem(random.Random(3), 3, 10, OPS)
    doc = {"id": "x", "prompt": p.prompt, "answer": p.answer}
    assert utils.process_results_modchain(doc, [modchain.solve_trace(p)]) == {"acc": 1.0}
    assert utils.process_results_modchain(doc, ["b = 1 + 1 = 2"]) == {"acc": 0.0}
    with pytest.raises(AttributeError, match="hooks exist for verifiers"):
        utils.process_results_nope  # noqa: B018


def test_rendered_task_yaml(tmp_path):
    path = evaluate.render_task(tmp_path, "pivottrace_modchain_x", tmp_path / "d e.jsonl",
                                "modchain", 16, "</s>", 2)
    text = path.read_text()
    assert "$" not in text and "!function utils.process_results_modchain" in text
    assert (tmp_path / "utils.py").is_file()
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    cfg = yaml.load(text, Loader=Loader)
    assert cfg["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "d e.jsonl")
    assert cfg["generation_kwargs"] == {"until": ["</s>"], "do_sample": False,
                                        "max_gen_toks": 16, "eos_token_id": 2}
    assert cfg["metadata"] == {"version": 1}
