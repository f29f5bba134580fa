"""Use case: the status of deployments, in three steps per refresh: read (each record, then each
run's files once: adapters/run_files.py), repair the records without waiting for a lock
(app/record_repair.py), and derive the status purely (domain/status.py). One sacct and one squeue
call per refresh, whatever the number of deployments and jobs.
"""

from __future__ import annotations

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.run_files import read_run_files, with_log_tails
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.paced_query import PacedQuery
from glm5_hpc.app.record_repair import absorb, repair_unlocked
from glm5_hpc.app.router_record import router_id
from glm5_hpc.domain.record import current_run
from glm5_hpc.domain.status import DeploymentStatus, health_hint, queried_ids, status_of, unreadable
from glm5_hpc.errors import InputError, StateError


def status(names: list[str] | None = None, store: Store | None = None, query: PacedQuery | None = None) -> list[DeploymentStatus]:
    """Status of the given deployments (all by default). `query` paces Slurm calls across the
    refreshes of a loop (`status --watch`); without it Slurm is asked now. An unreadable record is
    one entry with phase "unreadable" naming its file; the others still show."""
    store = store or Store()
    recs, bad = [], {}
    for n in names or store.names():
        try:
            recs.append(store.require(n))
        except (StateError, InputError) as exc:
            if names and isinstance(exc, InputError):
                raise  # a deployment asked for by name that does not exist
            bad[n] = unreadable(n, str(exc))
    for rec in recs:
        repair_unlocked(store, rec)
    files = [read_run_files(rec) for rec in recs]
    ids = [j for rec, f in zip(recs, files, strict=True) for j in queried_ids(current_run(rec), f)]
    ids += [j for rec in recs if (j := router_id(rec))]
    if query is None:
        infos = slurm.query(ids)
    else:
        hints = tuple(health_hint(run, f) for rec, f in zip(recs, files, strict=True) if (run := current_run(rec)))
        infos = query(ids, hints)
    found = {}
    for rec, f in zip(recs, files, strict=True):
        absorb(store, rec, infos, f)
        found[rec["name"]] = status_of(rec, infos, with_log_tails(f, rec, infos))
    found |= bad
    return [found[n] for n in names or sorted(found)]
