"""Remote operation through a real sshd on loopback: key authentication, strict host keys, the
full submit -> status -> cancel path from a "laptop" profile, a tunnel carrying real HTTP to
the stand-in server, and profile init / doctor against the real cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from glm5_hpc.api import Cluster, Phase
from glm5_hpc.errors import InputError
from tests.conftest import GLM5_HPC, PREFIX, REPO, SLURM_CONF, containers, eventually, glm5, squeue_ids

pytestmark = pytest.mark.usefixtures("cluster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real OpenSSH server on 127.0.0.1 accepting one test key (for root, as the cluster runs here)."""
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client", "other-host"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = free_port()
    Path("/run/sshd").mkdir(exist_ok=True)
    log = (d / "sshd.log").open("w")
    proc = subprocess.Popen(
        [
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-p",
            str(port),
            "-h",
            str(d / "host"),
            "-o",
            "ListenAddress=127.0.0.1",
            "-o",
            f"AuthorizedKeysFile={d / 'authorized_keys'}",
            "-o",
            "StrictModes=no",
            "-o",
            "PermitRootLogin=prohibit-password",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            f"PidFile={d / 'sshd.pid'}",
            "-o",  # the "login node" side talks to the suite's cluster and keeps its records apart from the user's
            f"SetEnv=SLURM_CONF={SLURM_CONF} GLM5_HPC_STATE_DIR={d / 'login-state'} XDG_CONFIG_HOME={d / 'login-config'}",
        ],
        stderr=log,
    )
    assert eventually(
        lambda: subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True).returncode == 0, timeout_s=20
    ), (d / "sshd.log").read_text()
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    other = (d / "other-host.pub").read_text().split()
    (d / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
    yield {
        "port": str(port),
        "key": str(d / "client"),
        "known_hosts": str(d / "known_hosts"),
        "wrong_known_hosts": str(d / "wrong_known_hosts"),
        "dir": str(d),
    }
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def ssh_block(sshd: dict[str, str], tmp: Path, **over: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "user": "root",
        "port": int(sshd["port"]),
        "identity_file": sshd["key"],
        "known_hosts": sshd["known_hosts"],
        "remote_venv": str(tmp / "remote-venv"),
        "python": f"{sys.base_prefix}/bin/python3",
        **over,
    }


@pytest.fixture(scope="module")
def remote_venv(sshd: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`glm5_hpc remote setup` once for the module: the login node's own copy of glm5_hpc."""
    tmp = tmp_path_factory.mktemp("login")
    profile = tmp / "setup.yaml"
    doc = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())
    doc["ssh"] = ssh_block(sshd, tmp)
    profile.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [str(GLM5_HPC), "remote", "setup", "--profile", str(profile)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("remote: glm5_hpc 0.1.0 in ")
    return tmp / "remote-venv"


def test_unknown_host_key_is_refused_with_fingerprint(
    sshd: dict[str, str], tmp_path: Path, make_profile: Callable[..., Path]
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    profile = make_profile("unknownhost", ssh=ssh_block(sshd, tmp_path, known_hosts=str(empty)))
    proc = glm5("status", "--profile", str(profile))
    assert proc.returncode == 1
    expected_fp = subprocess.run(["ssh-keygen", "-lf", f"{sshd['dir']}/host.pub"], capture_output=True, text=True).stdout.split()[
        1
    ]
    assert f"host key of root@127.0.0.1:{sshd['port']} is not in {empty} (it offers ssh-ed25519 {expected_fp})" in proc.stderr
    assert f"ssh-keyscan -p {sshd['port']} 127.0.0.1 >> {empty}" in proc.stderr
    assert empty.read_text() == ""  # nothing was trusted behind the user's back


def test_changed_host_key_is_refused(sshd: dict[str, str], tmp_path: Path, make_profile: Callable[..., Path]) -> None:
    profile = make_profile("changedhost", ssh=ssh_block(sshd, tmp_path, known_hosts=sshd["wrong_known_hosts"]))
    proc = glm5("status", "--profile", str(profile))
    assert proc.returncode == 1 and f"host key of root@127.0.0.1:{sshd['port']} CHANGED" in proc.stderr


def test_wrong_key_fails_authentication(sshd: dict[str, str], tmp_path: Path, make_profile: Callable[..., Path]) -> None:
    profile = make_profile("badkey", ssh=ssh_block(sshd, tmp_path, identity_file=f"{sshd['dir']}/other-host"))
    proc = glm5("status", "--profile", str(profile))
    assert proc.returncode == 1 and f"SSH to root@127.0.0.1:{sshd['port']} failed: Authentication failed" in proc.stderr


def test_laptop_submit_status_tunnel_cancel(
    sshd: dict[str, str], remote_venv: Path, tmp_path: Path, make_profile: Callable[..., Path], state_dir: Path
) -> None:
    profile = make_profile(
        "laptop",
        ssh=ssh_block(sshd, remote_venv.parent),
        serve={"port": "auto"},
        container={"env": {"GLM5_STANDIN_LOAD_S": "2", "GLM5_STANDIN_BUILD_S": "1"}},
    )
    env = {**os.environ, "GLM5_HPC_STATE_DIR": str(state_dir)}
    try:
        proc = subprocess.run(
            [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "laptop", "--wait", "--timeout", "240"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "completion:  Paris." in proc.stdout or "completion: Paris." in proc.stdout  # streamed from the login node
        assert not (state_dir / "deployments" / "laptop.json").exists()  # recorded on the login node only
        status = subprocess.run(
            [str(GLM5_HPC), "status", "laptop", "--json", "--profile", str(profile)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        dep = json.loads(status.stdout)["deployments"][0]
        assert dep["healthy"] and all(s["job_id"] for s in dep["stages"])

        tunnel = subprocess.Popen(
            [str(GLM5_HPC), "tunnel", "laptop", "--profile", str(profile)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            first = tunnel.stdout.readline()  # type: ignore[union-attr]
            while not first.startswith("tunnel: http://127.0.0.1:"):
                first = tunnel.stdout.readline()  # type: ignore[union-attr]
            local = first.split()[1]
            assert first.strip().endswith(f"-> {dep['endpoint']} (through job {dep['stages'][2]['job_id']} on node "
                                          f"{dep['stages'][2]['node']}, where it answers); Ctrl-C to stop")  # fmt: skip
            models = httpx.get(f"{local}/v1/models", timeout=10).json()
            assert models["data"][0]["id"] == "GLM-5-nvfp4-v1"
            completion = httpx.post(
                f"{local}/v1/completions", json={"prompt": "The capital of France is", "max_tokens": 20}, timeout=10
            ).json()
            assert "Paris" in completion["choices"][0]["text"]
            # a redeploy moves the endpoint (a new auto port); the tunnel follows it
            redeploy = subprocess.run(
                [str(GLM5_HPC), "redeploy", "laptop", "--profile", str(profile), "--wait", "--timeout", "240"],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
            moved = json.loads(
                subprocess.run(
                    [str(GLM5_HPC), "status", "laptop", "--json", "--profile", str(profile)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                ).stdout
            )["deployments"][0]
            assert moved["endpoint"] != dep["endpoint"]

            def through_tunnel() -> bool:
                try:
                    return httpx.get(f"{local}/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            time.sleep(4)  # the tunnel re-reads the endpoint every 3 s
            assert eventually(through_tunnel, timeout_s=30)
        finally:
            tunnel.terminate()
            out, _ = tunnel.communicate(timeout=10)
        assert f"tunnel: endpoint is now {moved['endpoint']} (through job " in out

        ids = {s["job_id"] for s in moved["stages"] if s["job_id"]}
        cancel = subprocess.run(
            [str(GLM5_HPC), "cancel", "laptop", "--profile", str(profile)], capture_output=True, text=True, env=env
        )
        assert cancel.returncode == 0 and cancel.stdout.startswith("cancelled jobs ")
        assert eventually(lambda: not (ids & squeue_ids()))
        assert eventually(lambda: not any(c.startswith("glm5-laptop-") for c in containers()))
        again = subprocess.run(
            [str(GLM5_HPC), "cancel", "laptop", "--profile", str(profile)], capture_output=True, text=True, env=env
        )
        assert again.returncode == 0 and again.stdout.strip() == "nothing left to cancel in laptop"
        missing = subprocess.run(
            [str(GLM5_HPC), "cancel", "nosuch", "--profile", str(profile)], capture_output=True, text=True, env=env
        )
        assert missing.returncode == 2  # exit codes carry through SSH
    finally:
        subprocess.run([str(GLM5_HPC), "cancel", "laptop", "--profile", str(profile)], capture_output=True, env=env)


def test_the_python_api_over_ssh(
    sshd: dict[str, str], remote_venv: Path, make_profile: Callable[..., Path], state_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The same API with a profile that has ssh:: each call runs on the login node and returns typed values."""
    profile = make_profile("apissh", ssh=ssh_block(sshd, remote_venv.parent), serve={"port": "auto"},
                           container={"env": {"GLM5_STANDIN_LOAD_S": "2", "GLM5_STANDIN_BUILD_S": "1"}})  # fmt: skip
    cluster = Cluster(profile)
    try:
        dep = cluster.submit(name="apissh")
        progress: list[str] = []
        st = dep.wait(timeout_s=240, on_progress=progress.append)
        assert st.healthy and st.phase is Phase.READY and "Paris" in st.completion and progress[-1].startswith("server: ready")
        assert not (state_dir / "deployments" / "apissh.json").exists()  # recorded on the login node only
        assert "apissh" in [d.name for d in cluster.deployments()] and cluster.deployment("apissh").status().run_id == st.run_id
        result = dep.probe()
        assert result.ok and [v.rung for v in result.verdicts] == ["health", "models", "completion"]
        assert "Application startup complete." in dep.logs("serve", lines=200)
        with pytest.raises(InputError, match="no deployment named 'nosuch'"):
            cluster.deployment("nosuch")
        serve = st.stages[2].job_id
        assert dep.cancel() == [serve] and dep.cancel() == []
        assert capsys.readouterr().out == ""  # the API prints nothing
    finally:
        glm5("cancel", "apissh", "--profile", str(profile))


def test_profile_init_on_the_local_cluster_is_submittable(tmp_path: Path, cleanup_deployments: list[str]) -> None:
    from tests.conftest import copy_checkpoint

    model = copy_checkpoint(tmp_path / "models")
    out = tmp_path / "mine.yaml"
    proc = glm5(
        "profile",
        "init",
        "mine",
        "--output",
        str(out),
        "--model",
        str(model),
        "--work-dir",
        str(tmp_path / "work"),
        "--image",
        "localhost/glm5-standin/tensorrt-llm-release:1.3.0rc3",
        "--source-repo",
        "/srv/glm5-local/src/TensorRT-LLM",
        "--no-gpu-preflight",
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "partition: gpu" in text and "gpus: 8, gpu_type: b200" in text and "tp_size: 8" in text
    assert "binary: podman" in text  # the docker client here has no engine; podman answers
    assert glm5("profile", "validate", str(out), check=True).stdout.startswith("profile mine is valid")
    shown = yaml.safe_load(glm5("profile", "show", str(out), check=True).stdout)
    assert shown["health"]["poll_interval_s"] == 0.25 and shown["stages"]["serve"]["gpus"] == 8
    assert glm5("profile", "init", "mine", "--output", str(out)).returncode == 2  # never overwritten silently
    cleanup_deployments.append("mine")
    submit = glm5("submit", "--profile", str(out), "--wait", "--timeout", "240")
    assert submit.returncode == 0, submit.stdout + submit.stderr


def test_doctor(tmp_path: Path, make_profile: Callable[..., Path]) -> None:
    good = make_profile("doc")
    proc = glm5("doctor", "--profile", str(good), timeout=400)
    assert proc.returncode == 0, proc.stdout
    assert "12 of 12 checks passed" in proc.stdout and "ok    runtime on a gpu node" in proc.stdout
    assert f"ok    no container outlives its job none on {PREFIX}gpu" in proc.stdout
    assert "ok    TensorRT-LLM in the image fits recipe.variant source-build" in proc.stdout
    stock = make_profile("docstock", recipe={"variant": "stock"})  # the recipe's rc3 image cannot serve GLM-5 itself
    proc = glm5("doctor", "--profile", str(stock), timeout=400)
    assert proc.returncode == 1 and "FAIL  TensorRT-LLM in the image fits recipe.variant stock" in proc.stdout
    assert "set container.image to a release >= 1.3.0rc8, or recipe.variant: source-build" in proc.stdout
    bad = make_profile("docbad", stages={"serve": {"partition": "nosuch"}}, container={"image": "localhost/not-imported:1"})
    proc = glm5("doctor", "--profile", str(bad), timeout=400)
    assert proc.returncode == 1
    assert "FAIL  partition nosuch" in proc.stdout and "fix: stages serve use partition 'nosuch'" in proc.stdout


def test_profile_validate_lists_valid_keys(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    doc = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())
    doc["ssh"] = {"host": "login1", "strict_hostkeys": False}
    bad.write_text(yaml.safe_dump(doc))
    proc = glm5("profile", "validate", str(bad))
    assert proc.returncode == 2
    assert (
        "unknown key ssh.strict_hostkeys; valid keys here: connect_timeout_s, host, identity_file, jump_host, known_hosts"
        in proc.stderr
    )
