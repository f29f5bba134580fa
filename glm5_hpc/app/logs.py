"""Use case: a stage's log (the job's output file on shared storage), with follow."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.run_files import log_tail
from glm5_hpc.adapters.store import Store
from glm5_hpc.domain.names import STAGES
from glm5_hpc.domain.record import current_run, empty_run
from glm5_hpc.errors import InputError, StateError


def logs(name: str, stage: str | None, lines: int, follow: bool, out: Callable[[str], None], store: Store | None = None) -> None:
    store = store or Store()
    rec = store.require(name)
    run = current_run(rec) or empty_run()
    with_jobs = {s["stage"]: job for s in run["stages"] if (job := s.get("job_id"))}
    if stage is None:  # the latest stage that has a job
        stage = next((s for s in reversed(STAGES) if s in with_jobs), None)
    if stage is None or stage not in with_jobs:
        skipped = next((s.get("skipped") for s in run["stages"] if s["stage"] == stage), "")
        raise InputError(
            f"deployment {name!r} has no {stage or ''} job in its current run" + (f" ({skipped})" if skipped else "")
        )
    job_id = with_jobs[stage]
    logs_dir, run_dir = run.get("logs", ""), run.get("run_dir", "")
    path = Path(f"{logs_dir}/{job_id}_0_log.out")
    if not path.exists() and run_dir and not Path(run_dir).is_dir():
        raise StateError(f"run directory {run_dir} of deployment {name!r} is missing (deleted?), and with it the logs")
    if not path.exists() and not follow:
        out(f"-- job {job_id} ({stage}) has written no log yet ({path}) --")
    text = log_tail(path, lines)
    if text:
        out(text)
    if not follow:
        return
    offset = path.stat().st_size if path.exists() else 0
    next_query, delay = 0.0, 1.0
    while True:
        if path.exists() and path.stat().st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            out(chunk.decode(errors="replace").rstrip("\n"))
        elif time.monotonic() >= next_query:
            info = slurm.query([job_id]).get(job_id)
            if info is not None and info.terminal:
                out(f"-- job {job_id} ({stage}) ended {info.state} --")
                return
            next_query, delay = time.monotonic() + delay, min(delay * 2, 10.0)
        time.sleep(0.5)
