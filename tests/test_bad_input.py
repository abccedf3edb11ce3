"""Bad input fails early with an error naming file, row and field; nothing downstream runs.

One test per case. Data files are checked where they are read (``read_jsonl``,
``load_pool``, ``load_labeled``, ``validate_data_dir``, the oracle); CLI verbs
exit with status 2 and ``pivottrace <verb>: error: ...`` before writing any
output (no plan, no ledger, no checkpoint).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pivottrace.cli import main
from pivottrace.core.config import ConfigError, load_config
from pivottrace.core.io import DataError, check_model_dir
from pivottrace.data.pool import load_pool
from pivottrace.data.splits import load_labeled, validate_data_dir
from pivottrace.labeled.oracle import AnnotationOracle
from pivottrace.testbed.data import make_modchain

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def pool_row(i, **kw):
    return {"id": f"p{i}", "prompt": f"a = {i} , b = a + 1 , b ?", "difficulty": 1, **kw}


def dev_row(i, **kw):
    return {"id": f"d{i}", "prompt": f"a = {i} , b = a * 2 , b ?", "answer": str(i), "difficulty": 1,
            **kw}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Smoke-config task data, generated once."""
    out = tmp_path_factory.mktemp("gen") / "data"
    make_modchain(load_config(SMOKE)["task"], out)
    return out


@pytest.fixture
def data(generated, tmp_path):
    """A private copy of the generated task data."""
    return Path(shutil.copytree(generated, tmp_path / "data"))


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def config_file(tmp_path: Path, override: dict) -> Path:
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(override), encoding="utf-8")
    return path


