"""Helpers shared by the benchmarks that run real chains on the local cluster: a benchmark
profile, sacct's times for a set of jobs, and a ground-truth poller for when a server answers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
GLM5_HPC = str(Path(sys.executable).parent / "glm5_hpc")
# Benchmarks run on the local cluster's test instance (scripts/local-cluster --instance test up), as
# the tests do, so a deployment of the main instance never shares their nodes.
os.environ.setdefault("SLURM_CONF", "/etc/slurm-glm5-test/slurm.conf")
SERVE_NODE = "tgpu1"  # the GPU node the timed serve jobs run on; the probes reach it at its address


def node_address(node: str = SERVE_NODE) -> str:
    out = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True, check=True).stdout
    return next(f.split("=", 1)[1] for f in out.split() if f.startswith("NodeAddr="))


def bench_profile(root: Path, port: int, **overrides: Any) -> Path:
    """cluster_profiles/local.yaml with its own work dir, checkpoint copy and fixed port; the
    build stage holds one GPU, as in cluster_profiles/example-b200.yaml."""
    doc = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())
    model = root / "models" / "GLM-5-nvfp4-v1"
    shutil.copytree(REPO / "standin" / "checkpoint" / "GLM-5-nvfp4-v1", model)
    doc["work_dir"] = str(root / "work")
    doc["model"]["path"] = str(model)
    doc["serve"].update(port=port, host="0.0.0.0")  # noqa: S104 - the node's address: the benchmark polls it from here
    doc["stages"]["serve"]["nodelist"] = SERVE_NODE
    doc["stages"]["build-wheel"].update(gpus=1, gpu_type="b200")
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def glm5(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run([GLM5_HPC, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"glm5_hpc {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def stage_jobs(name: str, env: dict[str, str]) -> dict[str, str]:
    (dep,) = json.loads(glm5("status", name, "--json", env=env))["deployments"]
    return {s["stage"]: s["job_id"] for s in dep["stages"] if s["job_id"]}


def sbatch(*args: str) -> str:
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class JobTimes:
    submit: float
    start: float
    end: float | None
    gpus: int

    @property
    def elapsed(self) -> float:
        assert self.end is not None
        return self.end - self.start


def _epoch(value: str) -> float | None:
    if value in ("", "Unknown", "None"):
        return None
    return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))


def sacct_times(ids: list[str], timeout_s: float = 60) -> dict[str, JobTimes]:
    """Submit/start/end (1 s resolution, Slurm's own) and allocated GPUs of each job."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(["sacct", "-X", "-P", "-n", "-o", "JobID,Submit,Start,End,AllocTRES", "-j", ",".join(ids)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        times: dict[str, JobTimes] = {}
        for line in out.splitlines():
            jid, submit, start, end, tres = line.split("|")
            gpus = next((int(t.split("=")[1]) for t in tres.split(",") if t.startswith("gres/gpu=")), 0)
            s, b = _epoch(submit), _epoch(start)
            if s is not None and b is not None:
                times[jid] = JobTimes(s, b, _epoch(end), gpus)
        if all(j in times for j in ids) or time.monotonic() > deadline:
            return times
        time.sleep(1)


def wait_gone(ids: list[str], port: int, timeout_s: float = 120) -> None:
    """Block until none of the jobs is in squeue and nothing answers on the port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True).stdout
        if not queued.split() and not answers(port):
            return
        time.sleep(0.5)
    raise SystemExit(f"jobs {ids} or port {port} still busy after {timeout_s:g}s")


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://{node_address()}:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class AnswerPoller(threading.Thread):
    """Ground truth: GET /health every 5 ms; `first_ok` is when the server first answered 200."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.first_ok: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        url = f"http://{node_address()}:{self.port}/health"
        with httpx.Client() as client:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url, timeout=1).status_code == 200:
                        self.first_ok = time.time()
                        return
                time.sleep(0.005)


def curl_loop(port: int, interval_s: float = 10, timeout_s: float = 1800) -> float:
    """NVIDIA's wait_server.sh: curl /health, sleep 10 s, until it answers. Returns when it saw it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        curl = ["curl", "-sf", "-o", "/dev/null", "--max-time", "5", f"http://{node_address()}:{port}/health"]
        if subprocess.run(curl, check=False).returncode == 0:
            return time.time()
        time.sleep(interval_s)
    raise SystemExit(f"curl loop: nothing answered on port {port} within {timeout_s:g}s")


def bench_env(state: Path) -> dict[str, str]:
    return {**os.environ, "GLM5_HPC_STATE_DIR": str(state)}


STAGES = ("prep-model", "build-wheel", "serve")


def held_jobs(n: int) -> list[str]:
    return [subprocess.run(["sbatch", "--parsable", "--hold", "-p", "cpu", "--mem=10", "-J", "bench", "--wrap", "true"],
                           capture_output=True, text=True, check=True).stdout.strip() for _ in range(n)]  # fmt: skip


def write_records(state: Path, ids: list[str], deployments: int) -> None:
    (state / "deployments").mkdir(parents=True)
    for d in range(deployments):
        stages = [{"stage": s, "job_id": ids[3 * d + k]} for k, s in enumerate(STAGES)]
        run = {"run_id": "r", "run_dir": str(state), "health_file": str(state / "none.json"), "logs": "",
               "planned": list(STAGES), "stages": stages, "submission": "complete"}  # fmt: skip
        (state / "deployments" / f"d{d:03d}.json").write_text(json.dumps({"schema": 1, "name": f"d{d:03d}", "runs": [run]}))


def path_wrappers(bindir: Path, log: Path) -> None:
    """sacct/squeue/scontrol wrappers that log each call: command, "job" (made from inside a job)
    or "client", and the time."""
    bindir.mkdir()
    for cmd in ("sacct", "squeue", "scontrol"):
        who = 'who=client; [ -n "$SLURM_JOB_ID" ] && who=job'
        (bindir / cmd).write_text(f'#!/bin/sh\n{who}\necho {cmd} $who $(date +%s.%N) >> {log}\nexec /usr/bin/{cmd} "$@"\n')
        (bindir / cmd).chmod(0o755)
