"""The whole chain on the real local cluster: Slurm (with accounting), podman, the stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import STANDIN, containers, eventually, glm5, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")
BRANCH = "user/perkzz/glm-flash-trtllm-gen"


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

    # the endpoint status shows answers, with the model the recipe names; it is the serve node's
    # loopback, so from this login node the probe goes through a step of the serve job
    assert dep["endpoint_scope"] == "node"
    probe = glm5("probe", "chain")
    assert probe.returncode == 0 and "models     ok     /v1/models lists 'GLM-5-nvfp4-v1'" in probe.stdout, probe.stdout
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


STOCK_IMAGE = "localhost/glm5-standin/tensorrt-llm-release:1.3.0"


def test_stock_variant_serves_the_checkpoint_as_shipped(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    """NVIDIA's GLM-5 path on a stand-in release that serves GLM-5 natively: no edits (no prep job),
    no build, the guide's serve flags and YAML, the image's version read and found fitting."""
    profile = make_profile("stock", recipe={"variant": "stock"}, container={"image": STOCK_IMAGE})
    cleanup_deployments.append("stock")
    config = (profile.parent / "models" / "GLM-5-nvfp4-v1" / "config.json").read_bytes()
    proc = glm5("submit", "--profile", str(profile), "--name", "stock", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prep-model=skipped" in proc.stdout and "build-wheel=skipped" in proc.stdout
    dep = status_json("stock")
    assert [(s["stage"], s["state"], s["reason"]) for s in dep["stages"]] == [
        ("prep-model", "SKIPPED", "no checkpoint edit asked for"),
        ("build-wheel", "SKIPPED", "stock variant: no build"),
        ("serve", "RUNNING", ""),
    ]
    assert (profile.parent / "models" / "GLM-5-nvfp4-v1" / "config.json").read_bytes() == config  # served as shipped
    image = dep["recipe"]["image"]
    assert (image["tensorrt_llm"], image["fit"]) == ("1.3.0", "ok")
    scripts = Path(dep["logs"]).parent / "scripts"
    # the guide's expert parallelism; the batch is local.yaml's (the guide's 128: tests/golden/docker-stock)
    assert "--tp_size 8 --ep_size 8 --max_batch_size 8" in (scripts / "serve-container.sh").read_text()
    assert "moe_config:\n  backend: TRTLLM\n" in (scripts / "serve-config.yaml").read_text()  # read: an NVFP4 checkpoint
    # the stock image's flashinfer (0.6.8's layout) has no check that rejects 192: reported, not patched, healthy
    flashinfer = dep["recipe"]["flashinfer"]
    assert (flashinfer["state"], flashinfer["changed"], flashinfer["version"]) == ("not needed", False, "0.6.8+standin")


def test_stock_variant_on_an_image_too_old_for_it_stops_at_once(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    """The stock variant on the recipe's 1.3.0rc3 image (which cannot serve GLM-5 itself): the serve
    stage stops before installing or loading anything, and the failure says what to change."""
    profile = make_profile("oldstock", recipe={"variant": "stock"})
    cleanup_deployments.append("oldstock")
    proc = glm5("submit", "--profile", str(profile), "--name", "oldstock", "--wait", "--timeout", "120")
    assert proc.returncode == 1
    dep = status_json("oldstock")
    assert dep["stages"][2]["state"] == "FAILED" and dep["recipe"]["image"]["fit"] == "refused"
    assert "recipe.variant stock needs TensorRT-LLM >= 1.3.0rc8" in dep["failure"]
    assert "set container.image to a release >= 1.3.0rc8, or recipe.variant: source-build" in dep["failure"]


def test_prep_hashes_land_in_the_deployment_record(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    import hashlib

    profile = make_profile("hashes")
    cleanup_deployments.append("hashes")
    assert glm5("submit", "--profile", str(profile), "--name", "hashes", "--wait", "--timeout", "240").returncode == 0
    dep = status_json("hashes")
    record = json.loads((state_dir / "deployments" / "hashes.json").read_text())
    prep = record["runs"][-1]["prep"]
    assert prep == dep["recipe"]["prep"]
    model = profile.parent / "models" / "GLM-5-nvfp4-v1"
    for f in prep["files"]:
        assert f["written"] and f["sha256_after"] == hashlib.sha256((model / f["file"]).read_bytes()).hexdigest()
        assert f["sha256_before"] == hashlib.sha256((model / (f["file"] + ".orig")).read_bytes()).hexdigest()
    assert record["runs"][-1]["flashinfer"]["state"] == "needed" and record["runs"][-1]["flashinfer"]["changed"]
    assert (state_dir / "deployments").stat().st_mode & 0o777 == 0o700
    assert (state_dir / "deployments" / "hashes.json").stat().st_mode & 0o777 == 0o600


def own_source_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "src-repo"
    subprocess.run(["git", "clone", "-q", "--branch", BRANCH, "/srv/glm5-local/src/TensorRT-LLM", str(repo)], check=True)
    return repo


def submitted_stages(stdout: str) -> dict[str, str]:
    jobs = stdout.split(": ", 1)[1].split("\n", 1)[0]
    return dict(item.split("=") for item in jobs.split(", "))


def test_wheel_cache_key_follows_commit_and_rebuild_forces(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], tmp_path: Path
) -> None:
    repo = own_source_repo(tmp_path)
    profile = make_profile("cache", recipe={"source": {"repo": str(repo)}})
    cleanup_deployments.append("cache")

    def submit(*extra: str) -> dict[str, str]:
        glm5("cancel", "cache")
        eventually(lambda: not any(c.startswith("glm5-cache-") for c in containers()))
        proc = glm5("submit", "--profile", str(profile), "--name", "cache", *extra)
        assert proc.returncode == 0, proc.stderr
        return submitted_stages(proc.stdout)

    assert submit()["build-wheel"] != "skipped"
    assert eventually(lambda: status_json("cache")["stages"][1]["state"] == "COMPLETED", timeout_s=120)
    assert submit()["build-wheel"] == "skipped"  # unchanged inputs: no build job
    assert submit("--rebuild")["build-wheel"] != "skipped"
    (repo / "README.md").write_text("a new upstream commit\n")
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "new"], check=True)
    assert submit()["build-wheel"] != "skipped"  # new commit, new key: rebuilt


def test_time_limit_stops_and_removes_the_container(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("tlimit", stages={"serve": {"time": "00:01:00"}})
    cleanup_deployments.append("tlimit")
    assert glm5("submit", "--profile", str(profile), "--name", "tlimit", "--wait", "--timeout", "240").returncode == 0
    serve = status_json("tlimit")["stages"][2]
    name = f"glm5-tlimit-serve-{serve['job_id']}"
    assert name in containers()
    # Slurm ends the job at its limit (checked every 30 s or so); the trap removes the container
    assert eventually(lambda: status_json("tlimit")["stages"][2]["state"] == "TIMEOUT", timeout_s=180, interval_s=2)
    assert eventually(lambda: name not in containers(), timeout_s=30)


def test_scancel_during_build_leaves_no_container(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("slowbuild", container={"env": {"GLM5_STANDIN_BUILD_S": "120"}})
    cleanup_deployments.append("slowbuild")
    glm5("submit", "--profile", str(profile), "--name", "slowbuild", check=True)
    assert eventually(lambda: any(c.startswith("glm5-slowbuild-build-wheel-") for c in containers()), timeout_s=60)
    ids = {s["job_id"] for s in status_json("slowbuild")["stages"]}
    out = subprocess.run(["scancel", *sorted(ids)], capture_output=True, text=True)  # Slurm's own cancel, not ours
    assert out.returncode == 0, out.stderr
    assert eventually(lambda: not any(c.startswith("glm5-slowbuild-") for c in containers()), timeout_s=40)
    assert eventually(lambda: not (ids & squeue_ids()), timeout_s=40)
