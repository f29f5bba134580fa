"""Deployment records on disk: one JSON file per deployment in a private per-user directory
(0700 directory, 0600 files), atomic writes, an exclusive lock for anything that changes a record.

State directory: $GLM5_HPC_STATE_DIR, else $XDG_STATE_HOME/glm5_hpc, else ~/.local/state/glm5_hpc.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.domain.names import check_deployment_name
from glm5_hpc.domain.record import SCHEMA, Record, RecordShapeError, migrate
from glm5_hpc.errors import InputError, StateError


def state_dir() -> Path:
    if env := os.environ.get("GLM5_HPC_STATE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "glm5_hpc"


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir()
        self.dir = self.root / "deployments"

    def _ensure(self) -> None:
        """Create the directories private (0700); an existing one is never chmod-ed (it may be
        shared on purpose), but refused if it is another user's or others can write into it."""
        for d in (self.root, self.dir):
            try:
                d.mkdir(mode=0o700, parents=True)
                os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
                continue
            except FileExistsError:
                pass
            st = d.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                raise StateError(
                    f"state directory {d} is {'writable by others' if st.st_mode & 0o022 else 'owned by another user'} "
                    f"(mode {st.st_mode & 0o777:o}); deployment records must be private: point GLM5_HPC_STATE_DIR at a "
                    "directory of your own"
                )

    def path(self, name: str) -> Path:
        return self.dir / f"{check_deployment_name(name)}.json"

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Exclusive lock on one deployment; a second invocation gets a clear error, not a wait."""
        self._ensure()
        fd = os.open(self.dir / f".{check_deployment_name(name)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError(
                    f"deployment {name!r} is being changed by another glm5_hpc command right now "
                    f"(lock {self.dir / f'.{name}.lock'}); wait for it to finish and try again"
                ) from None
            yield
        finally:
            os.close(fd)

    def load(self, name: str) -> Record | None:
        """The record in the current schema (an earlier schema is migrated on read), or None."""
        path = self.path(name)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            if path.is_symlink():
                raise StateError(f"deployment record {path} is a symbolic link to a missing file; remove it") from None
            return None
        except OSError as exc:
            raise StateError(f"deployment record {path} cannot be read ({exc.strerror}); move it aside to continue") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"deployment record {path} is corrupt ({exc}); move it aside to continue") from None
        try:
            return migrate(doc, name)
        except RecordShapeError as exc:
            raise StateError(f"deployment record {path}: {exc}; move it aside to continue") from None

    def require(self, name: str) -> Record:
        """The record, or the one error every command gives for a deployment that does not exist."""
        doc = self.load(name)
        if doc is None:
            raise InputError(
                f"no deployment named {name!r} (known: {', '.join(self.names()) or 'none'}); glm5_hpc submit creates one"
            )
        return doc

    def save(self, doc: Record) -> None:
        self._ensure()
        doc["schema"] = SCHEMA
        write_json_atomic(self.path(doc["name"]), doc, mode=0o600)

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json"))
