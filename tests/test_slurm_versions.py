"""The compatibility subset on other Slurm releases: Debian trixie's Slurm 24.11 and sid's 26.05,
each a cluster of its own (scripts/version-cluster: munge, MariaDB, slurmdbd, slurmctld, slurmd in
a chroot with its own namespaces), driven through the glm5_hpc installed there, as a user of that
site would. The local profile serves there with the bare runtime (the chroot is the node's
software). A version that cannot be built or started fails the module: never skipped.

The main suite runs on the project's own cluster (Slurm 22.05, several nodes); this one checks that
what glm5_hpc asks of Slurm (sbatch options, dependencies, comments, squeue/sacct/scontrol output,
requeue and --begin) means the same on the releases sites run now."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, STANDIN, deep_update, eventually

VERSIONS = ("24.11", "26.05")
VERSION_CLUSTER = REPO / "scripts" / "version-cluster"


class Site:
    """One Slurm release's cluster, seen from its login side. The tests keep their state and
    work directories under /tmp/glm5-test-<id> in its chroot: never a user's deployments there."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.rootfs = Path(f"/var/lib/glm5-local/slurm-{version}/root")
        self.tag = uuid.uuid4().hex[:8]
        self.home = f"/tmp/glm5-test-{self.tag}"

    def name(self, base: str) -> str:
        """A deployment name of this run only: a job another run left on this cluster is never adopted."""
        return f"{base}-{self.tag}"

    def run(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        pairs = [f"{k}={v}" for k, v in {"GLM5_HPC_STATE_DIR": f"{self.home}/state", **(env or {})}.items()]
        return subprocess.run([str(VERSION_CLUSTER), self.version, "run", "--", "env", *pairs, *argv],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip

    def glm5(self, *args: str, check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
        proc = self.run("glm5_hpc", *args, **kw)
        if check and proc.returncode != 0:
            what = f"[Slurm {self.version}] glm5_hpc {' '.join(args)} -> rc={proc.returncode}"
            raise AssertionError(f"{what}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def status(self, name: str) -> dict[str, Any]:
        (dep,) = json.loads(self.glm5("status", name, "--json", check=True).stdout)["deployments"]
        return dep  # type: ignore[no-any-return]

    def jobs(self, name: str) -> set[str]:
        """Queued jobs carrying the deployment's comment, recorded or not."""
        out = self.run("squeue", "-h", "-o", "%i|%k").stdout
        return {ln.split("|")[0] for ln in out.splitlines() if ln.split("|")[1].startswith(f"glm5_hpc:{name}:")}

    def sacct_state(self, job_id: str) -> str:
        out = self.run("sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id).stdout.split()
        return out[0] if out else ""

    def profile(self, name: str, **overrides: Any) -> str:
        """The chroot's local profile (bare runtime) with its own work dir and checkpoint copy; its path there."""
        doc = yaml.safe_load((self.rootfs / "opt/glm5/profiles/local.yaml").read_text())
        inside = f"{self.home}/{name}"
        shutil.copytree(STANDIN / "checkpoint" / "GLM-5-nvfp4-v1", self.rootfs / inside.lstrip("/") / "models/GLM-5-nvfp4-v1")
        doc = deep_update(doc, {"work_dir": f"{inside}/work", "model": {"path": f"{inside}/models/GLM-5-nvfp4-v1"}})
        path = self.rootfs / inside.lstrip("/") / f"{name}.yaml"
        path.write_text(yaml.safe_dump(deep_update(doc, overrides)))
        return f"{inside}/{name}.yaml"

    def controller(self, up: bool) -> None:
        if up:
            quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            subprocess.run([str(VERSION_CLUSTER), self.version, "run", "--", "slurmctld"], check=True, timeout=60, **quiet)
        else:
            self.run("bash", "-c", "kill $(cat /run/slurmctld.pid)", timeout=30)
        assert eventually(lambda: (self.run("scontrol", "ping").returncode == 0) == up, timeout_s=60)
        if up:
            assert eventually(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.split()[0] in ("idle", "mixed", "allocated"))


@pytest.fixture(scope="module", params=VERSIONS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The release's cluster, built on first use (kept for later runs) and started; brought down
    again afterwards unless it was already running before (then someone else uses it)."""
    version = str(request.param)
    was_up = subprocess.run([str(VERSION_CLUSTER), version, "status"], capture_output=True).returncode == 0
    proc = subprocess.run([str(REPO / "scripts" / "local-cluster"), "up", "--slurm", version],
                          capture_output=True, text=True, timeout=1500)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"Slurm {version} did not come up (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    assert f"slurm-wlm {version}." in proc.stdout, proc.stdout
    s = Site(version)
    yield s
    shutil.rmtree(s.rootfs / s.home.lstrip("/"), ignore_errors=True)
    if not was_up:
        subprocess.run([str(REPO / "scripts" / "local-cluster"), "down", "--slurm", version], capture_output=True, timeout=120)


def test_submit_list_logs_status_with_the_controller_down_redeploy_cancel(site: Site) -> None:
    life = site.name("life")
    try:
        proc = site.glm5("submit", "--profile", site.profile("life"), "--name", life, "--wait", "--timeout", "240")
        assert proc.returncode == 0 and "completion: Paris." in proc.stdout, proc.stdout + proc.stderr
        first = site.status(life)
        assert first["healthy"] and [s["node"] for s in first["stages"]] == ["vnode1"] * 3
        assert [s["state"] for s in first["stages"]] == ["COMPLETED", "COMPLETED", "RUNNING"]
        assert life in site.glm5("list", check=True).stdout
        prep = site.glm5("logs", life, "prep-model", "-n", "5", check=True).stdout
        assert "config.json: changed: architectures -> [DeepseekV32ForCausalLM]" in prep

        site.controller(up=False)
        down = site.glm5("status", life, "--json", env={"GLM5_HPC_SLURM_RETRY_S": "5"}, timeout=120)
        assert down.returncode == 1 and down.stdout == "", down.stdout + down.stderr
        assert down.stderr.startswith(("glm5_hpc: error: sacct -X failed", "glm5_hpc: error: squeue -h failed")), down.stderr
        site.controller(up=True)
        assert site.status(life)["healthy"]  # the same job, after the controller came back

        redone = site.glm5("redeploy", life, "--wait", "--timeout", "240")
        assert redone.returncode == 0, redone.stdout + redone.stderr
        second = site.status(life)
        old_serve = first["stages"][2]["job_id"]
        assert second["healthy"] and second["run_id"] != first["run_id"] and second["stages"][2]["job_id"] != old_serve
        assert eventually(lambda: site.sacct_state(old_serve) == "CANCELLED", timeout_s=60)
    finally:
        site.glm5("cancel", life)
    assert eventually(lambda: not site.jobs(life), timeout_s=60)


def test_a_failing_first_stage_cancels_the_rest(site: Site) -> None:
    fails = site.name("fails")
    profile = site.profile("fails")
    (site.rootfs / site.home.lstrip("/") / "fails/models/GLM-5-nvfp4-v1/config.json").write_text("{ not json")
    try:
        site.glm5("submit", "--profile", profile, "--name", fails, check=True)
        assert eventually(lambda: bool(site.status(fails).get("failure")) and
                          site.status(fails)["stages"][2]["state"] == "CANCELLED", timeout_s=120)  # fmt: skip
        dep = site.status(fails)
        prep = dep["stages"][0]
        assert dep["failure"].startswith(f"stage prep-model (job {prep['job_id']}) ended FAILED"), dep["failure"]
        assert "config.json: not valid JSON" in dep["failure"]
        assert [s["state"] for s in dep["stages"][1:]] == ["CANCELLED", "CANCELLED"]  # killed as invalid dependants
        assert not site.jobs(fails)
    finally:
        site.glm5("cancel", fails)


def test_a_handover_before_the_time_limit(site: Site) -> None:
    """A 1-minute serve job of 4 GPUs queues its successor (--begin) 25 s before its limit; the
    successor takes the route and the old job retires before its limit, on this release's
    requeue-free overlap path."""
    profile = site.profile(
        "handover", router={"enabled": True, "host": "0.0.0.0", "port": 18390, "drain_s": 3},
        serve={"host": "0.0.0.0", "tp_size": 4}, handover={"mode": "overlap", "lead_s": 25},
        stages={"serve": {"time": "00:01:00", "gpus": 4}},
    )  # fmt: skip
    handover = site.name("handover")
    try:
        site.glm5("submit", "--profile", profile, "--name", handover, "--wait", "--timeout", "240", check=True)
        first = site.status(handover)
        old = first["route_job"]
        assert old == first["stages"][2]["job_id"]
        assert eventually(lambda: site.status(handover)["next_serve"].startswith("job "), timeout_s=30)
        assert eventually(lambda: site.sacct_state(old) == "COMPLETED", timeout_s=120, interval_s=2)
        after = site.status(handover)
        assert after["healthy"] and after["route_job"] != old and after["handovers"] >= 1, after
        assert after["stable_endpoint"] == first["stable_endpoint"]
        answer = site.run("curl", "-sf", f"{after['stable_endpoint']}/v1/models", timeout=30)
        assert answer.returncode == 0 and "GLM-5-nvfp4-v1" in answer.stdout, answer.stdout + answer.stderr
    finally:
        site.glm5("cancel", handover)
    assert eventually(lambda: not site.jobs(handover), timeout_s=60)
