"""The local cluster is several machines, and every path crosses them: the nodes' own names and
addresses and their isolation; status, probe and tunnel from the login node (this host) for each
kind of endpoint; a wheel built on one GPU node and served from the other through shared storage;
a router profile whose endpoint the router could not reach refused before anything is submitted."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CPU_NODE, GLM5_HPC, GPU_NODES, MODEL, PREFIX, eventually, glm5, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")
STOCK_IMAGE = "localhost/glm5-standin/tensorrt-llm-release:1.3.0"


def on_node(node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command as a one-task job on a node, as any user of the cluster would."""
    return subprocess.run(["srun", f"--nodelist={node}", "--partition=gpu" if "gpu" in node else "--partition=cpu",
                           "--mem=64", "--time=1", *argv], capture_output=True, text=True, timeout=60)  # fmt: skip


def test_every_node_is_its_own_machine() -> None:
    lines = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %P %T"], capture_output=True, text=True, check=True).stdout
    assert {ln.split()[0] for ln in lines.splitlines()} == {CPU_NODE, *GPU_NODES}
    addresses = {}
    for node in (CPU_NODE, *GPU_NODES):
        out = on_node(node, "sh", "-c", "hostname; hostname -I")
        assert out.returncode == 0, out.stderr
        name, address = out.stdout.split()[:2]
        assert name == node
        addresses[node] = address
    assert len(set(addresses.values())) == 3 and "127.0.0.1" not in addresses.values()


def test_a_loopback_server_answers_on_its_node_only() -> None:
    gpu1, gpu2 = GPU_NODES
    job = subprocess.run(["sbatch", "--parsable", "-p", "gpu", "-w", gpu1, "--mem=64", "-o", "/dev/null", "--wrap",
                          "exec python3 -m http.server 18650 --bind 127.0.0.1 --directory /"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    get = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:18650/', timeout=3).status)"
    try:
        assert eventually(lambda: on_node(gpu1, "python3", "-c", get).stdout.strip() == "200", timeout_s=30)
        elsewhere = on_node(gpu2, "python3", "-c", get)
        assert elsewhere.returncode != 0 and "Connection refused" in elsewhere.stderr  # another node's loopback
        with pytest.raises(httpx.ConnectError):
            httpx.get("http://127.0.0.1:18650/", timeout=3)  # nor the login node's
    finally:
        subprocess.run(["scancel", job], check=True)


def test_a_router_that_could_not_reach_the_endpoint_is_refused_before_submitting(make_profile: Callable[..., Path]) -> None:
    profile = make_profile("unreachable", router={"enabled": True})  # serve.host 127.0.0.1 on the host network
    before = squeue_ids()
    for argv in (["profile", "validate", str(profile)], ["submit", "--profile", str(profile), "--name", "unreachable"]):
        proc = glm5(*argv)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "router.enabled: the router job runs on another node" in proc.stderr and "set serve.host: 0.0.0.0" in proc.stderr
    assert not squeue_ids() - before  # nothing was submitted


GPU = rf"({PREFIX}gpu\d)"  # the serve node's name
ENDPOINT_KINDS: dict[str, tuple[dict[str, Any], str, str]] = {
    # profile overrides, what status says, scope
    "loopback": ({}, rf"http://127\.0\.0\.1:\d+ \(loopback of node {GPU}, reachable on that node only\)", "node"),
    "node-address": ({"serve": {"host": "0.0.0.0"}},
                     rf"http://10\.77\.0\.\d+:\d+ \(node {GPU}'s address, reachable from every node\)", "cluster"),
    "bridge-ip": ({"container": {"network": "bridge"}, "serve": {"host": None}},
                  rf"http://10\.88\.\d+\.\d+:\d+ \(container bridge IP on node {GPU}, reachable from that node only\)", "node"),
    "published": ({"container": {"network": "bridge", "publish": True}, "serve": {"host": None}},
                  rf"http://10\.77\.0\.\d+:\d+ \(published on node {GPU}, reachable from every node\)", "cluster"),
}  # fmt: skip


@pytest.mark.parametrize("kind", ENDPOINT_KINDS)
def test_status_probe_and_tunnel_from_the_login_node(
    kind: str, make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    over, shown, scope = ENDPOINT_KINDS[kind]
    name = f"reach-{kind}"
    profile = make_profile(name, recipe={"variant": "stock"}, container={"image": STOCK_IMAGE, **over.get("container", {})},
                           serve={"port": "auto", **over.get("serve", {})})  # fmt: skip
    cleanup_deployments.append(name)
    glm5("submit", "--profile", str(profile), "--name", name, "--wait", "--timeout", "240", check=True)
    text = glm5("status", name, check=True).stdout
    match = re.search(r"endpoint: " + shown, text)
    assert match, text
    dep = status_json(name)
    serve = next(s for s in dep["stages"] if s["stage"] == "serve")
    assert dep["endpoint_scope"] == scope and match.group(1) == serve["node"]
    assert ("reach:    from other machines" in text) == (scope == "node")

    probe = glm5("probe", name)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    via = f"(through serve job {serve['job_id']} on node {serve['node']})"
    assert (via in probe.stdout) == (scope == "node") and "completion ok     Paris" in probe.stdout

    tunnel = subprocess.Popen([str(GLM5_HPC), "tunnel", name, "--local-port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while not line.startswith("tunnel: http://127.0.0.1:"):
            line = tunnel.stdout.readline()  # type: ignore[union-attr]
            assert line, "the tunnel ended before it listened"
        local = line.split()[1]
        models = httpx.get(f"{local}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == MODEL
        answer = httpx.post(f"{local}/v1/completions", json={"prompt": "The capital of France is", "max_tokens": 20},
                            timeout=10).json()  # fmt: skip
        assert "Paris" in answer["choices"][0]["text"]
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


def test_wheel_built_on_one_gpu_node_serves_on_the_other(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    builder, server = GPU_NODES
    profile = make_profile("twonodes", stages={"build-wheel": {"nodelist": builder}, "serve": {"nodelist": server}})
    cleanup_deployments.append("twonodes")
    glm5("submit", "--profile", str(profile), "--name", "twonodes", "--wait", "--timeout", "240", check=True)
    dep = status_json("twonodes")
    nodes = {s["stage"]: s["node"] for s in dep["stages"]}
    assert nodes == {"prep-model": CPU_NODE, "build-wheel": builder, "serve": server}
    log = Path(dep["logs"], f"{dep['stages'][2]['job_id']}_0_log.out").read_text()
    wheel_dir = Path(profile.parent, "work", "wheels")  # shared storage: every node sees the same path
    assert f"Processing {wheel_dir}/" in log and "Successfully installed tensorrt-llm-" in log
