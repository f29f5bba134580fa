"""Where a serve job's server answers, resolved on the serve node itself.

docker bridge network: the container's IP (reachable only from that node, hence the watcher runs
there), or the node's address when the port is published; host network: the node's address from
Slurm (NodeAddr), or loopback when the server binds loopback. The scope says which (domain/reach.py).
"""

from __future__ import annotations

import os
import socket
import subprocess

from glm5_hpc.domain.names import CLUSTER, NODE_ONLY
from glm5_hpc.domain.profile import LOOPBACK
from glm5_hpc.domain.watch import WatchSpec

INSPECT_IP = "{{range.NetworkSettings.Networks}}{{.IPAddress}}{{end}}"


def container_ip(binary: str, name: str, timeout_s: float = 10) -> str | None:
    try:
        out = subprocess.run(
            [binary, "inspect", "-f", INSPECT_IP, name], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    ip = out.stdout.strip()
    return ip if out.returncode == 0 and ip else None


def node_address(node: str, timeout_s: float = 10) -> str:
    try:
        out = subprocess.run(
            ["scontrol", "show", "node", "-o", node], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        for field in out.stdout.split():
            if field.startswith("NodeAddr="):
                return field.split("=", 1)[1]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return socket.getfqdn(node)


def node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def resolve(spec: WatchSpec, job_id: str) -> tuple[str, str, str] | None:
    """Return (url, what it is and who can reach it, scope), or None while the container has no address yet."""
    node = node_name()
    if spec.network == "bridge":
        ip = container_ip(spec.container_binary, f"{spec.container_prefix}-{job_id}")
        if not ip:
            return None
        if spec.publish:
            return f"http://{node_address(node)}:{spec.port}", f"published on node {node}, reachable from every node", CLUSTER
        return f"http://{ip}:{spec.port}", f"container bridge IP on node {node}, reachable from that node only", NODE_ONLY
    if spec.bind_host in LOOPBACK:
        return f"http://127.0.0.1:{spec.port}", f"loopback of node {node}, reachable on that node only", NODE_ONLY
    return f"http://{node_address(node)}:{spec.port}", f"node {node}'s address, reachable from every node", CLUSTER
