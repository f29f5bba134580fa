"""Run commands where the cluster is: on this machine, or on a login node over SSH (fabric).

One protocol, two implementations. Commands are argv lists, quoted once, at the SSH boundary.
SSH checks host keys strictly by default: fabric's own default trusts any host key
(paramiko AutoAddPolicy, no known_hosts loaded), which this adapter replaces with the user's
known_hosts and RejectPolicy. One connection serves a whole command invocation.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from glm5_hpc.errors import Glm5Error

if TYPE_CHECKING:
    import paramiko

    from glm5_hpc.domain.profile import Ssh


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


class Shell(Protocol):
    where: str

    def run(self, argv: list[str], stream: bool = False, timeout_s: float | None = None) -> Result: ...

    def put(self, data: bytes, remote_path: str, mode: int = 0o600) -> None: ...

    def close(self) -> None: ...


class LocalShell:
    where = "this machine"

    def run(self, argv: list[str], stream: bool = False, timeout_s: float | None = None) -> Result:
        try:
            if stream:
                rc = subprocess.run(argv, timeout=timeout_s, check=False).returncode
                return Result(rc, "", "")
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(124, "", f"{argv[0]}: timed out after {timeout_s:g}s")
        return Result(out.returncode, out.stdout, out.stderr)

    def put(self, data: bytes, remote_path: str, mode: int = 0o600) -> None:
        from glm5_hpc.adapters.files import write_atomic

        path = Path(remote_path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, data, mode)

    def close(self) -> None:
        pass


class HostKeyError(Glm5Error):
    pass


def fingerprint(key: paramiko.PKey) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class SSHShell:
    """A login node over SSH. `open()` happens on the first command; errors name host and fix."""

    def __init__(self, ssh: Ssh) -> None:
        self.ssh = ssh
        self.where = f"{ssh.user + '@' if ssh.user else ''}{ssh.host}:{ssh.port}"
        self._conn: Any = None

    def _known_hosts(self) -> Path:
        return Path(self.ssh.known_hosts).expanduser()

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        import paramiko
        from fabric import Connection  # deferred: heavy, and only remote profiles need it

        s = self.ssh
        kwargs: dict[str, Any] = {"look_for_keys": s.identity_file is None, "allow_agent": s.identity_file is None}
        if s.identity_file:
            kwargs["key_filename"] = [str(Path(s.identity_file).expanduser())]
        gateway = None
        if s.jump_host:
            user_host, _, port = s.jump_host.rpartition(":") if s.jump_host.count(":") == 1 else (s.jump_host, "", "")
            jump_user, _, jump_name = (user_host or s.jump_host).rpartition("@")
            gateway = self._strict(Connection(jump_name, user=jump_user or s.user, port=int(port or 22), connect_kwargs=kwargs))
        conn = self._strict(Connection(s.host, user=s.user, port=s.port, connect_kwargs=kwargs, gateway=gateway,
                                       connect_timeout=s.connect_timeout_s))  # fmt: skip
        try:
            conn.open()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"host key of {self.where} CHANGED: it presents {exc.key.get_name()} {fingerprint(exc.key)}, but "
                f"{self._known_hosts()} has {fingerprint(exc.expected_key)}. This can be an attack. If the login node "
                f"was really re-keyed, remove the old entry (ssh-keygen -R '[{s.host}]:{s.port}' -f {self._known_hosts()}) "
                "and trust the new one"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(self._unknown_host_message()) from None
            raise Glm5Error(f"SSH to {self.where} failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise Glm5Error(f"cannot reach {self.where}: {exc}; check ssh.host and ssh.port in the profile") from None
        self._conn = conn
        return conn

    def _strict(self, conn: Any) -> Any:
        import paramiko

        client = conn.client
        client.load_system_host_keys()
        if self._known_hosts().exists():
            client.load_host_keys(str(self._known_hosts()))
        client.set_missing_host_key_policy(paramiko.RejectPolicy() if self.ssh.strict_host_keys else paramiko.AutoAddPolicy())
        return conn

    def _unknown_host_message(self) -> str:
        import paramiko

        s = self.ssh
        try:
            with socket.create_connection((s.host, s.port), timeout=s.connect_timeout_s) as sock:
                transport = paramiko.Transport(sock)
                transport.start_client(timeout=s.connect_timeout_s)
                key = transport.get_remote_server_key()
                transport.close()
            offered = f"it offers {key.get_name()} {fingerprint(key)}"
        except (OSError, paramiko.SSHException):
            offered = "its key could not be read"
        target = s.host if s.port == 22 else f"[{s.host}]:{s.port}"
        return (
            f"host key of {self.where} is not in {self._known_hosts()} ({offered}). Compare the fingerprint with "
            f"the one your cluster's admins publish, then trust it: ssh-keyscan -p {s.port} {s.host} >> "
            f"{self._known_hosts()} (entry {target}). To skip checking, set ssh.strict_host_keys: false (not advised)"
        )

    def run(self, argv: list[str], stream: bool = False, timeout_s: float | None = None) -> Result:
        conn = self._connection()
        command = shlex.join(argv)
        if stream:
            r = conn.run(command, hide=True, warn=True, pty=False, out_stream=sys.stdout, err_stream=sys.stderr,
                         timeout=timeout_s)  # fmt: skip
        else:
            # output captured: the command reads no stdin (never this process's, which may be a notebook's)
            r = conn.run(command, hide=True, warn=True, pty=False, timeout=timeout_s, in_stream=False)
        return Result(r.exited, r.stdout if not stream else "", r.stderr if not stream else "")

    def put(self, data: bytes, remote_path: str, mode: int = 0o600) -> None:
        import io

        conn = self._connection()
        directory = remote_path.rpartition("/")[0]
        if directory:
            conn.run(shlex.join(["mkdir", "-p", "-m", "700", directory]), hide=True, in_stream=False)
        tmp = f"{remote_path}.tmp"
        sftp = conn.sftp()
        sftp.putfo(io.BytesIO(data), tmp)
        sftp.chmod(tmp, mode)
        sftp.posix_rename(tmp, remote_path)

    def transport(self) -> paramiko.Transport:
        return self._connection().client.get_transport()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def shell_for(ssh: Ssh | None) -> LocalShell | SSHShell:
    return SSHShell(ssh) if ssh is not None else LocalShell()
