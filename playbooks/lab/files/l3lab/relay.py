# SPDX-License-Identifier: MIT
"""The SSH ProxyCommand run in the router namespace: stdin/stdout <-> TCP HOST:PORT; relays stopped by PID."""

from __future__ import annotations

import os
import selectors
import socket

from . import common
from .common import kill_pid, read_pid


def relay(host: str, port: int) -> int:
    rdir = common.LAB / "relays"
    rdir.mkdir(parents=True, exist_ok=True)
    pidfile = rdir / str(os.getpid())
    pidfile.write_text(f"{os.getpid()}\n")
    try:
        sock = socket.create_connection((host, port), timeout=10)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel = selectors.DefaultSelector()
        sel.register(0, selectors.EVENT_READ, "in")
        sel.register(sock, selectors.EVENT_READ, "sock")
        open_ends = 2
        while open_ends:
            for key, _events in sel.select():
                if key.data == "in":
                    data = os.read(0, 65536)
                    if data:
                        sock.sendall(data)
                    else:
                        sel.unregister(0)
                        sock.shutdown(socket.SHUT_WR)
                        open_ends -= 1
                else:
                    data = sock.recv(65536)
                    if data:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(1, view) :]
                    else:
                        sel.unregister(sock)
                        open_ends = 0
        return 0
    finally:
        pidfile.unlink(missing_ok=True)


def stop_relays(address: str | None = None) -> bool:
    """Stop this script's relays (all, or those to one address), by PID: an SSH master whose
    relay goes ends at once instead of waiting on a connection to a guest that is gone."""
    stopped = False
    for pidfile in sorted(common.LAB.glob("relays/*")):
        pid = read_pid(pidfile)
        # Ours: a relay of this lab (its PID file; a recycled PID would not match the command line).
        marker = "\0relay\0" + (f"{address}\0" if address else "")
        if pid is not None and kill_pid(pid, marker, timeout=1.0):
            stopped = True
    return stopped
