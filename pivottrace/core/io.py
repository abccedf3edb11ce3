"""Atomic artifact writing and validated JSONL reading."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class DataError(ValueError):
    """Bad input: the message names the file, the row (1-based line) and the field."""


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Open a temp file beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results_csv(df, path: str | os.PathLike) -> None:
    """A results table (a pandas DataFrame) as CSV, atomically: no index, numbers to 6
    significant digits, ``\n`` line ends (the same bytes on every platform)."""
    with atomic_write(path) as fh:
        df.to_csv(fh, index=False, float_format="%.6g", lineterminator="\n")


def write_json(path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def write_jsonl(path, rows) -> None:
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def read_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def read_jsonl(path, required: dict[str, type | tuple[type, ...]] | None = None,
               forbidden: tuple[str, ...] = (), allow_empty: bool = False,
               unique: tuple[str, ...] = ("id",)) -> list[dict]:
    """Read a JSONL file, checking each row.

    Args:
        path: the file.
        required: field -> accepted type(s); a missing or mistyped field is an error.
        forbidden: fields that must not appear (e.g. ``answer`` in the unlabeled pool).
        allow_empty: whether a file with no rows is acceptable.
        unique: fields whose combined value must not repeat (rows lacking one are not checked).
    Returns:
        The rows, in file order.
    Raises:
        DataError: naming file, row and field.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    rows, seen = [], {}
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: row {lineno}: not valid UTF-8 (byte {e.start})") from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: row {lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {lineno}: expected a JSON object, got {type(row).__name__}")
        for field, types in (required or {}).items():
            if field not in row:
                raise DataError(f"{path}: row {lineno}: missing field {field!r}")
            if not isinstance(row[field], types) or isinstance(row[field], bool) and types is int:
                raise DataError(f"{path}: row {lineno}: field {field!r} has type "
                                f"{type(row[field]).__name__}, expected {types}")
        for field in forbidden:
            if field in row:
                raise DataError(f"{path}: row {lineno}: field {field!r} is not allowed here")
        if unique and all(f in row for f in unique):
            key = tuple(row[f] for f in unique)
            if key in seen:
                what = " ".join(f"{f} {row[f]!r}" for f in unique)
                raise DataError(f"{path}: row {lineno}: field {unique[0]!r}: duplicate {what} "
                                f"(first at row {seen[key]})")
            seen[key] = lineno
        rows.append(row)
    if not rows and not allow_empty:
        raise DataError(f"{path}: no rows (empty file)")
    return rows


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temp directory beside ``path``; it replaces ``path`` only on success."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            # move the previous copy aside in one rename: a kill from here on leaves
            # either the old directory or nothing at ``path``, never a half-deleted one
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def jsonl_row_lines(path: str | os.PathLike) -> list[int]:
    """1-based line numbers of the non-blank lines of a JSONL file (the rows ``read_jsonl`` returns)."""
    return [i for i, line in enumerate(Path(path).read_bytes().split(b"\n"), start=1) if line.strip()]


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """A cheap identity of a model directory's weights: names, sizes and first MiB of each
    ``*.safetensors`` (keys of resumable checkpoints and of the dev curve's step-0 point)."""
    h = hashlib.sha256()
    for w in sorted(Path(model_dir).glob("*.safetensors")):
        with open(w, "rb") as f:
            h.update(w.name.encode() + str(w.stat().st_size).encode() + f.read(1 << 20))
    return h.hexdigest()[:16]


def check_model_dir(path: str | os.PathLike) -> Path:
    """Fail early, naming the file, when ``path`` is not a loadable Hugging Face model directory.

    Checks that the directory exists, ``config.json`` is a JSON object with a
    ``model_type``, a weights file exists and every ``*.safetensors`` header is
    complete (a truncated or garbage file is caught here, not deep inside
    ``from_pretrained``), and a tokenizer file is present (``tokenizer.json``
    must be valid JSON).

    Raises:
        DataError: naming the directory or the offending file (and key).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: model directory not found" if not path.exists()
                        else f"{path}: not a directory (expected a model directory)")
    config = read_json(path / "config.json")
    if not isinstance(config, dict):
        raise DataError(f"{path / 'config.json'}: expected a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("model_type"), str):
        raise DataError(f"{path / 'config.json'}: missing field 'model_type' (not a model config)")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("pytorch_model*.bin")):
        raise DataError(f"{path}: no weights file (*.safetensors or pytorch_model.bin)")
    if weights:
        from safetensors import SafetensorError, safe_open

        for w in weights:
            try:
                with safe_open(str(w), framework="pt") as fh:
                    fh.keys()
            except (SafetensorError, OSError) as e:
                raise DataError(f"{w}: corrupt weights file ({e})") from None
    if (path / "tokenizer.json").exists():
        read_json(path / "tokenizer.json")
    elif not (path / "tokenizer_config.json").exists():
        raise DataError(f"{path}: no tokenizer (tokenizer.json or tokenizer_config.json)")
    return path
