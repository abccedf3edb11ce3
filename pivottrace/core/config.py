"""Config loading: defaults merged with overrides, validated against ``schema.yaml``."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the file and the key."""


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; lists and scalars in ``override`` replace."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _first_error(validator: jsonschema.Validator, obj: dict, source: str, prefix: str = "") -> None:
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join([prefix, *map(str, e.absolute_path)] if prefix else map(str, e.absolute_path))
        raise ConfigError(f"{source}: key {key or '<top>'!r}: {e.message}")


def validate_section(name: str, section: dict, source: str = "config") -> dict:
    """Validate one top-level section (e.g. ``scoring``) against its part of the schema.

    The schema is the single source of every bound; code that takes a section
    without a whole config (a library call, a test) checks it here.

    Raises:
        ConfigError: naming ``source`` and the offending key path.
    """
    schema = _schema()
    if name not in schema["properties"]:
        raise ConfigError(f"{source}: unknown config section {name!r}")
    sub = {**schema["properties"][name], "$defs": schema.get("$defs", {})}
    _first_error(jsonschema.Draft202012Validator(sub), section, source, prefix=name)
    return section


def validate(config: dict, source: str = "config") -> dict:
    """Validate against the schema and cross-field rules; returns the config.

    Raises:
        ConfigError: naming ``source`` and the offending key path.
    """
    _first_error(jsonschema.Draft202012Validator(_schema()), config, source)
    _check_cross_fields(config, source)
    return config


LOCAL_MODEL_TASKS = {"math": "math", "wordproblems": "gsm8k"}
"""Tasks run on an existing local model (``model.path``), each with its own config section
(``task.<name>``) and the verifier it must use."""


def _check_cross_fields(c: dict, source: str) -> None:
    name = c["task"]["name"]
    if name in LOCAL_MODEL_TASKS:
        if name not in c["task"]:
            raise ConfigError(f"{source}: key 'task.{name}': required when task.name is {name!r}")
        verifier = LOCAL_MODEL_TASKS[name]
        if c["task"]["verifier"] != verifier:
            raise ConfigError(f"{source}: key 'task.verifier': must be {verifier!r} when task.name "
                              f"is {name!r}")
        if not c["model"].get("path"):
            raise ConfigError(f"{source}: key 'model.path': task {name!r} needs an existing local "
                              "model directory (the from-scratch reasoner is built for the "
                              "testbed tasks only)")
    splits = c["task"]["splits"]
    for name, s in splits.items():
        if s["min_steps"] > s["max_steps"]:
            raise ConfigError(f"{source}: key 'task.splits.{name}': min_steps > max_steps")
    task = c["task"]
    if task["name"] == "skillchain":
        _check_skillchain(task, source)
    elif task["name"] == "modchain" and not {"p_slip_hard", "p_reflect"} <= set(task["teacher"]):
        raise ConfigError(f"{source}: key 'task.teacher': modchain needs p_slip_hard and p_reflect")
    elif task["name"] == "modchain" and splits["test_hard"]["min_steps"] <= splits["pool"]["max_steps"]:
        raise ConfigError(
            f"{source}: key 'task.splits.test_hard.min_steps': test_hard must be harder than the "
            f"pool (min_steps {splits['test_hard']['min_steps']} <= pool max_steps "
            f"{splits['pool']['max_steps']})"
        )
    m = c["model"]
    n_layers = m.get("num_layers")
    bad = [x for x in c.get("pivot_tuning", {}).get("layers", [])
           if n_layers and x != "all" and not -n_layers <= x < n_layers]
    if bad:
        raise ConfigError(f"{source}: key 'pivot_tuning.layers': {bad} out of range for "
                          f"model.num_layers={m['num_layers']}")
    if m["hidden_size"] % m["num_heads"]:
        raise ConfigError(f"{source}: key 'model.num_heads': must divide hidden_size {m['hidden_size']}")


def _mean_hard(split: dict) -> float | None:
    w = split.get("hard_weights")
    return None if not w or sum(w) <= 0 else sum(h * x for h, x in enumerate(w)) / sum(w)


def _check_skillchain(task: dict, source: str) -> None:
    """Testbed v2: a teacher with skills, strata that fit the chains, a harder test_hard."""
    if not task["teacher"].get("skills"):
        raise ConfigError(f"{source}: key 'task.teacher.skills': required when task.name is 'skillchain'")
    for name, s in task["splits"].items():
        w = s.get("hard_weights")
        if w is not None and (sum(w) <= 0 or any(x > 0 for x in w[s["max_steps"] + 1:])):
            raise ConfigError(f"{source}: key 'task.splits.{name}.hard_weights': needs a positive sum "
                              f"and no weight above max_steps={s['max_steps']} hard steps")
    hard, pool = _mean_hard(task["splits"]["test_hard"]), _mean_hard(task["splits"]["pool"])
    if hard is None or pool is None or hard <= pool:
        raise ConfigError(f"{source}: key 'task.splits.test_hard.hard_weights': test_hard must have more "
                          f"hard steps on average than the pool ({hard} <= {pool})")


def load_config(*paths: str | Path, defaults: Path | None = DEFAULT_CONFIG) -> dict:
    """Merge ``defaults`` and each file in ``paths`` (later wins), then validate."""
    config: dict = _read_yaml(defaults) if defaults else {}
    for p in paths:
        config = deep_merge(config, _read_yaml(Path(p)))
    return validate(config, source=" + ".join(str(p) for p in paths) or str(defaults))


def config_hash(config: dict) -> str:
    """A short stable hash of a (sub)config."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
