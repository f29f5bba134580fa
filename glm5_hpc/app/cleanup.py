"""`glm5_hpc cleanup`: free the shared work dir of what no deployment needs any more (domain/cleanup.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.store import Store
from glm5_hpc.domain.cleanup import Removal, plan_cleanup, work_dir_of
from glm5_hpc.domain.record import all_runs, job_ids


@dataclass(frozen=True)
class Freed:
    removal: Removal
    bytes: int


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).lstat().st_size
    return total


def cleanup(older_than_s: float, dry_run: bool, store: Store | None = None) -> list[Freed]:
    store = store or Store()
    records = [r for n in store.names() if (r := store.load(n)) is not None]
    ids = sorted({j for rec in records for run in all_runs(rec) for j in job_ids(run)})
    live = {j for j, info in slurm.query(ids).items() if not info.terminal}
    work_dirs = {work_dir_of(run["run_dir"]) for rec in records for run in all_runs(rec) if run.get("run_dir")}
    wheels = {str(d): d.stat().st_mtime for w in sorted(work_dirs) for d in Path(w, "wheels").glob("*") if d.is_dir()}
    plan = [r for r in plan_cleanup(records, live, wheels, time.time() - older_than_s) if Path(r.path).exists()]
    freed = [Freed(r, _size(Path(r.path))) for r in plan]
    if dry_run:
        return freed
    for f in freed:
        if f.removal.run_id:  # the record keeps the run, and says its directory is gone
            with store.locked(f.removal.deployment):
                rec = store.require(f.removal.deployment)
                for run in all_runs(rec):
                    if run.get("run_id") == f.removal.run_id:
                        run["cleaned_at"] = time.time()
                shutil.rmtree(f.removal.path, ignore_errors=True)
                store.save(rec)
        else:
            shutil.rmtree(f.removal.path, ignore_errors=True)
    return freed
