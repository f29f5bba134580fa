"""Slurm: submission through submitit, and one batched sacct + one squeue call per refresh.

Queries are idempotent and retried with backoff (tenacity, bounded); a submission is never
retried blindly (sbatch that timed out may still have created the job: FACTS.md).
"""

from __future__ import annotations

import getpass
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from glm5_hpc.adapters.policies import slurm_query_retry
from glm5_hpc.domain.slurm_state import SACCT_FIELDS, SQUEUE_FORMAT, JobInfo, merge, parse_sacct, parse_squeue
from glm5_hpc.errors import SlurmError

QUERY_TIMEOUT_S = 30


class _TransientError(SlurmError):
    pass


def _run(argv: list[str], timeout_s: float = QUERY_TIMEOUT_S) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]} not found on PATH; run glm5_hpc where the Slurm client commands are installed") from None
    except subprocess.TimeoutExpired:
        raise _TransientError(f"{argv[0]} timed out after {timeout_s:g}s (is slurmctld up?)") from None
    if out.returncode != 0:
        raise _TransientError(f"{' '.join(argv[:2])} failed (rc={out.returncode}): {out.stderr.strip()[-500:]}")
    return out.stdout


_query_retry = slurm_query_retry(_TransientError)


@_query_retry
def sacct(job_ids: Sequence[str]) -> dict[str, JobInfo]:
    if not job_ids:
        return {}
    return parse_sacct(_run(["sacct", "-X", "-P", "-n", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(job_ids)]))


@_query_retry
def squeue_mine() -> dict[str, JobInfo]:
    return parse_squeue(_run(["squeue", "-h", "-u", getpass.getuser(), "-o", SQUEUE_FORMAT]))


def query(job_ids: Sequence[str]) -> dict[str, JobInfo]:
    """State of every given job: exactly one sacct and one squeue call, whatever their number,
    made at the same time (each waits on slurmctld/slurmdbd, not on this machine)."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    live: list[dict[str, JobInfo] | BaseException] = []

    def ask_squeue() -> None:
        try:
            live.append(squeue_mine())
        except BaseException as exc:  # re-raised below, in the caller's thread
            live.append(exc)

    thread = threading.Thread(target=ask_squeue, name="glm5-squeue")
    thread.start()
    try:
        accounted = sacct(ids)
    finally:
        thread.join()
    if isinstance(live[0], BaseException):
        raise live[0]
    return merge(ids, accounted, live[0])


ENDED_STATES = "BF,CA,CD,DL,F,NF,OOM,PR,TO"  # every state a job ends in (22.05 to 26.05 know these)


def find_jobs(comment: str, since_epoch: float) -> dict[str, str]:
    """{job id: job name} of my jobs carrying `comment`: how a job whose id was never recorded is
    found again. Called only for interrupted runs. squeue --states=all lists every job slurmctld
    still holds, ended ones included (for MinJobAge), before accounting may have them; sacct the
    older ones (accounted_with_comment)."""
    live = _run(["squeue", "-h", "-u", getpass.getuser(), "--states=all", "-o", "%i|%j|%k"])
    return {**accounted_with_comment(comment, since_epoch), **_with_comment(live, comment)}


def accounted_with_comment(comment: str, since_epoch: float) -> dict[str, str]:
    """{job id: job name} of my jobs carrying `comment` that ended since `since_epoch`, from sacct,
    asked by end state: a plain `-S` window selects by eligible time and so leaves out a job whose
    eligible time is Unknown (a dependant killed by --kill-on-invalid-dep) or still in the future
    (a --begin job cancelled before it started); with `-s` the window applies to the job's end."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since_epoch - 60))
    return _with_comment(_run(["sacct", "-X", "-P", "-n", "-S", since, "-E", "now", "-s", ENDED_STATES, "-u",
                               getpass.getuser(), "-o", "JobID,JobName,Comment"]), comment)  # fmt: skip


def _with_comment(listing: str, comment: str) -> dict[str, str]:
    """{job id: job name} from `id|name|comment` lines whose comment is `comment`."""
    found: dict[str, str] = {}
    for line in listing.splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3 and parts[2] == comment:
            found.setdefault(parts[0], parts[1])
    return found


@_query_retry
def live_jobs_with_comment_prefix(prefix: str) -> dict[str, tuple[str, str]]:
    """{job id: (job name, comment)} of my jobs in the queue whose comment starts with `prefix`:
    one squeue call, how every command finds jobs a dead process never recorded."""
    found: dict[str, tuple[str, str]] = {}
    for line in _run(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i|%j|%k"]).splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3 and parts[2].startswith(prefix):
            found[parts[0]] = (parts[1], parts[2])
    return found


def cancel(job_ids: Sequence[str]) -> None:
    if job_ids:
        _run(["scancel", *job_ids])


def job_end_epoch(job_id: str) -> float | None:
    """When Slurm will end a job (its time limit), from squeue's EndTime; None if it cannot tell."""
    try:
        out = _run(["squeue", "-h", "-j", job_id, "-o", "%e"], timeout_s=60)
        return time.mktime(time.strptime(out.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (SlurmError, ValueError):
        return None


def requeue(job_id: str) -> None:
    """Ask Slurm to requeue a job (the job itself, before its time limit). Raises SlurmError."""
    _run(["scontrol", "requeue", job_id], timeout_s=60)


class Submission(NamedTuple):
    folder: Path
    job_name: str
    comment: str
    partition: str
    time_minutes: int
    cpus: int
    mem: str
    gres: str | None
    account: str | None
    qos: str | None
    after_ok: str | None
    requeue: bool = False  # let Slurm requeue the job after a node failure (explicit either way: sites differ)
    begin: str | None = None  # sbatch --begin, e.g. now+3600
    nodelist: str | None = None
    exclude: str | None = None
    nodes: int = 1
    ntasks_per_node: int = 1  # a server across nodes: its MPI ranks on each node (cpus is per node, split among them)


def submit(sub: Submission, fn: Callable[..., Any], *args: Any) -> str:
    """Submit one job through submitit; returns the Slurm job id. Raises SlurmError, never retries."""
    import submitit  # deferred: heavy import, needed only to submit

    executor = submitit.SlurmExecutor(folder=sub.folder, max_num_timeout=0)
    extra: dict[str, Any] = {"requeue" if sub.requeue else "no-requeue": True}
    if sub.begin:
        extra["begin"] = sub.begin
    if sub.after_ok:
        extra |= {"dependency": f"afterok:{sub.after_ok}", "kill-on-invalid-dep": "yes"}
    params: dict[str, Any] = dict(
        job_name=sub.job_name,
        comment=sub.comment,
        partition=sub.partition,
        time=sub.time_minutes,
        cpus_per_task=max(1, sub.cpus // sub.ntasks_per_node),
        mem=sub.mem,
        ntasks_per_node=sub.ntasks_per_node,
        nodes=sub.nodes,
        use_srun=False,
        stderr_to_stdout=True,
        additional_parameters=extra,
    )
    for key in ("gres", "account", "qos", "nodelist", "exclude"):
        if getattr(sub, key):
            params[key] = getattr(sub, key)
    executor.update_parameters(**params)
    try:
        job = executor.submit(fn, *args)
    except Exception as exc:  # submitit wraps sbatch's failure in several exception types
        raise SlurmError(f"sbatch failed for job {sub.job_name} on partition {sub.partition}: {exc}".replace("\n", " ")) from None
    return str(job.job_id)
