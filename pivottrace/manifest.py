"""Reproducibility manifest carried by every run record."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from pivottrace.config import REPO_ROOT, config_hash

PACKAGES = ("pivottrace", "torch", "transformers", "trl", "datasets", "accelerate", "lm_eval",
            "math-verify", "snakemake", "numpy", "pandas")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.machine()}"


def manifest(config: dict, seed: int) -> dict:
    """Resolved config, its hash, package versions, git commit, seed and device."""
    return {"config": config, "config_hash": config_hash(config), "packages": package_versions(),
            "python": platform.python_version(), "git_commit": git_commit(), "seed": seed,
            "device": device_name()}
