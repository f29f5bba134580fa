"""Failed requests and the longest gap under continuous load, through the deployment's router
(on the CPU node; the 8-GPU serve jobs on the GPU nodes): a handover before the time limit, a
`redeploy --no-downtime` and the serving node failing (the job requeued onto the other GPU node),
beside what users get without them (a plain `redeploy`, which stops the old server first; a
serve job reaching its time limit with no handover).

    .venv/bin/python benchmarks/zero_downtime.py

A client sends completions back to back (one in flight, 50 ms apart) to the router's address
for the whole scenario. The longest gap is the longest time between two successful answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import LoadClient
from slurm_bench import bench_env, bench_profile, glm5

ROUTER_PORT = 18995
MODEL = "GLM-5-nvfp4-v1"


def status(name: str, env: dict[str, str]) -> dict[str, Any]:
    (dep,) = json.loads(glm5("status", name, "--json", env=env))["deployments"]
    return dep  # type: ignore[no-any-return]


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True).stdout
    return out.split()[0] if out.split() else ""


def scenario(root: Path, name: str, act: str, **profile: Any) -> dict[str, Any]:
    """Submit, put the deployment under load, do `act`, and return the client's summary."""
    doc = yaml.safe_load(bench_profile(root / name, 0).read_text())
    doc["serve"].update(port="auto")
    del doc["stages"]["serve"]["nodelist"]  # successors and replacements land on the other GPU node
    doc["stages"]["serve"].update(**profile.pop("serve_stage", {}))
    doc.update(router={"enabled": True, "host": "0.0.0.0", "port": ROUTER_PORT, "drain_s": 3}, **profile)  # noqa: S104
    path = root / name / "profile.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = bench_env(root / "state")
    glm5("submit", "--profile", str(path), "--name", name, "--wait", "--timeout", "300", env=env)
    first = status(name, env)
    client = LoadClient(first["stable_endpoint"], MODEL)
    client.start()
    time.sleep(3)
    t0 = time.monotonic()
    if act == "handover":  # wait for the first serve job to retire (or, without handover, to reach its limit)
        while sacct_state(first["route_job"]) not in ("COMPLETED", "TIMEOUT") and time.monotonic() - t0 < 400:
            time.sleep(1)
        time.sleep(40)  # the client keeps going after the switch (or the failure: the router waits 30 s per request)
    elif act == "node-failure":  # the serving node goes down; Slurm requeues the job onto the other GPU node
        node = first["stages"][-1]["node"]
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=glm5-benchmark"], check=True)
        time.sleep(5)
        while not status(name, env)["healthy"] and time.monotonic() - t0 < 300:
            time.sleep(0.5)
        time.sleep(10)
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=True)
    else:
        glm5("redeploy", name, *(["--no-downtime"] if act == "no-downtime" else ["--wait"]), "--timeout", "300", env=env)
        time.sleep(3)
    summary = client.finish()
    summary["old_job"] = f"{first['route_job']} {sacct_state(first['route_job'])}"
    after = status(name, env)
    summary["new_job"] = f"{after['route_job']} on {after['stages'][-1]['node']} (was {first['stages'][-1]['node']})"
    glm5("cancel", name, env=env)
    time.sleep(2)
    return summary


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="glm5-bench-") as tmp:
        root = Path(tmp)
        short = {"serve_stage": {"time": "00:02:00"}}
        rows.append(("handover before a 2-minute limit (`overlap`, lead 45 s)",
                     scenario(root, "ho", "handover", handover={"mode": "overlap", "lead_s": 45}, **short)))  # fmt: skip
        rows.append(("baseline: no handover, the job reaches its 2-minute limit", scenario(root, "noho", "handover", **short)))
        rows.append(("`redeploy --no-downtime`", scenario(root, "bg", "no-downtime")))
        rows.append(("baseline: plain `redeploy` (old stopped, then new started)", scenario(root, "plain", "plain")))
        rows.append(("serving node fails (`restart` policy: requeued onto the other GPU node)",
                     scenario(root, "nf", "node-failure", health={"restart": "restart", "max_restarts": 2})))  # fmt: skip
    print("| scenario | requests | failed | longest gap | slowest request | old serve job | new serve job |")
    print("|---|---|---|---|---|---|---|")
    for label, s in rows:
        print(f"| {label} | {s['requests']} | {s['failed']} | {s['longest_gap_s']:.2f} s | {s['slowest_s']:.2f} s "
              f"| {s['old_job']} | {s['new_job']} |")  # fmt: skip
        if s["failures"]:
            print(f"|   first failures: {'; '.join(str(f) for f in s['failures'])[:300]} |||||||")


if __name__ == "__main__":
    main()
