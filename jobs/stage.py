"""The function submitit runs for every stage: run the stage's rendered script and forward
termination signals to it, so its trap removes the container. For serve it also supervises:
a watcher judges the server, and the profile's restart policy (health.restart, max_restarts,
restart_backoff_s) restarts a crashed or unhealthy server within the same allocation. With
health.restart: restart the job is also submitted --requeue, so Slurm starts it again after a node
failure, at most max_restarts times; with "none" it is submitted --no-requeue. With a handover
policy it queues its successor (jobs/handover.py) or requeues itself before its time limit.

A non-zero exit of the script becomes the job's exit code (SystemExit passes through submitit
without a traceback), so Slurm records FAILED with the script's own code and `afterok`
dependents are cancelled (--kill-on-invalid-dep=yes).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.policies import retry_until
from glm5_hpc.adapters.secrets import read_secret
from glm5_hpc.domain.profile import Secret
from glm5_hpc.domain.render import LIFELINE_ENV, PORT_ENV
from glm5_hpc.domain.watch import WatchSpec
from glm5_hpc.errors import Glm5Error, SlurmError
from jobs import lifeline
from jobs.handover import HandoverPlan, queue_successor
from jobs.watcher import HealthFile, Watcher

PR_SET_PDEATHSIG = 1  # prctl(2)
REQUEUE_MARGIN_S = 5.0  # handover.mode requeue: stop asking this long before the time limit
REQUEUE_ASK_EVERY_S = 10.0


class _Child:
    """The running script, and whether Slurm asked this job to stop (scancel, time limit)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def start(self, script: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(["bash", script], stdout=sys.stdout, stderr=sys.stderr, env=env)
        return self.proc

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)


def end_with_batch_script() -> None:
    """SIGTERM this process if the batch script that started it dies (SIGKILL, the OOM killer):
    where Slurm tracks a job's processes by parentage (proctrack/linuxproc), an orphan escapes
    the job's end. The signal takes the usual path: the script's trap removes the container."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request
        os.kill(os.getpid(), signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def read_secrets(secrets: dict[str, Secret]) -> dict[str, str]:
    try:
        return {name: read_secret(name, source) for name, source in secrets.items()}
    except Glm5Error as exc:
        print(f"glm5_hpc: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_stage(
    stage: str, script: str, watch: WatchSpec | None = None, secrets: dict[str, Secret] | None = None,
    handover: HandoverPlan | None = None,
) -> None:  # fmt: skip
    print(f"glm5_hpc: stage {stage}: running {script}", flush=True)
    child = _Child()
    signal.signal(signal.SIGTERM, child.on_signal)
    signal.signal(signal.SIGINT, child.on_signal)
    end_with_batch_script()
    env = {**os.environ, **read_secrets(secrets or {})}
    env[LIFELINE_ENV] = str(lifeline.lock_path(os.environ.get("SLURM_JOB_ID") or str(os.getpid())))
    lifeline.hold(Path(env[LIFELINE_ENV]))  # released only when this process ends, however it ends
    atexit.register(Path(env[LIFELINE_ENV]).unlink, missing_ok=True)
    if watch is None:
        rc = child.start(script, env).wait()
    else:
        if handover is not None:
            start_handover(handover, stage, script, watch, secrets)
        port = free_port() if watch.port == "auto" else int(watch.port)
        if watch.gateway is not None and watch.gateway.enabled:
            watch = start_gateway(watch, port)
            port = int(watch.port)
        env[PORT_ENV] = str(port)
        print(f"glm5_hpc: serve port {port}", flush=True)
        rc = supervise(replace(watch, port=port), script, env, child)
    if rc != 0:
        print(f"glm5_hpc: stage {stage}: {script} exited with code {rc}", file=sys.stderr, flush=True)
        raise SystemExit(rc if rc > 0 else 128 - rc)


def start_requeue_timer(lead_s: float, stopping: threading.Event, health: HealthFile) -> None:
    """handover.mode requeue, where jobs may not overlap: lead_s before the time limit, ask Slurm to
    requeue this job (the scripts' traps remove the container; the server is down until the
    requeued job is ready again). slurmctld may be down at that moment: the request is retried
    until REQUEUE_MARGIN_S before the limit; if it never succeeds the job says so in its log and
    health file (status shows it as a warning) and ends at its limit."""
    job_id = os.environ.get("SLURM_JOB_ID", "")

    def timer() -> None:
        end = slurm.job_end_epoch(job_id)
        while end is None:  # no answer (slurmctld down at the job's start): ask again
            if stopping.wait(REQUEUE_ASK_EVERY_S):
                return
            end = slurm.job_end_epoch(job_id)
        if stopping.wait(max(0.0, end - time.time() - lead_s)):
            return
        print(f"glm5_hpc: {lead_s:g}s before the time limit: requeueing job {job_id} (handover.mode requeue)", flush=True)
        failure = retry_until(lambda: slurm.requeue(job_id), end - REQUEUE_MARGIN_S - time.time(), SlurmError, stopping)
        if failure is None or stopping.is_set():
            return
        warning = (f"the requeue before the time limit failed until {REQUEUE_MARGIN_S:g}s before it ({failure}); "
                   "this job ends at its limit and the deployment with it: glm5_hpc redeploy starts it again")  # fmt: skip
        print(f"glm5_hpc: {warning}", file=sys.stderr, flush=True)
        health.record(warning=warning)

    threading.Thread(target=timer, name="glm5-requeue", daemon=True).start()


def start_handover(plan: HandoverPlan, stage: str, script: str, watch: WatchSpec, secrets: dict[str, Secret] | None) -> None:
    """Queue this serve job's successor in the background; serving does not wait for it."""

    def queue() -> None:
        try:
            queue_successor(plan, os.environ.get("SLURM_JOB_ID", ""), run_stage, stage, script, watch, secrets)
        except Exception as exc:  # serving goes on; the job will end at its limit without a successor
            print(f"glm5_hpc: handover: could not queue a successor: {exc}", file=sys.stderr, flush=True)

    threading.Thread(target=queue, name="glm5-handover", daemon=True).start()


