"""Safe file writes, as trusted tools do them. Stdlib only (also runs inside containers).

write_atomic: temp file in the same directory, fsync, os.replace, fsync the directory; so a
crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    import hashlib  # deferred, as tempfile below: `status` imports this module and needs neither

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def umask() -> int:
    """The process's umask, read without changing it (other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextlib.contextmanager
def creating_with_umask(mask: int) -> Iterator[None]:
    """Files and directories created meanwhile, and Slurm jobs submitted meanwhile (sbatch passes
    the umask on as SLURM_UMASK), get `mask`."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    import tempfile

    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object file written by write_json_atomic; {} when absent, unreadable or not an object."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_json_list(path: str | Path) -> list[dict[str, Any]]:
    """The dicts of a JSON list file written by write_json_atomic; [] when absent or unreadable."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return [e for e in doc if isinstance(e, dict)] if isinstance(doc, list) else []


def write_json_atomic(path: Path, doc: Any, mode: int | None = None) -> None:
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode(), mode)


def backup_once(path: Path) -> Path:
    """Copy `path` to `path.orig` unless a backup exists already (a re-run never overwrites it)."""
    orig = path.with_name(path.name + ".orig")
    if not orig.exists():
        write_atomic(orig, path.read_bytes(), path.stat().st_mode & 0o7777)
    return orig
