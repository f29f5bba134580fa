"""Slurm job states as glm5_hpc sees them, parsed from sacct and squeue output. Pure.

A job that neither squeue nor sacct knows is UNKNOWN: never RUNNING, never COMPLETED.
"""

from __future__ import annotations

from typing import NamedTuple

TERMINAL = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)
FAILED = TERMINAL - {"COMPLETED"}
UNKNOWN = "UNKNOWN"

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "NodeList", "Start", "End", "Elapsed", "Reason")
SQUEUE_FORMAT = "%i|%T|%r|%N"


class JobInfo(NamedTuple):  # a NamedTuple, not a dataclass: `status` starts without importing dataclasses
    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    start: str = ""
    end: str = ""
    elapsed: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def live(self) -> bool:
        """Known to Slurm and not finished: something to cancel or wait for."""
        return self.state not in TERMINAL and self.state != UNKNOWN

    @property
    def failed(self) -> bool:
        return self.state in FAILED


def _norm_state(raw: str) -> str:
    # "CANCELLED by 0" -> CANCELLED
    return raw.split()[0] if raw.strip() else UNKNOWN


def _none(value: str) -> str:
    return "" if value in ("None", "None assigned", "Unknown", "(null)") else value


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """Parse `sacct -X -P -n -o <SACCT_FIELDS>` output (one allocation line per job)."""
    jobs: dict[str, JobInfo] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != len(SACCT_FIELDS):
            continue
        job_id, _name, raw_state, exit_code, node, start, end, elapsed, reason = parts
        state = _norm_state(raw_state)
        # sacct keeps the last pending reason of a finished job; it means nothing then.
        reason = _none(reason) if state == "PENDING" else ""
        jobs[job_id] = JobInfo(job_id, state, reason, _none(node), exit_code, _none(start), _none(end), elapsed)
    return jobs


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Parse `squeue -h -o SQUEUE_FORMAT` output."""
    jobs: dict[str, JobInfo] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 4:
            continue
        job_id, state, reason, node = parts
        jobs[job_id] = JobInfo(job_id, _norm_state(state), _none(reason), _none(node))
    return jobs


def merge(job_ids: list[str], sacct: dict[str, JobInfo], squeue: dict[str, JobInfo]) -> dict[str, JobInfo]:
    """squeue is current for live jobs (state, pending reason); sacct holds finished ones and exit codes."""
    out: dict[str, JobInfo] = {}
    for jid in job_ids:
        live, acct = squeue.get(jid), sacct.get(jid)
        if live and acct:
            out[jid] = JobInfo(
                jid, live.state, live.reason, live.node or acct.node, acct.exit_code, acct.start, acct.end, acct.elapsed
            )
        else:
            out[jid] = live or acct or JobInfo(jid, UNKNOWN)
    return out