def start_gateway(watch: WatchSpec, public_port: int) -> WatchSpec:
    """Start the API-key gateway on the public port; the server gets a private loopback port."""
    from glm5_hpc.adapters.endpoint import node_address, node_name
    from jobs.gateway import Gateway

    assert watch.gateway is not None and watch.gateway.api_key is not None
    key = read_secrets({"gateway.api_key": watch.gateway.api_key})["gateway.api_key"]
    internal = free_port()
    gateway = Gateway(watch.gateway.host, public_port, f"http://127.0.0.1:{internal}", key)
    gateway.start()
    gateway.ready.wait(timeout=30)
    if gateway.error is not None or not gateway.ready.is_set():
        print(
            f"glm5_hpc: the API-key gateway did not start on {watch.gateway.host}:{public_port}: {gateway.error}", file=sys.stderr
        )
        raise SystemExit(2)  # never serve unguarded when a gateway was asked for
    host = "127.0.0.1" if watch.gateway.host in ("127.0.0.1", "localhost") else node_address(node_name())
    print(f"glm5_hpc: API-key gateway on {watch.gateway.host}:{public_port} -> 127.0.0.1:{internal}", flush=True)
    return replace(watch, port=internal, public_url=f"http://{host}:{public_port}")


def supervise(spec: WatchSpec, script: str, env: dict[str, str], child: _Child) -> int:
    """Run the server, restarting it per the profile's policy; return the exit code for the job."""
    h = spec.health
    health = HealthFile(spec.health_file, os.environ.get("SLURM_JOB_ID", ""), spec.replica, spec.metrics_dir)
    if spec.requeue_lead_s:
        start_requeue_timer(spec.requeue_lead_s, child.stopping, health)
    deadline = time.monotonic() + h.ready_timeout_s
    restarts = 0
    requeues = int(os.environ.get("SLURM_RESTART_COUNT") or 0)  # Slurm requeued this job (node failure, scontrol)
    if requeues:
        if requeues > h.max_restarts and not spec.requeue_lead_s:
            refused = f"requeued {requeues} times by Slurm, more than health.max_restarts={h.max_restarts}"
            health.record(phase="stopped", requeues=requeues, reason=refused)
            return 1
        of = "" if spec.requeue_lead_s else f" of {h.max_restarts}"
        health.record(requeues=requeues, reason=f"requeued by Slurm (time limit near, node failure or scontrol): {requeues}{of}")
    while True:
        if spec.ranks > 1:  # each attempt's ranks mark their start afresh
            shutil.rmtree(Path(spec.ranks_dir) / health.doc["job_id"], ignore_errors=True)
        proc = child.start(script, env)
        watcher = Watcher(spec, health, deadline, end_server=lambda _reason: child.terminate())
        watcher.start()
        rc = proc.wait()
        watcher.stop.set()
        watcher.join(timeout=30)
        if child.stopping.is_set():
            health.record(phase="stopped", reason=f"the job was cancelled or reached its time limit (server exit code {rc})")
            return rc
        if watcher.outcome == "deadline":
            return rc or 1
        if watcher.outcome == "retired":  # a newer serve job took the traffic: done, not failed
            return 0
        why = health.doc.get("reason") if watcher.outcome == "unhealthy" else f"server exited with code {rc}"
        if h.restart == "restart" and restarts < h.max_restarts and (rc != 0 or watcher.outcome == "unhealthy"):
            restarts += 1
            delay = h.restart_backoff_s * 2 ** (restarts - 1)
            health.record(
                phase="restarting", restarts=restarts, reason=f"restart {restarts} of {h.max_restarts} in {delay:g}s after: {why}"
            )
            if child.stopping.wait(delay):
                return 143
            deadline = time.monotonic() + h.ready_timeout_s
            continue
        used = f" ({restarts} restart(s) used)" if restarts else ""
        health.record(phase="stopped", reason=f"{why}{used}")
        return rc if rc != 0 else (1 if watcher.outcome == "unhealthy" else 0)
