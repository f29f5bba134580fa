"""`glm5_hpc tunnel NAME`: a local port that reaches the deployment's endpoint (the router's, when
it has one), directly, through the login node's SSH connection (remote profiles), or, when the
endpoint answers on its node only, through a step of the job on that node (adapters/node_relay).
Each new connection goes to the endpoint status reports at that moment, and the endpoint is
re-read every few seconds, so the tunnel follows a redeploy to another node or port."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from glm5_hpc.adapters.node_relay import open_local, open_over_ssh
from glm5_hpc.adapters.shell import SSHShell
from glm5_hpc.domain.profile import Profile
from glm5_hpc.domain.reach import Reach, reach_of
from glm5_hpc.errors import Glm5Error

REFRESH_S = 3.0


def _pump(src: Any, dst: Any) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()


def describe(reach: Reach | None) -> str:
    if reach is None:
        return "gone (the deployment is not serving)"
    via = f" (through job {reach.job_id} on node {reach.node}, where it answers)" if reach.node_only else ""
    return reach.url + via


class Tunnel:
    def __init__(self, local_port: int, endpoint: Callable[[], Reach | None], open_upstream: Callable[[Reach], Any],
                 report: Callable[[str], None]) -> None:  # fmt: skip
        self.endpoint_of = endpoint
        self.open_upstream = open_upstream
        self.report = report
        self.listener = socket.create_server(("127.0.0.1", local_port))
        self.local_port = self.listener.getsockname()[1]
        self.current: Reach | None = None
        self.stop = threading.Event()

    def refresh(self) -> None:
        try:
            new = self.endpoint_of()
        except Glm5Error as exc:
            self.report(f"tunnel: cannot read the endpoint: {exc}")
            return
        if new != self.current:
            self.report(f"tunnel: endpoint {'is now ' if new else ''}{describe(new)}")
            self.current = new

    def _refresher(self) -> None:
        while not self.stop.wait(REFRESH_S):
            self.refresh()

    def serve(self, refresh: bool = True) -> None:
        """Accept connections until stopped (`refresh`: follow the deployment's endpoint)."""
        if refresh:
            self.refresh()
            threading.Thread(target=self._refresher, daemon=True).start()
            self.report(f"tunnel: http://127.0.0.1:{self.local_port} -> {describe(self.current)}; Ctrl-C to stop")
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                if self.stop.is_set():
                    return
                raise
            target = self.current
            if target is None or self.stop.is_set():
                client.close()
                continue
            try:
                upstream = self.open_upstream(target)
            except Exception as exc:  # an SSH channel refusal or a socket error: report, keep serving
                self.report(f"tunnel: cannot reach {target.url}: {exc}")
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.local_port), timeout=1).close()  # wake accept()
        self.listener.close()


def endpoint_reader(name: str, profile: Profile | None, shell: SSHShell | None) -> Callable[[], Reach | None]:
    """How to ask for the deployment's current endpoint (the router's, when it has one): the
    remote copy's status, or the local one."""
    if shell is not None and profile is not None and profile.ssh is not None:
        from glm5_hpc.adapters.login_node import ON_LOGIN_NODE

        tool = f"{profile.ssh.remote_venv}/bin/glm5_hpc"

        def remote() -> Reach | None:
            r = shell.run(["env", f"{ON_LOGIN_NODE}=1", tool, "status", name, "--json"], timeout_s=60)
            if r.rc != 0:
                raise Glm5Error(r.stderr.strip()[-300:])
            return reach_of(json.loads(r.stdout)["deployments"][0])

        return remote

    def local() -> Reach | None:
        from glm5_hpc.app.status import status

        return reach_of(status([name])[0].to_json())

    return local


def upstream_opener(profile: Profile | None, shell: SSHShell | None) -> Callable[[Reach], Any]:
    if shell is None or profile is None or profile.ssh is None:
        return lambda reach: open_local(reach, sys.executable)
    transport = shell.transport()
    python = f"{profile.ssh.remote_venv}/bin/python"
    return lambda reach: open_over_ssh(transport, reach, python)
