"""Connections to an endpoint that answers on its node only, from anywhere Slurm's commands run:
each connection is a step of the job on that node (`srun --jobid=J --overlap`) running
jobs/relay.py, which carries the bytes over the step's standard input and output. Over SSH the
same srun runs on the login node in an exec channel. Either way the result has the socket
methods the tunnel pumps use (recv, sendall, close)."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
from typing import Any

from glm5_hpc.adapters.endpoint import node_name
from glm5_hpc.domain.reach import Reach


def relay_argv(reach: Reach, python: str) -> list[str]:
    host, port = reach.host_port
    return [
        "srun", f"--jobid={reach.job_id}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={reach.node}", "--quiet",
        "--unbuffered",  # without it slurmstepd passes the step's output on line by line
        python, "-m", "jobs.relay", host, str(port),
    ]  # fmt: skip


class ProcessStream:
    """A relay process seen as a socket."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def recv(self, n: int) -> bytes:
        return os.read(self.stdout.fileno(), n)

    def sendall(self, data: bytes) -> None:
        self.stdin.write(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def needs_relay(reach: Reach) -> bool:
    return reach.node_only and bool(reach.job_id) and reach.node != node_name()


def open_local(reach: Reach, python: str) -> Any:
    """From this machine: a plain socket where it reaches, else a relay through the node's job."""
    if needs_relay(reach):
        return ProcessStream(relay_argv(reach, python))
    return socket.create_connection(reach.host_port, timeout=10)


def open_over_ssh(transport: Any, reach: Reach, python: str) -> Any:
    """From the login node, over one SSH connection (paramiko transport)."""
    if reach.node_only and reach.job_id:
        channel = transport.open_session()
        channel.exec_command(shlex.join(relay_argv(reach, python)))
        return channel
    return transport.open_channel("direct-tcpip", reach.host_port, ("127.0.0.1", 0))
