"""The router's nginx engine (profile `router.engine: nginx`): nginx carries the requests, the
Python router (jobs/router.py) decides where they go.

nginx listens on the router's address and balances over the replicas the Python side finds up
(`least_conn`: the fewest requests in flight). Whenever that set changes, the config is rewritten
and nginx reloaded (SIGHUP: new workers take new requests, old ones finish theirs). The Python
router listens on a loopback port as nginx's `backup` server: a request every replica refused
(nothing was sent: `proxy_next_upstream error`), or that arrives while no replica is up, goes to
it, and it holds the request until a serve job answers, as it does on its own. Control routes are
refused by nginx itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from jobs.proxy import REFUSED

CONF = """\
# written by glm5_hpc's router job; rewritten whenever the replicas it routes to change
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_max_body_size 64m;
    upstream replicas {{
        least_conn;
{servers}        keepalive 64;
    }}
    server {{
        listen {listen};
        location ~ ^({refused})(/|$) {{
            default_type application/json;
            return 403 '{{"error": "$uri is refused by the glm5_hpc router"}}';
        }}
        location ^~ /glm5_hpc/ {{ proxy_pass http://127.0.0.1:{hold_port}; }}  # the route and the metrics
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
            proxy_next_upstream error;
        }}
    }}
}}
"""


def nginx_conf(urls: list[str], listen: str, hold_port: int, workdir: Path, workers: int) -> str:
    """The config for these replica URLs (http://host:port), the holding router as backup. Pure."""
    hold = f"127.0.0.1:{hold_port}"
    servers = [f"        server {u.removeprefix('http://').rstrip('/')} max_fails=0;\n" for u in urls]
    servers.append(f"        server {hold}{' backup' if urls else ''};\n")  # the only server while no replica is up
    refused = "|".join(REFUSED)
    return CONF.format(workers=workers, workdir=workdir, servers="".join(servers), listen=listen, hold_port=hold_port,
                       refused=refused)  # fmt: skip


class NginxFront:
    def __init__(self, binary: str, workdir: Path, host: str, port: int, hold_port: int, workers: int) -> None:
        self.binary, self.workdir, self.hold_port, self.workers = binary, workdir, hold_port, workers
        self.listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.conf = workdir / "nginx.conf"
        self.urls: list[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.update([])
        try:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf), "-g", "daemon off;"])
        except FileNotFoundError:
            raise SystemExit(f"glm5_hpc: router.engine nginx: no {self.binary!r} on this node; set router.nginx "
                             "to its path, or router.engine: python") from None  # fmt: skip
        host, _, port = self.listen.rpartition(":")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((host.strip("[]").replace("0.0.0.0", "127.0.0.1"), int(port)), 1).close()  # noqa: S104
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"glm5_hpc: nginx did not start on {self.listen}: {self._error_log()}") from None
                time.sleep(0.1)

    def update(self, urls: list[str]) -> None:
        """Route to these replicas (rewrite and reload only when they changed)."""
        if urls == self.urls:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(nginx_conf(urls, self.listen, self.hold_port, self.workdir, self.workers))
        tmp.replace(self.conf)
        self.urls = urls
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGHUP)
            print(f"glm5_hpc: nginx now routes to {', '.join(urls) or 'the holding router only'}", flush=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: requests in flight finish
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _error_log(self) -> str:
        log = self.workdir / "error.log"
        return log.read_text()[-500:] if log.exists() else "no error log"
