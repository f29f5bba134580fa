"""Relay one TCP connection over this process's standard input and output (stdlib only).

`glm5_hpc probe` and `glm5_hpc tunnel` run it on a serve (or router) node as a step of that job
(`srun --jobid=J --overlap`) when the endpoint answers on that node only: a loopback bind or a
container bridge IP. Slurm authenticates the step and carries the bytes; nothing else listens.

    python -m jobs.relay HOST PORT
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import tty


def _upstream(sock: socket.socket) -> None:
    try:
        while data := os.read(0, 65536):
            sock.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m jobs.relay HOST PORT", file=sys.stderr)
        return 2
    try:
        sock = socket.create_connection((argv[0], int(argv[1])), timeout=10)
    except OSError as exc:
        print(f"glm5_hpc relay: cannot connect to {argv[0]}:{argv[1]}: {exc}", file=sys.stderr)
        return 1
    sock.settimeout(None)
    if os.isatty(1):  # srun --unbuffered gives the step a pseudo-terminal: make it carry bytes as they are
        tty.setraw(1)
    threading.Thread(target=_upstream, args=(sock,), daemon=True).start()
    try:
        while data := sock.recv(65536):
            os.write(1, data)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
