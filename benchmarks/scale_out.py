"""Scale-out figures, side by side in one run on this machine:

1. throughput of a deployment with 1 and with 2 replicas (8-GPU serve jobs on the two GPU nodes
   of the local cluster's test instance), through its router, with the stand-in given a serving
   capacity (at most 4 sequences at once, 10 ms per output token, a queue beyond);
2. the router (jobs/router.py, with each engine: python, and nginx driven by the router) against
   plain nginx (Debian's nginx-light) configured as the equivalent reverse proxy, all in front of
   the same upstream on loopback: the latency each adds to a request (p50, p99, one connection)
   and the most requests per second each carries (64 connections), measured with wrk;
3. time to healthy of one server on one node (2 GPUs) against the same server across two nodes
   (stages.serve.nodes: 2, one MPI rank and one GPU on each): from the serve job's start to the
   watcher's "ready" (the full ladder), the median of --rounds serve jobs of each, interleaved.

    .venv/bin/python benchmarks/scale_out.py [--seconds 20] [--rounds 3]

nginx-light and wrk are installed from Debian if missing (as root, like scripts/bootstrap).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import LoadClient
from slurm_bench import REPO, bench_env, bench_profile, glm5

ROUTER_PORT = 18996
MODEL = "GLM-5-nvfp4-v1"
CAPACITY = {"GLM5_STANDIN_DECODE_S": "0.01", "GLM5_STANDIN_DECODE_GROWTH": "0.05"}
MAX_TOKENS = 32
CLIENTS = 16
ROUNDS = 3  # proxy measurements: the median of this many interleaved rounds


def throughput(root: Path, replicas: int, seconds: float) -> dict[str, Any]:
    """Completions per second through the router with CLIENTS clients sending back to back."""
    name = f"rep{replicas}"
    doc = yaml.safe_load(bench_profile(root / name, 0).read_text())
    doc["serve"].update(port="auto", replicas=replicas, max_batch_size=4)
    del doc["stages"]["serve"]["nodelist"]
    doc.setdefault("container", {}).setdefault("env", {}).update(CAPACITY)
    doc["router"] = {"enabled": True, "host": "0.0.0.0", "port": ROUTER_PORT, "drain_s": 3}  # noqa: S104
    path = root / name / "profile.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = bench_env(root / "state")
    glm5("submit", "--profile", str(path), "--name", name, "--wait", "--timeout", "400", env=env)
    (dep,) = json.loads(glm5("status", name, "--json", env=env))["deployments"]
    clients = [LoadClient(dep["stable_endpoint"], MODEL, pause_s=0, max_tokens=MAX_TOKENS, full_length=True)
               for _ in range(CLIENTS)]  # fmt: skip
    for c in clients:
        c.start()
    time.sleep(3)  # past the first requests' queueing
    start = time.monotonic()
    done_before = sum(sum(o.ok for o in c.outcomes) for c in clients)
    time.sleep(seconds)
    done = sum(sum(o.ok for o in c.outcomes) for c in clients) - done_before
    elapsed = time.monotonic() - start
    summaries = [c.finish() for c in clients]
    glm5("cancel", name, env=env)
    return {"replicas": replicas, "req_s": done / elapsed, "tokens_s": done * MAX_TOKENS / elapsed,
            "failed": sum(int(s["failed"]) for s in summaries)}  # fmt: skip


def time_to_healthy(root: Path, rounds: int) -> dict[int, list[float]]:
    """Seconds from each serve job's start to ready, for a 1-node and a 2-node server of tp_size 2."""
    env = bench_env(root / "state")
    found: dict[int, list[float]] = {1: [], 2: []}
    for nodes in (1, 2):
        name = f"across{nodes}"
        doc = yaml.safe_load(bench_profile(root / name, 0).read_text())
        doc["serve"].update(port="auto", tp_size=2)
        del doc["stages"]["serve"]["nodelist"]
        doc["stages"]["serve"].update(nodes=nodes, gpus=2 // nodes, mem="1G")
        path = root / name / "profile.yaml"
        path.write_text(yaml.safe_dump(doc))
        glm5("submit", "--profile", str(path), "--name", name, "--wait", "--timeout", "400", env=env)
    for i in range(rounds):
        for nodes in (1, 2):
            name = f"across{nodes}"
            if i:
                glm5("redeploy", name, "--from", "serve", "--wait", "--timeout", "400", env=env)
            (dep,) = json.loads(glm5("status", name, "--json", env=env))["deployments"]
            health = json.loads((Path(dep["logs"]).parent / "health.json").read_text())
            found[nodes].append(health["ready_at"] - health["started_at"])
    for nodes in (1, 2):
        glm5("cancel", f"across{nodes}", env=env)
    return found


NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream server {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{ listen 127.0.0.1:{upstream}; location / {{ default_type application/json; return 200 '{{"object":"list"}}'; }} }}
    server {{
        listen 127.0.0.1:{proxy};
        location / {{ proxy_pass http://server; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
"""


def ensure_tools() -> None:
    if shutil.which("nginx") and shutil.which("wrk"):
        return
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light", "wrk"], check=True, capture_output=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip


def wrk(url: str, connections: int, seconds: float) -> dict[str, float]:
    """requests/s and latency percentiles (ms) from wrk --latency."""
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)  # wrk pads "1.43s "
        assert m, out
        return float(m.group(1)) * unit[m.group(2)]

    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert m, out
    return {"p50": pct("50"), "p99": pct("99"), "rps": float(m.group(1))}


def proxies(root: Path, seconds: float) -> dict[str, dict[str, float]]:
    upstream, nginx_port, router_port, engine_port = 18997, 18998, 18999, 18994
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, upstream=upstream, proxy=nginx_port))
    nginx = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-g", "daemon off;"])
    route = root / "route" / "route.json"
    route.parent.mkdir()
    route.write_text(json.dumps({"job_id": "1", "url": f"http://127.0.0.1:{upstream}", "at": time.time()}))
    code = (
        "from pathlib import Path; import uvloop; from aiohttp import web; from jobs.router import make_app; "
        f"web.run_app(make_app(Path({str(route)!r})), host='127.0.0.1', port={router_port}, print=None, access_log=None, "
        "loop=uvloop.new_event_loop())"
    )
    router = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    engine = (f"from jobs.router import run_router; run_router({str(route)!r}, {str(root / 'router.json')!r}, '127.0.0.1', "
              f"{engine_port}, 'nginx', 'nginx', 1)")  # fmt: skip
    nginx_engine = subprocess.Popen([sys.executable, "-c", engine], cwd=REPO)
    try:
        time.sleep(3)
        paths = (("direct to the server", upstream), ("glm5_hpc router (engine python)", router_port),
                 ("glm5_hpc router (engine nginx)", engine_port), ("plain nginx", nginx_port))  # fmt: skip
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label, _ in paths}
        for _ in range(ROUNDS):  # interleaved, so a slow moment of the machine does not fall on one path only
            for label, port in paths:
                url = f"http://127.0.0.1:{port}/v1/models"
                one, many = wrk(url, 1, seconds), wrk(url, 64, seconds)
                rounds[label].append({"p50": one["p50"], "p99": one["p99"], "rps": many["rps"]})
        return {label: {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "rps")} for label, rs in rounds.items()}
    finally:
        for proc in (router, nginx_engine, nginx):
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="glm5-bench-") as tmp:
        root = Path(tmp)
        rows = [throughput(root, n, args.seconds) for n in (1, 2)]
        print(f"throughput through the router, {CLIENTS} clients back to back, {MAX_TOKENS} tokens per completion, "
              "stand-in capacity 4 sequences x 10 ms per token per replica:")  # fmt: skip
        print("| replicas | completions/s | output tokens/s | failed |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['replicas']} | {r['req_s']:.1f} | {r['tokens_s']:.0f} | {r['failed']} |")
        print(f"ratio 2 replicas / 1: {rows[1]['req_s'] / rows[0]['req_s']:.2f}x\n")
        ready = time_to_healthy(root, args.rounds)
        print(f"time to healthy (serve job start -> ready), tp_size 2, median of {args.rounds} serve jobs each:")
        print("| server | median | each |\n|---|---|---|")
        for nodes, label in ((1, "1 node, 2 GPUs"), (2, "2 nodes, 1 rank + 1 GPU each")):
            each = ", ".join(f"{t:.1f}" for t in ready[nodes])
            print(f"| {label} | {statistics.median(ready[nodes]):.1f} s | {each} |")
        print()
        found = proxies(root, args.seconds / 4)
    direct = found["direct to the server"]
    print(f"proxies on loopback, GET /v1/models against the same upstream (wrk; median of {ROUNDS} interleaved rounds):")
    print("| path | p50 (1 connection) | p99 (1 connection) | added p50 | added p99 | peak requests/s (64 connections) |")
    print("|---|---|---|---|---|---|")
    for label, f in found.items():
        added = f"{f['p50'] - direct['p50']:+.3f} ms | {f['p99'] - direct['p99']:+.3f} ms" if f is not direct else "- | -"
        print(f"| {label} | {f['p50']:.3f} ms | {f['p99']:.3f} ms | {added} | {f['rps']:.0f} |")


if __name__ == "__main__":
    main()
