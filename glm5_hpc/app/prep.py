"""`glm5_hpc prep MODEL_DIR` and the prep-model stage: edit config.json and tokenizer_config.json.

Never opens weight files: the work does not grow with checkpoint size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glm5_hpc.adapters.files import backup_once, sha256_file, write_atomic
from glm5_hpc.domain.model_prep import Edits, prepare_config, prepare_tokenizer
from glm5_hpc.errors import PrepError

FILES = (("config.json", prepare_config), ("tokenizer_config.json", prepare_tokenizer))


@dataclass
class FileResult:
    file: str
    actions: list[str]
    sha256_before: str
    sha256_after: str
    written: bool = False


@dataclass
class PrepResult:
    model_dir: str
    mode: str  # apply | check | revert
    files: list[FileResult] = field(default_factory=list)

    @property
    def changes_needed(self) -> bool:
        return any(f.actions for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "mode": self.mode, "files": [vars(f) for f in self.files]}


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PrepError(f"{path}: missing; is {path.parent} a GLM-5 checkpoint directory?") from None
    except PermissionError:
        raise PrepError(f"{path}: not readable by this user") from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PrepError(f"{path}: not valid JSON ({exc}); restore it from {path.name}.orig or the original download") from None


def _check_target(model_dir: Path, path: Path) -> None:
    real = path.resolve()
    if real.parent != model_dir.resolve():
        raise PrepError(
            f"{path}: is a symlink to {real}, outside {model_dir}; refusing to edit it (copy the file in place first)"
        )


def prep_model(model_dir: Path, edits: Edits, mode: str = "apply") -> PrepResult:
    if not model_dir.is_dir():
        raise PrepError(f"{model_dir}: not a directory (set model.path in the profile to the checkpoint directory)")
    if mode == "revert":
        return _revert(model_dir)
    result = PrepResult(str(model_dir), mode)
    planned: list[tuple[Path, bytes, FileResult]] = []
    for name, prepare in FILES:
        path = model_dir / name
        doc = _read_json(path)
        new_doc, actions = prepare(doc, edits, str(path))
        before = sha256_file(path)
        res = FileResult(name, actions, before, before)
        if actions:
            _check_target(model_dir, path)
            data = (json.dumps(new_doc, indent=2, ensure_ascii=False) + "\n").encode()
            planned.append((path, data, res))
        result.files.append(res)
    if mode == "check" or not planned:
        return result
    # Validate everything first, then write: bad input never leaves a half-prepared checkpoint.
    if not os.access(model_dir, os.W_OK):
        raise PrepError(f"{model_dir}: directory is not writable; prep needs to write config files there")
    for path, data, res in planned:
        backup_once(path)
        write_atomic(path, data)
        res.sha256_after = sha256_file(path)
        res.written = True
    return result


def _revert(model_dir: Path) -> PrepResult:
    result = PrepResult(str(model_dir), "revert")
    for name, _ in FILES:
        path = model_dir / name
        orig = path.with_name(name + ".orig")
        before = sha256_file(path) if path.exists() else ""
        if not orig.exists():
            result.files.append(FileResult(name, [], before, before))
            continue
        data = orig.read_bytes()
        res = FileResult(name, [], before, before)
        if path.exists() and path.read_bytes() == data:
            res.actions = []
        else:
            write_atomic(path, data)
            res.actions = [f"restored from {orig.name}"]
            res.written = True
            res.sha256_after = sha256_file(path)
        result.files.append(res)
    return result
