"""Slurm queries paced for a loop (`submit --wait`, `status --watch`): the scheduler is asked
again only when something may have changed. After a change it is asked every `min_s`; while
nothing changes the interval doubles up to `max_s`. A new set of job ids, or a new hint (the
deployments' health phases, which the serve jobs write without asking Slurm), asks at once."""

from __future__ import annotations

import time
from collections.abc import Sequence

from glm5_hpc.adapters import slurm
from glm5_hpc.domain.slurm_state import JobInfo


class PacedQuery:
    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self.interval = min_s
        self.next_at = 0.0
        self.asked_at = 0.0  # wall-clock time of the last answer, for display
        self.key: tuple[tuple[str, ...], object] | None = None
        self.infos: dict[str, JobInfo] = {}

    def __call__(self, job_ids: Sequence[str], hint: object = None) -> dict[str, JobInfo]:
        key = (tuple(job_ids), hint)
        if key == self.key and time.monotonic() < self.next_at:
            return self.infos
        new = slurm.query(job_ids)
        changed = key != self.key or _states(new) != _states(self.infos)
        self.interval = self.min_s if changed else min(self.interval * 2, self.max_s)
        self.key, self.infos = key, new
        self.next_at, self.asked_at = time.monotonic() + self.interval, time.time()
        return new


def _states(infos: dict[str, JobInfo]) -> dict[str, tuple[str, str]]:
    return {k: (v.state, v.reason) for k, v in infos.items()}
