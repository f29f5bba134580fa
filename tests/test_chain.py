"""The whole chain on the real local cluster: Slurm (with accounting), podman, the stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import STANDIN, containers, eventually, glm5, squeue_ids

pytestmark = pytest.mark.usefixtures("cluster")
BRANCH = "user/perkzz/glm-flash-trtllm-gen"


def status_json(name: str) -> dict:
    (dep,) = json.loads(glm5("status", name, "--json", check=True).stdout)["deployments"]
    return dep


def sacct_names(ids: list[str]) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-o", "JobID,JobName", "-j", ",".join(ids)], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("|") for line in out.splitlines())


def test_submit_healthy_status_cancel(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("chain")
    cleanup_deployments.append("chain")
    proc = glm5("submit", "--profile", str(profile), "--name", "chain", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "completion:  Paris." in proc.stdout or "completion: Paris." in proc.stdout
    assert "warming up, batch size" in proc.stdout  # progress shown while waiting

    dep = status_json("chain")
    assert dep["healthy"] is True and dep["phase"] == "ready"
    stages = {s["stage"]: s for s in dep["stages"]}
    assert list(stages) == ["prep-model", "build-wheel", "serve"]
    assert [stages[s]["state"] for s in stages] == ["COMPLETED", "COMPLETED", "RUNNING"]
    ids = [stages[s]["job_id"] for s in stages]
    assert sacct_names(ids) == {stages[s]["job_id"]: f"glm5-chain-{s}" for s in stages}  # real Slurm job ids

    # the endpoint status shows answers, with the model the recipe names
    models = httpx.get(f"{dep['endpoint']}/v1/models", timeout=5).json()
    assert models["data"][0]["id"] == "GLM-5-nvfp4-v1"
    serve_container = f"glm5-chain-serve-{stages['serve']['job_id']}"
    assert serve_container in containers()

    human = glm5("status", "chain", check=True).stdout
    assert f"serve        {stages['serve']['job_id']}" in human and "health:   healthy: Paris." in human

    out = glm5("cancel", "chain", check=True).stdout
    assert out.strip() == f"cancelled jobs {stages['serve']['job_id']}"
    assert eventually(lambda: not (set(ids) & squeue_ids())), "jobs still in squeue after cancel"
    assert eventually(lambda: serve_container not in containers()), "container left behind after cancel"
    assert glm5("cancel", "chain", check=True).stdout.strip() == "nothing left to cancel in chain"
    dep = status_json("chain")
    assert dep["healthy"] is False and dep["stages"][2]["state"] == "CANCELLED"


def test_resubmit_reuses_the_cached_wheel(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("again")
    cleanup_deployments.append("again")
    assert glm5("submit", "--profile", str(profile), "--name", "again", "--wait", "--timeout", "240").returncode == 0
    busy = glm5("submit", "--profile", str(profile), "--name", "again")
    assert busy.returncode == 1 and "still has jobs in Slurm" in busy.stderr  # one live chain per deployment
    glm5("cancel", "again", check=True)
    assert eventually(lambda: not any(c.startswith("glm5-again-") for c in containers()))
    second = glm5("submit", "--profile", str(profile), "--name", "again", "--wait", "--timeout", "240")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "build-wheel=skipped" in second.stdout
    stages = status_json("again")["stages"]
    assert stages[1]["state"] == "SKIPPED" and stages[1]["reason"].startswith("wheel cached")


def test_skipped_recipe_step_gives_gibberish_verdict(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    # config.json left as shipped: the stack starts cleanly and answers with repetitive gibberish
    profile = make_profile("gib", model={"edits": {"architecture": False}})
    cleanup_deployments.append("gib")
    proc = glm5("submit", "--profile", str(profile), "--name", "gib", "--wait", "--timeout", "240")
    assert proc.returncode == 1
    assert "server is unhealthy: gibberish (distinct bigrams" in proc.stderr
    dep = status_json("gib")
    assert dep["healthy"] is False and dep["phase"] == "unhealthy" and dep["health_reason"].startswith("gibberish")
    assert "health:   unhealthy: gibberish" in glm5("status", "gib", check=True).stdout


def drifted_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "drifted-src"
    shutil.copytree(STANDIN / "trtllm", repo)
    op = repo / "cpp/tensorrt_llm/common/attentionOp.cpp"
    op.write_text(op.read_text().replace("fmhaParams.headSizeV = mMLAParams.qk_nope_head_dim;", "fmhaParams.headSizeV = dims.v;"))
    for cmd in (
        ["init", "-q", "-b", BRANCH],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "drift"],
    ):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    return repo


def test_failed_build_cancels_serve_and_names_the_cause(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], tmp_path: Path
) -> None:
    profile = make_profile("drift", recipe={"source": {"repo": str(drifted_repo(tmp_path))}})
    cleanup_deployments.append("drift")
    proc = glm5("submit", "--profile", str(profile), "--name", "drift", "--wait", "--timeout", "240")
    assert proc.returncode == 1
    assert "stage build-wheel (job" in proc.stderr and "ended FAILED, exit code 1:0" in proc.stderr
    assert "patch 'mla-context-head-size-v' cannot be applied" in proc.stderr  # the log tail names the cause
    stages = {s["stage"]: s for s in status_json("drift")["stages"]}
    assert stages["build-wheel"]["state"] == "FAILED"
    # the dependent serve job is not left pending forever
    assert eventually(lambda: stages["serve"]["job_id"] not in squeue_ids())
    assert eventually(lambda: status_json("drift")["stages"][2]["state"] == "CANCELLED")


def test_missing_branch_submits_nothing(make_profile: Callable[..., Path]) -> None:
    profile = make_profile("nobranch", recipe={"source": {"branch": "no/such-branch"}})
    before = squeue_ids()
    proc = glm5("submit", "--profile", str(profile), "--name", "nobranch")
    assert proc.returncode == 2
    assert "branch 'no/such-branch' not found in" in proc.stderr and "recipe.source.branch" in proc.stderr
    assert squeue_ids() - before == set()
    assert glm5("status", "--json", check=True).stdout.strip() == '{\n  "deployments": []\n}'