def cli_error(capsys, argv) -> str:
    """Run ``pivottrace <argv>`` in-process; it must fail with status 2; returns stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ": error: " in err, err
    return err


def train_argv(tiny, plan, data, model, out: Path) -> list[str]:
    return ["--config", str(tiny["config"]), "train", "--plan", str(plan), "--data", str(data),
            "--model", str(model), "--seed", "0", "--work", str(out / "ckpt"),
            "--out-model", str(out / "model"), "--summary", str(out / "train.json"),
            "--ledger", str(out / "ledger.json")]


def assert_nothing_trained(out: Path):
    for name in ("model", "train.json", "ledger.json", "ckpt"):
        assert not (out / name).exists(), f"{name} was written although the input was bad"


@pytest.fixture
def full_plan(tiny, tmp_path):
    """A valid plan over the tiny pool (every prompt annotated)."""
    from pivottrace.data.pool import Plan, write_plan

    pool = load_pool(tiny["data"] / "pool.jsonl")
    path = tmp_path / "plan.json"
    write_plan(Plan("full", 1.0, 0, False, "majority", dict.fromkeys(pool.ids, "annotate"), {}), path)
    return path


# --- JSONL files -----------------------------------------------------------------------------

def test_invalid_json_line(tmp_path):
    path = jsonl(tmp_path / "pool.jsonl", [pool_row(1), '{"id": "p2", "prompt": "x",', pool_row(3)])
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value).startswith(f"{path}: row 2: invalid JSON")


def test_missing_prompt_field(tmp_path):
    bad = pool_row(2)
    del bad["prompt"]
    path = jsonl(tmp_path / "pool.jsonl", [pool_row(1), bad])
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value) == f"{path}: row 2: missing field 'prompt'"


def test_missing_answer_field(tmp_path):
    bad = dev_row(3)
    del bad["answer"]
    path = jsonl(tmp_path / "dev.jsonl", [dev_row(1), dev_row(2), bad])
    with pytest.raises(DataError) as e:
        load_labeled(path)
    assert str(e.value) == f"{path}: row 3: missing field 'answer'"


def test_field_of_the_wrong_type(tmp_path):
    path = jsonl(tmp_path / "pool.jsonl", [pool_row(1), pool_row(2, difficulty="2")])
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert f"{path}: row 2: field 'difficulty' has type str" in str(e.value)


def test_empty_pool(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value) == f"{path}: no rows (empty file)"


def test_duplicate_ids(tmp_path):
    path = jsonl(tmp_path / "pool.jsonl", [pool_row(1), pool_row(2), {**pool_row(3), "id": "p1"}])
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value) == f"{path}: row 3: field 'id': duplicate id 'p1' (first at row 1)"


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_bytes(json.dumps(pool_row(1)).encode() + b"\n"
                     + b'{"id": "p2", "prompt": "caf\xe9", "difficulty": 1}\n')
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value).startswith(f"{path}: row 2: not valid UTF-8")


def test_pool_with_an_answer_field_is_rejected(tmp_path):
    path = jsonl(tmp_path / "pool.jsonl", [pool_row(1), pool_row(2, answer="7")])
    with pytest.raises(DataError) as e:
        load_pool(path)
    assert str(e.value) == f"{path}: row 2: field 'answer' is not allowed here"


def test_answer_the_verifier_cannot_parse(tmp_path):
    path = jsonl(tmp_path / "test.jsonl", [dev_row(1), dev_row(2, answer="seven")])
    load_labeled(path)  # well-formed JSONL ...
    with pytest.raises(DataError) as e:  # ... but the modchain verifier cannot use the answer
        load_labeled(path, verifier="modchain", modulus=10)
    assert str(e.value).startswith(f"{path}: row 2: field 'answer': the modchain verifier cannot parse")
    with pytest.raises(DataError, match=r"row 2: field 'answer': the gsm8k verifier cannot parse"):
        load_labeled(path, verifier="gsm8k")


def test_pool_gold_answer_the_verifier_cannot_parse(tmp_path):
    path = jsonl(tmp_path / "pool_gold.jsonl", [{"id": "p1", "answer": "3"}, {"id": "p2", "answer": "12"}])
    with pytest.raises(DataError) as e:
        AnnotationOracle(path, max_queries=1, verifier="modchain", modulus=10)
    assert str(e.value) == f"{path}: row 2: field 'answer': answer '12' is not below the modulus 10"


# --- selection arguments (CLI) ------------------------------------------------------------

def test_budget_outside_0_1(capsys, data, tmp_path):
    plan = tmp_path / "plan.json"
    for budget in ("1.5", "0", "-0.2"):
        err = cli_error(capsys, ["--config", str(SMOKE), "select", "--method", "random", "--budget",
                                 budget, "--seed", "0", "--pool", str(data / "pool.jsonl"),
                                 "--out", str(plan)])
        assert f"budget must be a number in (0, 1], 'auto' or none; got '{budget}'" in err
        assert not plan.exists()


def test_unknown_method(capsys, data, tmp_path):
    plan = tmp_path / "plan.json"
    err = cli_error(capsys, ["--config", str(SMOKE), "select", "--method", "pivotrace", "--budget",
                             "0.5", "--seed", "0", "--pool", str(data / "pool.jsonl"), "--out", str(plan)])
    assert "unknown method 'pivotrace'; known: [" in err and "'pivottrace'" in err
    assert not plan.exists()


def test_unknown_estimator_score_column(capsys, data, tmp_path):
    scores = tmp_path / "scores.csv"
    ids = [r["id"] for r in rows_of(data / "pool.jsonl")]
    scores.write_text("id,pivot_density\n" + "".join(f"{i},0.{k}\n" for k, i in enumerate(ids)))
    cfg = config_file(tmp_path, {"selection": {"pivottrace": {"score_column": "pivot_densty"}}})
    plan = tmp_path / "plan.json"
    err = cli_error(capsys, ["--config", str(SMOKE), "--config", str(cfg), "select", "--method",
                             "pivottrace", "--budget", "0.5", "--seed", "0", "--pool",
                             str(data / "pool.jsonl"), "--scores", str(scores), "--out", str(plan)])
    assert "needs score column 'pivot_densty'" in err and "['id', 'pivot_density']" in err
    assert not plan.exists()


def test_unknown_estimator_statistic_in_config(tmp_path):
    cfg = config_file(tmp_path, {"scoring": {"score": "attention_magic"}})
    with pytest.raises(ConfigError) as e:
        load_config(SMOKE, cfg)
    assert str(e.value).startswith(f"{SMOKE} + {cfg}: key 'scoring.score': 'attention_magic' is not one of")


# --- config ----------------------------------------------------------------------------------

def test_K_below_2(tmp_path):
    cfg = config_file(tmp_path, {"scoring": {"K": 1}})
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert str(e.value) == f"{cfg}: key 'scoring.K': 1 is less than the minimum of 2"


def test_config_key_of_the_wrong_type(tmp_path):
    cfg = config_file(tmp_path, {"grpo": {"max_steps": "ten"}})
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert str(e.value) == f"{cfg}: key 'grpo.max_steps': 'ten' is not of type 'integer'"


def test_config_test_hard_not_harder_than_pool(tmp_path):
    """v2 (skillchain): test_hard needs more hard steps on average than the pool."""
    cfg = config_file(tmp_path, {"task": {"splits": {"test_hard": {
        "n": 8, "min_steps": 3, "max_steps": 4, "hard_weights": [0.4, 0.3, 0.2, 0.1]}}}})
    with pytest.raises(ConfigError) as e:
        load_config(SMOKE, cfg)
    assert "key 'task.splits.test_hard.hard_weights': test_hard must have more hard steps" in str(e.value)
    assert str(cfg) in str(e.value)


def test_config_v1_test_hard_not_longer_than_pool(tmp_path):
    """v1 (modchain): test_hard must be longer than every pool chain."""
    v1 = REPO / "configs" / "modchain_v1.yaml"
    cfg = config_file(tmp_path, {"task": {"splits": {"test_hard": {"n": 8, "min_steps": 3,
                                                                   "max_steps": 4}}}})
    with pytest.raises(ConfigError) as e:
        load_config(v1, cfg)
    assert "key 'task.splits.test_hard.min_steps': test_hard must be harder than the pool" in str(e.value)


def test_config_skillchain_strata_must_fit_the_chains(tmp_path):
    cfg = config_file(tmp_path, {"task": {"splits": {"pool": {
        "n": 8, "min_steps": 2, "max_steps": 3, "hard_weights": [0.5, 0, 0, 0, 0.5]}}}})
    with pytest.raises(ConfigError, match=r"key 'task.splits.pool.hard_weights': needs a positive sum "
                                          r"and no weight above max_steps=3"):
        load_config(SMOKE, cfg)


# --- data directory checks (before training) -------------------------------------------------

def test_dev_test_overlap_with_the_pool(data):
    pool = rows_of(data / "pool.jsonl")
    test = rows_of(data / "test.jsonl")
    test[4]["prompt"] = pool[7]["prompt"]
    jsonl(data / "test.jsonl", test)
    with pytest.raises(DataError) as e:
        validate_data_dir(data, load_config(SMOKE)["task"])
    assert str(e.value) == (f"{data / 'test.jsonl'}: row 5: field 'prompt' also in the pool "
                            f"({data / 'pool.jsonl'}, id {pool[7]['id']!r}): splits overlap")


def test_dev_overlapping_test(data):
    dev = rows_of(data / "dev.jsonl")
    test = rows_of(data / "test.jsonl")
    test[2]["prompt"] = dev[1]["prompt"]
    jsonl(data / "test.jsonl", test)
    with pytest.raises(DataError, match=r"test\.jsonl: row 3: field 'prompt' also in .*dev\.jsonl"):
        validate_data_dir(data, load_config(SMOKE)["task"])


def test_test_hard_not_harder_than_the_pool(data):
    hardest = max(r["difficulty"] for r in rows_of(data / "pool.jsonl"))
    hard = rows_of(data / "test_hard.jsonl")
    for r in hard:
        r["difficulty"] = hardest + 1
    hard[1]["difficulty"] = hardest
    jsonl(data / "test_hard.jsonl", hard)
    v1 = {**load_config(SMOKE)["task"], "name": "modchain"}  # v1 checks length; skillchain: config
    with pytest.raises(DataError) as e:
        validate_data_dir(data, v1)
    assert str(e.value).startswith(f"{data / 'test_hard.jsonl'}: row 2: field 'difficulty': "
                                   f"{hardest} is not harder than the pool")


# --- the train verb stops before the oracle or the trainer runs ------------------------------

def test_train_with_overlapping_data_trains_nothing(capsys, tiny, full_plan, tmp_path):
    data = Path(shutil.copytree(tiny["data"], tmp_path / "data"))
    dev = rows_of(data / "dev.jsonl")
    dev[0]["prompt"] = rows_of(data / "pool.jsonl")[0]["prompt"]
    jsonl(data / "dev.jsonl", dev)
    err = cli_error(capsys, train_argv(tiny, full_plan, data, tiny["model"], tmp_path / "out"))
    assert f"{data / 'dev.jsonl'}: row 1: field 'prompt' also in the pool" in err
    assert_nothing_trained(tmp_path / "out")


def test_train_with_unparseable_gold_answer_trains_nothing(capsys, tiny, full_plan, tmp_path):
    data = Path(shutil.copytree(tiny["data"], tmp_path / "data"))
    gold = rows_of(data / "pool_gold.jsonl")
    gold[3]["answer"] = "#7"
    jsonl(data / "pool_gold.jsonl", gold)
    err = cli_error(capsys, train_argv(tiny, full_plan, data, tiny["model"], tmp_path / "out"))
    assert f"{data / 'pool_gold.jsonl'}: row 4: field 'answer': the modchain verifier cannot parse" in err
    assert_nothing_trained(tmp_path / "out")


def test_plan_missing_a_pool_id_trains_nothing(capsys, tiny, full_plan, tmp_path):
    plan = json.loads(full_plan.read_text())
    first = sorted(plan["routes"])[0]
    del plan["routes"][first]
    full_plan.write_text(json.dumps(plan))
    err = cli_error(capsys, train_argv(tiny, full_plan, tiny["data"], tiny["model"], tmp_path / "out"))
    assert f"{full_plan}: pool id {first!r} has no route" in err
    assert_nothing_trained(tmp_path / "out")


# --- model directories -----------------------------------------------------------------------

def test_missing_model_directory(capsys, tiny, full_plan, tmp_path):
    missing = tmp_path / "models" / "base"
    err = cli_error(capsys, train_argv(tiny, full_plan, tiny["data"], missing, tmp_path / "out"))
    assert f"pivottrace train: error: {missing}: model directory not found" in err
    assert_nothing_trained(tmp_path / "out")


def test_corrupt_model_weights(capsys, tiny, tmp_path):
    model = Path(shutil.copytree(tiny["model"], tmp_path / "model"))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated copy
    out = tmp_path / "scores.csv"
    err = cli_error(capsys, ["--config", str(tiny["config"]), "score", "--model", str(model),
                             "--pool", str(tiny["data"] / "pool.jsonl"), "--out", str(out),
                             "--traces", str(tmp_path / "traces.jsonl")])
    assert f"pivottrace score: error: {weights}: corrupt weights file" in err
    assert not out.exists() and not (tmp_path / "traces.jsonl").exists()


def test_corrupt_model_config(tiny, tmp_path):
    model = Path(shutil.copytree(tiny["model"], tmp_path / "model"))
    (model / "config.json").write_text('{"model_type": "llama", "hidden_size": ', encoding="utf-8")
    with pytest.raises(DataError) as e:
        check_model_dir(model)
    assert str(e.value).startswith(f"{model / 'config.json'}: invalid JSON at line 1")
    (model / "config.json").write_text('{"hidden_size": 32}', encoding="utf-8")
    with pytest.raises(DataError, match=r"config\.json: missing field 'model_type'"):
        check_model_dir(model)
