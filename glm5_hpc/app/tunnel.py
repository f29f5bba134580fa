"""`glm5_hpc tunnel NAME`: a local port that reaches the deployment's endpoint, through the login
node's SSH connection (remote profiles) or directly. Each new connection goes to the endpoint
status reports at that moment, and the endpoint is re-read every few seconds, so the tunnel
follows a redeploy to another node or port."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from glm5_hpc.adapters.shell import SSHShell
from glm5_hpc.domain.profile import Profile
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


class Tunnel:
    def __init__(self, local_port: int, endpoint: Callable[[], str | None], open_upstream: Callable[[str, int], Any],
                 report: Callable[[str], None]) -> None:  # fmt: skip
        self.endpoint_of = endpoint
        self.open_upstream = open_upstream
        self.report = report
        self.listener = socket.create_server(("127.0.0.1", local_port))
        self.local_port = self.listener.getsockname()[1]
        self.current: str | None = None
        self.stop = threading.Event()

    def refresh(self) -> None:
        try:
            new = self.endpoint_of()
        except Glm5Error as exc:
            self.report(f"tunnel: cannot read the endpoint: {exc}")
            return
        if new != self.current:
            self.report(f"tunnel: endpoint {'is now ' + new if new else 'gone (the deployment is not serving)'}")
            self.current = new

    def _refresher(self) -> None:
        while not self.stop.wait(REFRESH_S):
            self.refresh()

    def serve(self) -> None:
        self.refresh()
        threading.Thread(target=self._refresher, daemon=True).start()
        self.report(f"tunnel: http://127.0.0.1:{self.local_port} -> {self.current or '(no endpoint yet)'}; Ctrl-C to stop")
        while not self.stop.is_set():
            client, _ = self.listener.accept()
            target = self.current
            if target is None:
                client.close()
                continue
            parts = urlsplit(target)
            try:
                upstream = self.open_upstream(parts.hostname or "", parts.port or 80)
            except Exception as exc:  # an SSH channel refusal or a socket error: report, keep serving
                self.report(f"tunnel: cannot reach {target}: {exc}")
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def endpoint_reader(name: str, profile: Profile | None, shell: SSHShell | None) -> Callable[[], str | None]:
    """How to ask for the deployment's current endpoint (the router's, when it has one): the
    remote copy's status, or the local one."""
    if shell is not None and profile is not None and profile.ssh is not None:
        from glm5_hpc.app.remote import ON_LOGIN_NODE

        tool = f"{profile.ssh.remote_venv}/bin/glm5_hpc"

        def remote() -> str | None:
            r = shell.run(["env", f"{ON_LOGIN_NODE}=1", tool, "status", name, "--json"], timeout_s=60)
            if r.rc != 0:
                raise Glm5Error(r.stderr.strip()[-300:])
            dep = json.loads(r.stdout)["deployments"][0]
            endpoint: str | None = dep.get("stable_endpoint") or dep["endpoint"]
            return endpoint

        return remote

    def local() -> str | None:
        from glm5_hpc.app.status import status

        st = status([name])[0]
        return st.stable_endpoint or st.endpoint

    return local


def upstream_opener(shell: SSHShell | None) -> Callable[[str, int], Any]:
    if shell is None:
        return lambda host, port: socket.create_connection((host, port), timeout=10)
    transport = shell.transport()
    return lambda host, port: transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0))
