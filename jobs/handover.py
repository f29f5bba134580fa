"""Handover before the time limit (profile `handover.mode: overlap`), run by each serve job.

At its start, a serve job queues its successor: the same job, to begin `lead_s` before its own
time limit (`sbatch --begin`), so the successor is queued long in advance and starts early
enough to load and warm up. The successor claims the route once healthy by the full ladder and
the old job retires (jobs/watcher.py); it queues its own successor in turn. Every successor is
listed in the run's handovers.json, so no job id is lost and `glm5_hpc cancel` finds them all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import read_json_list, write_json_atomic
from glm5_hpc.domain.watch import WatchSpec


@dataclass(frozen=True)
class HandoverPlan:
    submission: slurm.Submission  # the serve job's own sbatch settings, reused for each successor
    lead_s: float
    handovers_file: str
    generation: int = 0


def queue_successor(plan: HandoverPlan, job_id: str, fn: Callable[..., Any], stage: str, script: str,
                    watch: WatchSpec, secrets: dict[str, Any] | None) -> str | None:  # fmt: skip
    """Queue this job's successor, once (a requeued job finds the one it queued before)."""
    queued = read_json_list(plan.handovers_file)
    if any(e.get("after") == job_id for e in queued):
        return None
    end = slurm.job_end_epoch(job_id)
    if end is None:
        print(f"glm5_hpc: handover: no end time for job {job_id}; no successor queued", file=sys.stderr, flush=True)
        return None
    begin_in = max(0, int(end - time.time() - plan.lead_s))
    generation = plan.generation + 1
    replica = f"-r{watch.replica}" if watch.replica else ""
    health = str(Path(watch.health_file).with_name(f"health{replica}-h{generation}.json"))
    successor = slurm.submit(
        plan.submission._replace(begin=f"now+{begin_in}"), fn, stage, script, replace(watch, health_file=health), secrets,
        replace(plan, generation=generation),
    )  # fmt: skip
    entry = {"job_id": successor, "after": job_id, "generation": generation, "begin_at": time.time() + begin_in,
             "health_file": health}  # fmt: skip
    write_json_atomic(Path(plan.handovers_file), [*read_json_list(plan.handovers_file), entry])
    print(f"glm5_hpc: handover: successor job {successor} queued to begin in {begin_in}s", flush=True)
    return successor
