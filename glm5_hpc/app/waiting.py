"""Use case: block until a deployment is healthy or can no longer become healthy.

Slurm is asked with backoff (1, 2, 4 ... max_query_interval_s s, back to 1 s after any change or
health phase change; see paced_query.py); the run's health file, which costs Slurm nothing, is
read every 0.25 s, so readiness is seen within that.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from glm5_hpc.adapters.run_files import log_tail, read_run_files, with_log_tails
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.paced_query import PacedQuery
from glm5_hpc.domain.names import SERVE
from glm5_hpc.domain.record import current_run, empty_run
from glm5_hpc.domain.status import DeploymentStatus, Phase, health_hint, log_path, queried_ids, status_of
from glm5_hpc.errors import Glm5Error


class WaitFailedError(Glm5Error):
    pass


def wait(
    name: str, timeout_s: float | None, report: Callable[[str], None], store: Store | None = None,
    max_query_interval_s: float = 10.0, on_status: Callable[[DeploymentStatus], None] | None = None,
) -> DeploymentStatus:  # fmt: skip
    store = store or Store()
    rec = store.require(name)
    run = current_run(rec) or empty_run()
    deadline = time.monotonic() + timeout_s if timeout_s else None
    query = PacedQuery(1.0, max_query_interval_s)
    shown: dict[str, str] = {}

    def show(key: str, line: str) -> None:
        if line and shown.get(key) != line:
            shown[key] = line
            report(line)

    while True:
        files = read_run_files(rec)
        infos = query(queried_ids(run, files), health_hint(run, files))
        st = status_of(rec, infos, with_log_tails(files, rec, infos))
        for s in st.stages:
            where = f" job {s.job_id}" + (f" on {s.node}" if s.node else "") if s.job_id else ""
            why = f" ({s.reason})" if s.reason and s.state != "RUNNING" else ""
            show(s.stage, f"{s.stage}: {s.state}{why}{where}")
        for r in st.replicas[1:]:
            where = f" job {r.job_id}" + (f" on {r.node}" if r.node else "") if r.job_id else ""
            health = f", {r.phase}" if r.state == "RUNNING" else ""
            why = f" ({r.reason})" if r.state == "PENDING" and r.reason else ""
            show(f"replica {r.replica}", f"replica {r.replica}: {r.state}{why}{where}{health}")
        serve = st.stage(SERVE)
        if serve is not None and serve.state == "RUNNING":
            detail = f" ({st.health_reason})" if st.phase in (Phase.WAITING_FOR_RANKS, Phase.HUNG) else ""
            show("health", f"server: {st.phase}{detail}" + (f" at {st.endpoint}" if st.endpoint else ""))
            if st.phase == "loading":
                show("warmup", warmup_progress(log_tail(log_path(st.logs, serve.job_id), 3)))
        if st.healthy:
            return st
        if on_status is not None:
            on_status(st)
        if st.failure:
            raise WaitFailedError(st.failure)
        if deadline and time.monotonic() > deadline:
            raise WaitFailedError(
                f"deployment {name!r} not healthy within --timeout {timeout_s:g}s (jobs keep running; see glm5_hpc status)"
            )
        time.sleep(0.25)


def warmup_progress(tail: str) -> str:
    """The CUDA-graph warmup countdown, for display only (never to decide anything)."""
    for line in reversed(tail.splitlines()):
        if "CUDA graph warmup for batch size=" in line:
            return "server: warming up, batch size " + line.split("batch size=", 1)[1].split(",", 1)[0]
        if "Creating CUDA graph instances" in line:
            return "server: warmup started"
    return ""
