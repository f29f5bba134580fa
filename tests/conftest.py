"""Shared fixtures. Integration tests run against the project's own multi-node Slurm cluster,
podman and the TensorRT-LLM stand-in; the session fixture starts them and FAILS the run if they
cannot start.

The suite has clusters of its own: the `test` and `test2` instances of scripts/local-cluster (each
its own slurmctld, nodes tcpu1, tgpu1, tgpu2 or ucpu1, ugpu1, ugpu2, and SLURM_CONF), one per
pytest worker, so it never needs, shows or touches the jobs of the `main` instance where the
README's first command deploys. Every Slurm command of the
suite, and of what it runs, reads SLURM_CONF set here. HOME and the XDG directories point into a
temporary directory for the same reason: no test writes the user's own state or config.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
STANDIN = REPO / "standin"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Two pytest workers (pyproject: -n 2 --dist loadfile), each with a cluster of its own: worker gw0
# runs on the `test` instance, gw1 on `test2` (scripts/local-cluster). A file's tests run on one
# worker, one after another; the two instances share only munge, MariaDB/slurmdbd and podman.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_INSTANCES = (("test", "t", "glm5test"), ("test2", "u", "glm5test2"))
if len(_INSTANCES) <= WORKER:
    raise pytest.UsageError(f"the suite has {len(_INSTANCES)} clusters, one per worker: run it with -n 2 or fewer")
INSTANCE, PREFIX, CLUSTER_NAME = _INSTANCES[WORKER]
SLURM_CONF = f"/etc/slurm-glm5-{INSTANCE}/slurm.conf"
CPU_NODE, GPU_NODES = f"{PREFIX}cpu1", (f"{PREFIX}gpu1", f"{PREFIX}gpu2")
_ports = itertools.count(18100 + 1000 * WORKER)


def pytest_configure(config: pytest.Config) -> None:
    os.environ["SLURM_CONF"] = SLURM_CONF
    home = Path(tempfile.mkdtemp(prefix="glm5-test-home-"))
    for var, sub in (("HOME", ""), ("XDG_STATE_HOME", ".local/state"), ("XDG_CONFIG_HOME", ".config")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(home / sub)


@pytest.fixture(scope="session")
def cluster() -> None:
    """The local cluster and stand-in assets, started once (both commands are idempotent)."""
    for cmd in (["scripts/local-cluster", "--instance", INSTANCE, "up"], ["scripts/standin-assets"]):
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("GLM5_HPC_STATE_DIR", str(d))
    return d


def copy_checkpoint(dest: Path) -> Path:
    model = dest / "GLM-5-nvfp4-v1"
    shutil.copytree(STANDIN / "checkpoint" / "GLM-5-nvfp4-v1", model)
    return model


def deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


@pytest.fixture
def make_profile(tmp_path: Path) -> Callable[..., Path]:
    """Write a profile derived from cluster_profiles/local.yaml with its own work dir, checkpoint copy and port."""

    def make(name: str = "t", **overrides: Any) -> Path:
        doc = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())
        root = tmp_path / name
        root.mkdir()
        model = copy_checkpoint(root / "models")
        doc = deep_update(doc, {"work_dir": str(root / "work"), "model": {"path": str(model)}, "serve": {"port": next(_ports)}})
        doc = deep_update(doc, overrides)
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return make


GLM5_HPC = Path(sys.executable).parent / "glm5_hpc"


def dies_after_sbatch(stage: str) -> dict[str, str]:
    """Environment in which glm5_hpc dies right after the sbatch of `stage` (tests/crash_hook)."""
    hook = str(Path(__file__).resolve().parent / "crash_hook")
    return {**os.environ, "GLM5_HPC_TEST_EXIT_AFTER_SBATCH": stage, "PYTHONPATH": hook}


def glm5(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would (outside the source tree, so the installed
    package, with its shipped jobs/ and sbatch/, is what runs)."""
    proc = subprocess.run([str(GLM5_HPC), *args], capture_output=True, text=True, timeout=timeout, cwd="/")
    if check and proc.returncode != 0:
        raise AssertionError(f"glm5_hpc {' '.join(args)} -> rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def status_json(name: str) -> dict[str, Any]:
    """One deployment's entry of `glm5_hpc status NAME --json`."""
    (dep,) = json.loads(glm5("status", name, "--json", check=True).stdout)["deployments"]
    return dep  # type: ignore[no-any-return]


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def comment_jobs(name: str) -> list[str]:
    """Ids of the queued jobs that carry the deployment's comment, recorded or not."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True).stdout
    return [ln.split("|")[0] for ln in out.splitlines() if ln.split("|")[1].startswith(f"glm5_hpc:{name}:")]


def containers() -> set[str]:
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def eventually(check: Callable[[], bool], timeout_s: float = 60, interval_s: float = 0.5) -> bool:
    """Poll `check` until true or the bound expires (a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()


ROUTED = {  # the router job runs on the CPU node: the serve endpoint and the router listen on their nodes' addresses
    "serve": {"host": "0.0.0.0", "port": "auto"},
}
_router_ports = itertools.count(18400 + 1000 * WORKER)
MODEL = "GLM-5-nvfp4-v1"


def routed_profile(make_profile: Callable[..., Path], name: str, **over: Any) -> Path:
    """A profile with a router, reachable from the login node where the tests' clients run."""
    router = {"enabled": True, "host": "0.0.0.0", "port": next(_router_ports), "drain_s": 3}
    return make_profile(name, **deep_update(deep_update({"router": router}, json.loads(json.dumps(ROUTED))), over))


def start_load(name: str) -> Any:
    """A client sending completions back to back through the deployment's stable endpoint."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from load_client import LoadClient

    dep = status_json(name)
    assert dep["healthy"] and dep["stable_endpoint"], dep
    client = LoadClient(dep["stable_endpoint"], MODEL)
    client.start()
    assert eventually(lambda: sum(o.ok for o in client.outcomes) >= 5, timeout_s=30)
    return client


def report(what: str, summary: dict[str, object]) -> None:
    print(f"{what}: {json.dumps(summary)}")  # shown with pytest -s; the numbers in docs come from the benchmark


@pytest.fixture
def cleanup_deployments() -> Iterator[list[str]]:
    """Names registered here are cancelled after the test, pass or fail: no job outlives a test."""
    names: list[str] = []
    yield names
    for n in names:
        glm5("cancel", n)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.get("HOME", "")
    if Path(home).name.startswith("glm5-test-home-"):
        shutil.rmtree(home, ignore_errors=True)
