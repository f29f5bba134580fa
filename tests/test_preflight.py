"""GPU preflight on real nvidia-smi output (tests/fixtures/nvidia-smi/h100/ and h200/, captured on
H100 and H200 nodes), and checkpoints recognised by precision: NVFP4, FP8, BF16."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glm5_hpc.domain.checkpoint import precision_of, weight_bytes
from glm5_hpc.domain.gpu_preflight import Gpu, built_for, parse_query, problems
from tests.conftest import FIXTURES, copy_checkpoint, glm5

H100 = (FIXTURES / "nvidia-smi" / "h100" / "query-gpu-noheader.csv").read_text()
# No B200 output was available: the H100 line with a B200's name and compute capability (10.0).
B200_LINE = H100.strip().replace("NVIDIA H100 80GB HBM3", "NVIDIA B200").replace(", 9.0,", ", 10.0,")


# glm5_hpc's four fields (index, name, compute_cap, memory.total) of the captured H200 line
H200_FIELDS = (FIXTURES / "nvidia-smi" / "h200" / "query-gpu-full-nounits.csv").read_text().split(", ")
H200_LINE = ", ".join([H200_FIELDS[0], H200_FIELDS[2], H200_FIELDS[3], H200_FIELDS[4]])
GB = 10**9


def h200s(n: int) -> list[Gpu]:
    return parse_query("\n".join(H200_LINE.replace("0,", f"{i},", 1) for i in range(n)))


def b200s(n: int) -> list[Gpu]:
    return parse_query("\n".join(B200_LINE.replace("0,", f"{i},", 1) for i in range(n)))


def test_parses_the_real_h100_output() -> None:
    assert parse_query(H100) == [Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0), 81559)]


def test_h100_refused_for_nvfp4_with_a_clear_message() -> None:
    (msg,) = problems(parse_query(H100), 1, None, "nvfp4")
    assert msg.startswith("NVFP4 needs Blackwell (compute capability >= 10.0, e.g. B200); this node has 0: NVIDIA H100 80GB HBM3")


def test_h100_refused_for_an_sm100_build() -> None:
    (msg,) = problems(parse_query(H100), 0, "100", None)
    assert "cuda_architectures '100' builds for compute capability 10.0; this node has 0: NVIDIA H100" in msg


def test_eight_b200_pass_and_too_few_fail() -> None:
    assert problems(b200s(8), 8, "100", "nvfp4") == []
    (msg,) = problems(b200s(2), 8, "100", "nvfp4")
    assert msg.startswith("2 GPU(s) visible, 8 needed (serve.tp_size)")


def test_architecture_lists() -> None:
    assert built_for("100") == {(10, 0)}
    assert built_for("90-real;100-real") == {(9, 0), (10, 0)}
    assert built_for("100a") == {(10, 0)}
    assert built_for("all") is None


def test_garbage_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_query("No devices were found")


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Path:
    """Stands in for nvidia-smi (no GPUs here): prints the real H100 capture."""
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat {FIXTURES / 'nvidia-smi' / 'h100' / 'query-gpu-noheader.csv'}\n")
    script.chmod(0o755)
    return script


def test_cli_refuses_h100_for_the_nvfp4_checkpoint(fake_nvidia_smi: Path, tmp_path: Path) -> None:
    model = copy_checkpoint(tmp_path)  # quantization_config.quant_algo is NVFP4
    proc = glm5("preflight", "--min-gpus", "1", "--model", str(model), "--nvidia-smi", str(fake_nvidia_smi))
    assert proc.returncode == 1
    assert proc.stderr.startswith("glm5_hpc: GPU preflight failed: NVFP4 needs Blackwell")


def test_cli_without_nvidia_smi(tmp_path: Path) -> None:
    proc = glm5("preflight", "--nvidia-smi", str(tmp_path / "absent"))
    assert proc.returncode == 1 and "not found; is this a GPU node?" in proc.stderr


def test_cuda_visible_devices_narrows(fake_nvidia_smi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glm5_hpc.adapters.node_facts import visible_gpus

    monkeypatch.setitem(os.environ, "CUDA_VISIBLE_DEVICES", "3")
    assert visible_gpus(str(fake_nvidia_smi)) == []
    monkeypatch.setitem(os.environ, "CUDA_VISIBLE_DEVICES", "0")
    assert len(visible_gpus(str(fake_nvidia_smi))) == 1


def test_checkpoint_precisions() -> None:
    assert precision_of({"quantization_config": {"quant_algo": "NVFP4"}}) == "nvfp4"
    assert precision_of({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}) == "fp8"  # GLM-5-FP8
    assert precision_of({"quantization_config": {"quant_algo": "FP8_BLOCK_SCALES"}}) == "fp8"  # ModelOpt
    assert precision_of({"torch_dtype": "bfloat16"}) == "bf16"
    with pytest.raises(ValueError, match="quant_algo 'W4A16_AWQ'"):
        precision_of({"quantization_config": {"quant_algo": "W4A16_AWQ"}})
    assert weight_bytes({"model-00001.safetensors": 5, "config.json": 100, "x.safetensors": 7}) == 12


def test_fp8_on_eight_h200_passes_and_nvfp4_is_refused_there() -> None:
    h200 = h200s(8)
    assert h200[0] == Gpu(0, "NVIDIA H200", (9, 0), 143771)
    assert problems(h200, 8, None, "fp8", weight_bytes=750 * GB) == []  # the FP8 checkpoint fits 8 x 141 GB
    (msg,) = problems(h200, 8, None, "nvfp4")
    assert msg.startswith("NVFP4 needs Blackwell (compute capability >= 10.0, e.g. B200); this node has 0: NVIDIA H200")


def test_fp8_weights_that_do_not_fit_eight_h100_are_refused() -> None:
    (msg,) = problems(parse_query(H100) * 8, 8, None, "fp8", weight_bytes=750 * GB)
    assert msg.startswith("the checkpoint's weights (750 GB) do not fit in 8 GPU(s) of 684 GB together")
    (msg,) = problems([Gpu(0, "NVIDIA A100", (8, 0), 81920)], 1, None, "fp8")
    assert msg.startswith("FP8 needs compute capability >= 8.9 (Hopper or later")


def test_cli_reads_the_precision_and_never_opens_weights(fake_nvidia_smi: Path, tmp_path: Path) -> None:
    model = copy_checkpoint(tmp_path)
    cfg = model / "config.json"
    cfg.write_text(cfg.read_text().replace('"quant_algo": "NVFP4"', '"quant_algo": "FP8"'))
    os.mkfifo(model / "model-00001-of-00002.safetensors")  # a reader would hang on it
    proc = glm5("preflight", "--min-gpus", "1", "--model", str(model), "--nvidia-smi", str(fake_nvidia_smi))
    assert proc.returncode == 0, proc.stderr  # FP8 on an H100 is fine
    cfg.write_text('{"quantization_config": "x"}')
    proc = glm5("preflight", "--model", str(model), "--nvidia-smi", str(fake_nvidia_smi))
    assert proc.returncode == 2 and f"cannot tell the precision of {cfg}" in proc.stderr
