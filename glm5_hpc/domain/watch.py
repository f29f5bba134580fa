"""What the watcher in a serve job needs to know (pure data, pickled by submitit), and how it reads
a server's progress before ready. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from glm5_hpc.domain.profile import Gateway, Health


@dataclass(frozen=True)
class WatchSpec:
    health_file: str
    container_binary: str
    container_prefix: str  # + "-<job id>" is the container's name
    network: str  # bridge | host
    bind_host: str
    port: int | str  # "auto": the stage picked one and put it in GLM5_SERVE_PORT
    model_id: str
    health: Health
    publish: bool = False  # bridge network with the port published on the node
    gateway: Gateway | None = None  # API-key gateway in front of the server (profile gateway:)
    public_url: str = ""  # set by the serve job when a gateway fronts the server: what users reach
    route_file: str = ""  # with a router: claimed once healthy; the job retires when a newer job claims it
    drain_s: float = 10  # after the route moved, the server keeps answering what it holds this long
    replica: int = 0  # which copy of the server this job is (serve.replicas); each has its own route and health files
    requeue_lead_s: float = 0  # handover.mode requeue: requeue the job this long before its limit (then requeues are expected)
    ranks: int = 1  # MPI ranks of a server across nodes (stages.serve.nodes > 1); each marks its start in ranks_dir/<job id>
    ranks_dir: str = ""
    metrics_dir: str = ""  # the deployment's metrics/ folder: the watcher's Prometheus textfile (served by the router)


class Progress:
    """What a server that is not ready yet is doing, judged from what the watcher can see of it: how
    many of its ranks have started (a server across nodes) and whether its job's log still grows.
    Waiting for ranks, loading, or hung: no rank started and no log line for health.hang_after_s."""

    def __init__(self, ranks: int, hang_after_s: float, now: float) -> None:
        self.ranks = ranks
        self.hang_after_s = hang_after_s
        self.seen: tuple[int, int] = (-1, -1)
        self.since = now

    def update(self, started: Sequence[str], log_size: int, now: float) -> tuple[str, str]:
        """(phase, reason) from the nodes of the ranks started so far and the log's size."""
        if (len(started), log_size) != self.seen:
            self.seen, self.since = (len(started), log_size), now
        waiting = self.ranks > 1 and len(started) < self.ranks
        on = f" (on {', '.join(sorted(set(started)))})" if started else ""
        ranks = f"{len(started)} of {self.ranks} ranks started{on}"
        quiet = now - self.since
        if self.hang_after_s and quiet >= self.hang_after_s:
            what = f"{ranks}, still waiting for the others" if waiting else "no new log line and no answer on /health"
            return "hung", f"no progress for {quiet:.0f}s (health.hang_after_s {self.hang_after_s:g}): {what}"
        if waiting:
            return "waiting-for-ranks", ranks
        return "loading", f"all {self.ranks} ranks started{on}" if self.ranks > 1 else ""
