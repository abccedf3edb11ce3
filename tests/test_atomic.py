"""Atomic artifacts: a rule killed at any point leaves nothing that looks complete.

Every rule runs one ``pivottrace <verb>`` (checked on the Snakefile), and every
artifact those verbs write goes through ``pivottrace.core.io.atomic_write`` /
``atomic_dir``: a temp path beside the output (``.<name>.*.tmp``), renamed at
the end (checked on the source). The kill tests start a verb as a subprocess
and SIGKILL it at the last moment before that rename, when the whole artifact
has been written to the temp path: the output path must not exist.
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env, train_outputs

from pivottrace.cli import build_parser

# Call names that write files; each must be lexically inside ``with atomic_write(...)``
# or ``with atomic_dir(...)`` (or write into a private temp dir, ALLOWED).
WRITE_CALLS = {"write_text", "write_bytes", "to_csv", "to_json", "to_parquet", "savefig",
               "save_pretrained", "save_model", "save", "dump", "safe_dump"}
SHUTIL_WRITES = {"copy", "copy2", "copyfile", "copytree", "move"}  # only as shutil.<name>
ALLOWED = {
    ("pivottrace/rl/evaluate.py", "render_task"),  # lm-eval task YAML in a TemporaryDirectory
    ("pivottrace/testbed/build.py", "link_or_copy"),  # copytree's copy_function into an atomic_dir
    ("pivottrace/bench/train.py", "_spawn"),  # a child's log in the benchmark's private temp dir
}
SOURCE_DIRS = ("pivottrace", "analysis", "baselines")


class _WriteFinder(ast.NodeVisitor):
    def __init__(self):
        self.atomic_depth, self.functions, self.unsafe = 0, [], []

    def visit_FunctionDef(self, node):
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node):
        atomic = any(isinstance(i.context_expr, ast.Call)
                     and getattr(i.context_expr.func, "id", getattr(i.context_expr.func, "attr", ""))
                     in ("atomic_write", "atomic_dir") for i in node.items)
        self.atomic_depth += atomic
        self.generic_visit(node)
        self.atomic_depth -= atomic

    def visit_Call(self, node):
        name = getattr(node.func, "attr", getattr(node.func, "id", None))
        writes = name in WRITE_CALLS or (name in SHUTIL_WRITES
                                         and getattr(node.func, "value", None) is not None
                                         and getattr(node.func.value, "id", "") == "shutil")
        if name == "open":  # builtin open(path, "w") / Path.open("w")
            modes = [a.value for a in [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            writes = any(set(m) & set("wax") for m in modes if len(m) <= 3)
        if writes and not self.atomic_depth:
            self.unsafe.append((node.lineno, name, self.functions[-1] if self.functions else "<module>"))
        self.generic_visit(node)


def test_every_artifact_write_is_atomic():
    unsafe = []
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "pivottrace/core/io.py":  # the atomic helpers themselves
                continue
            finder = _WriteFinder()
            finder.visit(ast.parse(path.read_text(encoding="utf-8")))
            unsafe += [f"{rel}:{line} {name}() in {fn}" for line, name, fn in finder.unsafe
                       if (rel, fn) not in ALLOWED]
    assert not unsafe, "writes outside atomic_write/atomic_dir:\n" + "\n".join(unsafe)


def test_every_rule_runs_one_cli_verb():
    verbs = set(next(a for a in build_parser()._actions if a.dest == "verb").choices)
    text = (REPO / "Snakefile").read_text(encoding="utf-8")
    rules = re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, flags=re.M | re.S)
    assert len(rules) > 5
    for name, body in rules:
        if name == "all":
            continue
        shell = re.search(r"^    shell:\n(.*)", body, flags=re.M | re.S)
        assert shell, f"rule {name} has no shell: (a run: block would bypass the atomic CLI writes)"
        # {PT} = pivottrace --config ...; {TRAIN_PT} = the same CLI under a launcher (accelerate)
        used = re.findall(r"\{(?:TRAIN_)?PT\} ([a-z0-9-]+)", shell.group(1))
        assert len(used) == 1 and used[0] in verbs, (name, used)
        assert "{output" not in re.split(r"\{(?:TRAIN_)?PT\}", shell.group(1))[0], \
            f"rule {name} writes before the CLI"
    assert re.search(r'^TRAIN_PT = .*-m pivottrace\.cli .* else PT$', text, flags=re.M), \
        "TRAIN_PT must run the pivottrace CLI"


# --- kill tests --------------------------------------------------------------------------------

# Runs ``pivottrace <argv>``; when it is about to rename a temp path onto $PT_KILL_TARGET
# (the artifact is completely written, not yet renamed) it says so and waits to be killed.
KILL_AT_RENAME = r"""
import os, sys, time
target = os.path.abspath(os.environ["PT_KILL_TARGET"])
replace = os.replace
def hooked(src, dst, *args, **kw):
    if os.path.abspath(dst) == target:
        print("PT-KILL-ME", src, flush=True)
        time.sleep(600)
    return replace(src, dst, *args, **kw)
