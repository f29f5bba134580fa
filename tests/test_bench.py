"""`glm5_hpc bench` with NVIDIA's AIPerf (installed by scripts/bootstrap) against the stand-in,
which serves like a server: it streams, prefill grows with the prompt, each decode step with the
sequences running, at most max_batch_size (8 in the local profile) at once and a queue beyond."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GLM5_HPC, GPU_NODES, MODEL, STANDIN, copy_checkpoint, eventually, glm5

pytestmark = pytest.mark.usefixtures("cluster")
AIPERF = "/srv/glm5-local/aiperf/bin/aiperf"
SMALL = ("--input-len", "64", "--output-len", "32")


def test_bench_a_deployment_table_json_picture_record_and_compare(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], tmp_path: Path
) -> None:
    profile = make_profile("bench")
    cleanup_deployments.append("bench")
    glm5("submit", "--profile", str(profile), "--name", "bench", "--wait", "--timeout", "300", check=True, timeout=360)
    plot = tmp_path / "curve.png"
    proc = glm5("bench", "bench", "--concurrency", "1,4,16", *SMALL, "--requests", "32", "--plot", str(plot), "--json",
                timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    rows = {r["concurrency"]: r for r in result["rows"]}
    assert sorted(rows) == [1, 4, 16] and result["verdict"] == ""
    for r in rows.values():  # every request streamed its 32 tokens
        assert r["requests"] == 32 and r["errors"] == 0 and r["output_tokens"] == 32 * 32, r
        assert 0 < r["ttft"]["p50"] <= r["e2e"]["p50"] and r["itl"]["p50"] > 0
    # The curve's shape (the stand-in's model of a server, with wide margins): throughput rises with
    # concurrency while the batch has room; beyond 8 sequences requests queue, so latency climbs.
    assert rows[4]["output_tokens_s"] > 1.5 * rows[1]["output_tokens_s"], rows
    assert rows[16]["e2e"]["p50"] > 1.3 * rows[4]["e2e"]["p50"], rows
    assert result["where"] in GPU_NODES  # a loopback endpoint: run on the serve node
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result["plot"] == str(plot)
    assert (Path(result["artifacts"]) / "concurrency_16" / "profile_export_aiperf.json").is_file()

    second = glm5("bench", "bench", "--concurrency", "4", *SMALL, "--requests", "8", timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "| concurrency | requests | errors | output tok/s |" in second.stdout and "| 4 | 8 | 0 |" in second.stdout
    record = json.loads((Path(os.environ["GLM5_HPC_STATE_DIR"]) / "deployments" / "bench.json").read_text())
    ids = [b["id"] for b in record["runs"][-1]["benchmarks"]]
    assert len(ids) == 2 and ids[0] == result["id"]
    compared = glm5("bench", "bench", "--compare", ids[0], ids[1], check=True).stdout
    assert f"A: {ids[0]}" in compared and "\n| 4 | " in compared and "\n| 16 |" not in compared


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[str]:
    """The stand-in on this machine answering every completion with no tokens."""
    model = copy_checkpoint(tmp_path / "models")
    subprocess.run([str(GLM5_HPC), "prep", str(model)], check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(STANDIN / "trtllm"), "GLM5_STANDIN_LOAD_S": "0", "GLM5_STANDIN_WARMUP_STEP_S": "0",
           "GLM5_STANDIN_FAULT": "empty"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "tensorrt_llm.commands.serve", "serve", str(model), "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    assert eventually(lambda: subprocess.run(["curl", "-sf", f"{url}/health"], capture_output=True).returncode == 0, 30)
    yield url
    server.terminate()
    server.wait()


def test_bench_of_a_server_that_generates_nothing_exits_1(empty_server: str, tmp_path: Path) -> None:
    model_dir = next((tmp_path / "models").iterdir())
    proc = glm5("bench", "--url", empty_server, "--model", MODEL, "--tokenizer", str(model_dir), "--aiperf", AIPERF,
                "--concurrency", "2", *SMALL, "--requests", "4", "--output", str(tmp_path / "out"), timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # AIPerf counts an answer without content as a failed request
    assert "FAILED: 4 failed request(s) at concurrency 2 (InvalidInferenceResultError(" in proc.stdout, proc.stdout
    assert "No responses with actual content" in proc.stdout
    assert (tmp_path / "out").is_dir() and list((tmp_path / "out").glob("*/bench.png"))


def test_bench_input_errors_name_the_flag(tmp_path: Path) -> None:
    proc = glm5("bench", "--url", "http://127.0.0.1:1", "--model", MODEL, "--concurrency", "0,4")
    assert proc.returncode == 2 and "'0,4' is not a comma-separated list of concurrencies" in proc.stderr
    proc = glm5("bench", "--url", "http://127.0.0.1:1")
    assert proc.returncode == 2 and "--url needs --model" in proc.stderr
    proc = glm5("bench", "--url", "http://127.0.0.1:1", "--model", MODEL, "--aiperf", "/nonexistent/aiperf",
                "--output", str(tmp_path))  # fmt: skip
    assert proc.returncode == 2 and "'/nonexistent/aiperf' not found: install AIPerf" in proc.stderr
