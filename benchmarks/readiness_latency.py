"""Readiness-detection latency: glm5_hpc's watcher against a 10 s curl poll loop (NVIDIA's
wait_server.sh, vec-inf), side by side on the same server start.

    .venv/bin/python benchmarks/readiness_latency.py [--trials 5]

Each trial starts the TensorRT-LLM stand-in with a random load time (3-8 s), and three observers at
once: a ground-truth poller (GET /health every 5 ms) that marks when the server starts answering,
the real watcher (jobs/watcher.py, profile defaults: 0.25 s polling, the full ladder including the
checked completion), and `while ! curl -sf URL/health; do sleep 10; done`. It prints, per trial,
how long after the server started answering each one noticed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from glm5_hpc.app.prep import prep_model
from glm5_hpc.app.source import patch_source
from glm5_hpc.domain.model_prep import Edits
from glm5_hpc.domain.profile import Health
from glm5_hpc.domain.watch import WatchSpec
from jobs.watcher import HealthFile, Watcher

REPO = Path(__file__).resolve().parent.parent
YAML = "sparse_attention_config: {algorithm: dsa, index_n_heads: 32, index_head_dim: 128, index_topk: 2048}\n"


def build_standin(tmp: Path) -> tuple[Path, Path, Path]:
    """A patched, built and unpacked stand-in (so it answers coherently), a prepared checkpoint, the serve YAML."""
    src = tmp / "src"
    shutil.copytree(REPO / "standin" / "trtllm", src)
    patch_source(src)
    subprocess.run([sys.executable, str(src / "scripts" / "build_wheel.py"), "--dist_dir", str(tmp / "dist")],
                   env={**os.environ, "GLM5_STANDIN_BUILD_S": "0"}, check=True, capture_output=True)  # fmt: skip
    site = tmp / "site"
    with zipfile.ZipFile(next((tmp / "dist").glob("*.whl"))) as zf:
        zf.extractall(site)
    model = tmp / "GLM-5-nvfp4-v1"
    shutil.copytree(REPO / "standin" / "checkpoint" / "GLM-5-nvfp4-v1", model)
    prep_model(model, Edits())
    (tmp / "serve.yaml").write_text(YAML)
    return site, model, tmp / "serve.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trial(site: Path, model: Path, config: Path, load_s: float, tmp: Path) -> tuple[float, float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(site), "GLM5_STANDIN_LOAD_S": f"{load_s:.2f}", "GLM5_STANDIN_WARMUP_STEP_S": "0"}
    t_launch = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorrt_llm.commands.serve", "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--max_batch_size", "8", "--extra_llm_api_options", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    curl = subprocess.Popen(["bash", "-c", f"while ! curl -sf -m 5 {url}/health >/dev/null; do sleep 10; done"])
    spec = WatchSpec(health_file=str(tmp / "health.json"), container_binary="podman", container_prefix="x", network="host",
                     bind_host="127.0.0.1", port=port, model_id=model.name, health=Health())  # fmt: skip
    health = HealthFile(spec.health_file, "bench")
    watcher = Watcher(spec, health, time.monotonic() + 120, end_server=lambda _r: None)
    watcher.start()
    first_answer = None
    with httpx.Client() as client:
        while first_answer is None:
            try:
                if client.get(f"{url}/health", timeout=1).status_code == 200:
                    first_answer = time.monotonic()
            except httpx.TransportError:
                time.sleep(0.005)
    t_watcher = t_curl = None
    while t_watcher is None or t_curl is None:
        if t_watcher is None and health.doc.get("phase") == "ready":
            t_watcher = time.monotonic()
        if t_curl is None and curl.poll() is not None:
            t_curl = time.monotonic()
        time.sleep(0.001)
    watcher.stop.set()
    server.terminate()
    server.wait()
    return first_answer - t_launch, t_watcher - first_answer, t_curl - first_answer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        site, model, config = build_standin(tmp)
        rows = [trial(site, model, config, random.uniform(3, 8), tmp) for _ in range(args.trials)]  # noqa: S311 - not secret
    print(f"{'trial':>5} {'answers after launch':>21} {'watcher noticed after':>22} {'curl 10 s loop noticed after':>29}")
    for i, (answer, ours, curl) in enumerate(rows, 1):
        print(f"{i:>5} {answer:>20.2f}s {ours:>21.3f}s {curl:>28.3f}s")
    ours = [r[1] for r in rows]
    curls = [r[2] for r in rows]
    print(f"{'mean':>5} {'':>21} {statistics.mean(ours):>21.3f}s {statistics.mean(curls):>28.3f}s")
    print(f"{'max':>5} {'':>21} {max(ours):>21.3f}s {max(curls):>28.3f}s")
    print(f"watcher is {statistics.mean(curls) / statistics.mean(ours):.0f}x sooner on average "
          "(and it has also checked /v1/models and a completion's text)")  # fmt: skip


if __name__ == "__main__":
    main()