os.replace = hooked
from pivottrace.cli import main
sys.exit(main(sys.argv[1:]))
"""


def kill_at_rename(argv: list[str], target: Path, timeout: float = 300) -> Path:
    """Run the verb, SIGKILL it just before the rename onto ``target``; return the temp path."""
    proc = subprocess.Popen([sys.executable, "-c", KILL_AT_RENAME, *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(PT_KILL_TARGET=str(target), PIVOTTRACE_THREADS="2"))
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:  # the verb's own stdout lines pass by
            if line.startswith("PT-KILL-ME "):
                tmp = Path(line.split(" ", 1)[1].strip())
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "timed out"
        else:
            proc.wait()
            pytest.fail(f"the verb never renamed a temp path onto {target} (rc {proc.returncode}):"
                        f"\n{proc.stderr.read()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return tmp


def assert_nothing_complete(target: Path, tmp: Path):
    assert not target.exists(), f"{target} exists after a kill before its rename"
    # what is left is the hidden temp path, named so nothing takes it for the artifact
    assert tmp.parent == target.parent and tmp.name.startswith(f".{target.name}.")
    assert tmp.name.endswith(".tmp")
    leftovers = [p.name for p in target.parent.iterdir()
                 if p.name.startswith(target.name) or p.name.startswith(f".{target.name}.")]
    assert all(n.startswith(".") and n.endswith(".tmp") for n in leftovers), leftovers


def _record_inputs(tiny, grpo_run, mixed_plan, run: Path) -> None:
    run.mkdir(parents=True)
    shutil.copy(mixed_plan, run / "plan.json")
    for name in ("train.json", "ledger.json"):
        shutil.copy(grpo_run / "out" / name, run / name)
    (run / "eval.json").write_text(json.dumps({"splits": {"test": {"accuracy": 0.5},
                                                          "test_hard": {"accuracy": 0.25}}}))


# build-base (about 10 s more) already wrote through atomic_dir; it runs with -m slow
VERBS = ["make-data", "select", pytest.param("build-base", marks=pytest.mark.slow), "train",
         "record", "table"]


@pytest.mark.parametrize("verb", VERBS)
def test_killed_before_rename_leaves_no_artifact(verb, tiny, grpo_run, mixed_plan, tmp_path):
    cfg = ["--config", tiny["config"]]
    data = tiny["data"]
    if verb == "make-data":
        target = tmp_path / "data" / "pool_gold.jsonl"  # the first file it writes
        argv = [*cfg, "make-data", "--out", tmp_path / "data"]
    elif verb == "select":
        target = tmp_path / "runs/random/0.5/0/plan.json"
        argv = [*cfg, "select", "--method", "random", "--budget", "0.5", "--seed", "0",
                "--pool", data / "pool.jsonl", "--out", target]
    elif verb == "build-base":
        target = tmp_path / "models" / "base"
        argv = [*cfg, "build-base", "--data", data, "--out", target]
    elif verb == "train":
        # the finished run's checkpoints: the rerun restores step 4 and goes straight to saving
        work = Path(shutil.copytree(grpo_run / "work", tmp_path / "ckpt"))
        o = train_outputs(tmp_path / "run")
        target = o["model"]
        argv = [*cfg, "train", "--plan", mixed_plan, "--data", data, "--model", tiny["model"],
                "--seed", "0", "--work", work, "--out-model", o["model"], "--summary", o["summary"],
                "--ledger", o["ledger"]]
    elif verb == "record":
        run = tmp_path / "runs/random/0.5/0"
        _record_inputs(tiny, grpo_run, mixed_plan, run)
        target = run / "record.json"
        argv = [*cfg, "record", "--method", "random", "--budget", "0.5", "--seed", "0",
                "--run-dir", run, "--pool", data / "pool.jsonl", "--out", target]
    elif verb == "table":
        record = tmp_path / "record.json"
        record.write_text(json.dumps({"method": "random", "budget": 0.5, "seed": 0,
                                      "annotated_fraction": 0.5, "test_accuracy": 0.5,
                                      "test_hard_accuracy": 0.25, "steps": 4, "train_wall_s": 1.0,
                                      "uses_labels": False, "dev_curve": [[0, 0.0], [4, 0.5]],
                                      "pseudo_label_accuracy": None}))
        target = tmp_path / "results" / "table1.csv"
        argv = [*cfg, "table", "--records", record, "--out-csv", target,
                "--out-md", tmp_path / "results" / "table1.md"]
    tmp = kill_at_rename(argv, target)
    assert_nothing_complete(target, tmp)
    if verb == "train":  # the summary and ledger come after the model: none of them exists
        assert not o["summary"].exists() and not o["ledger"].exists()
    if verb in ("build-base", "train"):  # the temp directory holds a whole saved model
        assert (tmp / "config.json").is_file() and (tmp / "model.safetensors").is_file()


def test_atomic_dir_replacing_an_old_copy_never_leaves_a_partial_directory(tmp_path):
    from pivottrace.core.io import atomic_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the old copy and temp dirs are gone
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
