"""Reproducibility manifest carried by every run record."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from pivottrace.core.config import REPO_ROOT, config_hash

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


CONSTRAINTS = REPO_ROOT / "constraints.txt"
"""The pinned environment the reference results were produced with."""


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """``{normalised name: version}`` of a pip constraints file (``name==version`` lines).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "constraints.txt"
        >>> _ = path.write_text(chr(10).join(["# pins", "LM_Eval==0.4.13", "torch==2.13.0"]))
        >>> read_pins(path)
        {'lm-eval': '0.4.13', 'torch': '2.13.0'}
    """
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalise(name)] = version.strip()
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_mismatches(packages: dict[str, str], path: Path = CONSTRAINTS) -> dict[str, list[str]]:
    """Packages whose installed version differs from its pin: ``{name: [pinned, installed]}``.

    A local version label (``2.13.0+cpu``) matches its public version (``2.13.0``),
    as in pip. Unpinned packages (``pivottrace`` itself) are skipped; a missing
    constraints file (an installed wheel outside the repository) gives ``{}``.
    """
    if not path.is_file():
        return {}
    pins = read_pins(path)
    out = {}
    for name, installed in packages.items():
        pinned = pins.get(_normalise(name))
        if pinned is not None and installed.split("+", 1)[0] != pinned:
            out[name] = [pinned, installed]
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


def manifest(config: dict, seed: int, device: str | None = None) -> dict:
    """Resolved config, its hash, package versions (and any that differ from the pins),
    git commit, seed and device.

    ``device``: the device the work ran on, when another process measured it (the run
    record takes it from ``eval.json``, so the ``record`` job need not import torch);
    by default :func:`device_name` of this process.
    """
    packages = package_versions()
    return {"config": config, "config_hash": config_hash(config), "packages": packages,
            "constraint_mismatches": constraint_mismatches(packages),
            "python": platform.python_version(), "git_commit": git_commit(), "seed": seed,
            "device": device or device_name()}
