"""Remote operation: the tool runs on the laptop, the work on the login node.

`glm5_hpc remote setup --profile P` installs this very version of glm5_hpc into a virtual
environment on the login node (a wheel rebuilt from the installed files, uploaded over SFTP).
Every cluster command given a profile with an `ssh:` block is then run by that remote copy over
one SSH connection: the profile is uploaded first, output streams back, and the exit code carries
through. On the login node GLM5_HPC_ON_LOGIN_NODE=1 stops it from forwarding again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shlex
import zipfile
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

from glm5_hpc import __version__
from glm5_hpc.adapters.login_node import ON_LOGIN_NODE
from glm5_hpc.adapters.shell import SSHShell
from glm5_hpc.domain.bench import BenchPlan
from glm5_hpc.domain.profile import Profile
from glm5_hpc.errors import Glm5Error


def remote_profile(profile: Profile) -> str:
    """Where the uploaded profile lives on the login node: inside glm5_hpc's own remote venv, so an
    upload never replaces a profile of the user's own there."""
    assert profile.ssh is not None
    return f"{profile.ssh.remote_venv}/profiles/{profile.name}.yaml"


def installed_wheel() -> tuple[str, bytes]:
    """A wheel of the installed glm5_hpc, rebuilt from its RECORD (so the login node runs exactly this)."""
    dist = distribution("glm5_hpc")
    name = f"glm5_hpc-{dist.version}-py3-none-any.whl"
    info = f"glm5_hpc-{dist.version}.dist-info"
    records, buf = [], io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files or []:
            path = str(f)
            if path.startswith("..") or path.endswith((".pyc", "/RECORD", "INSTALLER", "REQUESTED", "direct_url.json")):
                continue
            data = f.locate().read_bytes()  # type: ignore[attr-defined]
            zf.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join([*records, f"{info}/RECORD,,"]) + "\n")
    return name, buf.getvalue()


def _remote_tool(profile: Profile) -> str:
    assert profile.ssh is not None
    return f"{profile.ssh.remote_venv}/bin/glm5_hpc"


def setup(profile: Profile, shell: SSHShell) -> str:
    """Create or upgrade the remote venv with this version; returns what the remote copy reports."""
    assert profile.ssh is not None
    venv = profile.ssh.remote_venv
    name, data = installed_wheel()
    remote_wheel = f"{venv}/wheels/{name}"
    shell.put(data, remote_wheel, 0o644)
    steps = [
        ["sh", "-c", f"test -x {shlex.quote(venv)}/bin/python || {shlex.quote(profile.ssh.python)} -m venv {shlex.quote(venv)}"],
        [f"{venv}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall", "--no-deps",
         remote_wheel],
        [f"{venv}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", remote_wheel],
        [_remote_tool(profile), "--version"],
    ]  # fmt: skip
    for argv in steps:
        r = shell.run(argv, timeout_s=900)
        if r.rc != 0:
            raise Glm5Error(
                f"remote setup on {shell.where} failed at `{shlex.join(argv)}` (rc={r.rc}): {r.stderr.strip()[-500:]}"
            )
    version = r.stdout.strip()
    if version != f"glm5_hpc {__version__}":
        raise Glm5Error(f"remote setup on {shell.where}: the remote copy reports {version!r}, expected glm5_hpc {__version__}")
    return f"{version} in {venv} on {shell.where}"


def forward(profile: Profile, argv: list[str], shell: SSHShell) -> int:
    """Run `glm5_hpc ARGV` on the login node with the profile uploaded; stream output; return its exit code."""
    assert profile.ssh is not None
    shell.put(Path(profile.source).read_bytes(), remote_profile(profile))
    r = shell.run(["env", f"{ON_LOGIN_NODE}=1", _remote_tool(profile), *with_profile(argv, remote_profile(profile))], stream=True)
    if r.rc == 127:
        raise Glm5Error(f"glm5_hpc is not installed on {shell.where}; run: glm5_hpc remote setup --profile {profile.name}")
    return r.rc


def with_profile(argv: list[str], name: str) -> list[str]:
    """argv with the --profile value (a path on the laptop) replaced by the uploaded profile's path."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--profile" and i + 1 < len(argv):
            out += ["--profile", name]
            skip = True
        elif arg.startswith("--profile="):
            out.append(f"--profile={name}")
        else:
            out.append(arg)
    return out


class RemoteCommands:
    """glm5_hpc commands run on the login node of a profile with `ssh:`, their output captured (one
    JSON document where the result is typed): how the Python API drives such a cluster."""

    def __init__(self, profile: Profile) -> None:
        assert profile.ssh is not None
        self.profile = profile
        self.shell = SSHShell(profile.ssh)
        self._uploaded = False

    def run(self, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
        """stdout of `glm5_hpc ARGV --profile P` on the login node; its error as this side's error
        (unless its exit code is one of `ok`)."""
        from glm5_hpc.errors import InputError

        if not self._uploaded:
            self.shell.put(Path(self.profile.source).read_bytes(), remote_profile(self.profile))
            self._uploaded = True
        r = self.shell.run(
            ["env", f"{ON_LOGIN_NODE}=1", _remote_tool(self.profile), *argv, "--profile", remote_profile(self.profile)]
        )
        if r.rc == 127:
            raise Glm5Error(
                f"glm5_hpc is not installed on {self.shell.where}; run: glm5_hpc remote setup --profile {self.profile.name}"
            )
        if r.rc not in ok:
            error = next((ln for ln in reversed(r.stderr.splitlines()) if ln.startswith("glm5_hpc: ")), r.stderr.strip()[-300:])
            message = f"on {self.shell.where}: {error.removeprefix('glm5_hpc: ').removeprefix('error: ')}"
            raise (InputError if r.rc == 2 else Glm5Error)(message)
        return r.stdout

    def json(self, *argv: str, ok: tuple[int, ...] = (0,)) -> Any:
        return json.loads(self.run(*argv, "--json", ok=ok))


def bench_argv(plan: BenchPlan, options: dict[str, Any]) -> list[str]:
    """`glm5_hpc bench` arguments for the login node's copy (options as Deployment.bench takes them)."""
    argv = ["--concurrency", ",".join(map(str, plan.concurrencies)), "--input-len", str(plan.input_len),
            "--output-len", str(plan.output_len), "--json"]  # fmt: skip
    if plan.requests is not None:
        argv += ["--requests", str(plan.requests)]
    if plan.duration_s is not None:
        argv += ["--duration", f"{plan.duration_s:g}"]
    flags = {"url": "--url", "model": "--model", "tokenizer": "--tokenizer", "aiperf": "--aiperf", "plot": "--plot"}
    return argv + [arg for key, flag in flags.items() if options.get(key) for arg in (flag, str(options[key]))]
