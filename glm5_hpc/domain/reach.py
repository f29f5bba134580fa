"""Who can reach an endpoint, and through which job. Pure.

On a cluster the login node, CPU nodes and GPU nodes are different machines: a server bound to a
node's loopback, or a container's bridge IP, answers on that node only. Such an endpoint is still
reachable from the login node through a step of the job that runs there (jobs/relay.py), which is
how `probe` and `tunnel` get to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from glm5_hpc.domain.names import CLUSTER, NODE_ONLY


@dataclass(frozen=True)
class Reach:
    url: str
    scope: str  # NODE_ONLY or CLUSTER
    job_id: str  # the job running on the node that reaches it
    node: str

    @property
    def node_only(self) -> bool:
        return self.scope == NODE_ONLY

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or 80


def reach_of(dep: dict[str, Any]) -> Reach | None:
    """What a client should connect to for a deployment (`status --json` entry): the router's
    stable endpoint while it runs, else the serve job's endpoint."""
    if dep.get("stable_endpoint"):
        return Reach(dep["stable_endpoint"], dep.get("stable_endpoint_scope") or CLUSTER, dep.get("router_job") or "",
                     dep.get("router_node") or "")  # fmt: skip
    return serve_reach_of(dep)


def serve_reach_of(dep: dict[str, Any]) -> Reach | None:
    """The serve job's own endpoint (what the probe ladder checks)."""
    if not dep.get("endpoint"):
        return None
    serve: dict[str, Any] = next((s for s in dep.get("stages", []) if s.get("stage") == "serve"), {})
    node = first_node(serve.get("node") or "")  # a server across nodes: rank 0, which serves, is on the first
    return Reach(dep["endpoint"], dep.get("endpoint_scope") or CLUSTER, serve.get("job_id") or "", node)


def first_node(nodelist: str) -> str:
    """The first host of a Slurm node list: tgpu[1-2] -> tgpu1, gpu[07,09] -> gpu07, a,b -> a."""
    prefix, bracket, rest = nodelist.partition("[")
    if not bracket:
        return nodelist.split(",")[0]
    return prefix + rest.split(",")[0].split("-")[0].rstrip("]")
