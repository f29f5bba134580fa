"""What `glm5_hpc cleanup` may remove from the shared work dir. Pure.

Removable: the directories of runs that are not their deployment's current run, have no live job
and were submitted before the cutoff; and wheels under a work dir's wheels/ that no current run
and no live run uses, last changed before the cutoff. Never a current run (status, logs and
redeploy read it), never anything a live job needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from glm5_hpc.domain.record import Record, all_runs, current_run, job_ids

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '90s' or '0' -> seconds; ValueError naming the value otherwise."""
    m = _AGE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"--older-than {text!r}: give a number with d, h, m or s, such as 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True)
class Removal:
    path: str
    why: str
    deployment: str = ""
    run_id: str = ""


def work_dir_of(run_dir: str) -> PurePosixPath:
    """WORK_DIR of WORK_DIR/deployments/NAME/runs/RUN_ID."""
    return PurePosixPath(run_dir).parents[3]


def plan_cleanup(records: list[Record], live_jobs: set[str], wheels: dict[str, float], cutoff: float) -> list[Removal]:
    """`wheels`: {wheel directory: mtime} found under the work dirs; `cutoff`: an epoch time."""
    removals: list[Removal] = []
    in_use: set[str] = set()
    for rec in records:
        current = current_run(rec)
        for run in all_runs(rec):
            live = bool(set(job_ids(run)) & live_jobs)
            if run is current or live:
                if run.get("wheel_key") and run.get("run_dir"):
                    in_use.add(str(work_dir_of(run["run_dir"]) / "wheels" / run["wheel_key"]))
                continue
            if run.get("run_dir") and not run.get("cleaned_at") and float(run.get("submitted_at", 0)) < cutoff:
                removals.append(Removal(run["run_dir"], "an earlier run, ended", rec["name"], run.get("run_id", "")))
    for path, mtime in sorted(wheels.items()):
        if path not in in_use and mtime < cutoff:
            removals.append(Removal(path, "a wheel no current or live run uses"))
    return removals
