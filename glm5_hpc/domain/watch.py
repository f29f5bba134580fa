"""What the watcher in a serve job needs to know. Pure data, pickled by submitit."""

from __future__ import annotations

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
