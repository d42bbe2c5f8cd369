# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A private etcd for tests and benchmarks: Debian's etcd-server on 127.0.0.1.

Free ports, a temporary data directory, wait for /health, stop by PID. Nothing
outside the data directory is touched; the process is ours and only ours.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ETCD_BIN = os.environ.get("L3_ETCD_BIN", "/usr/bin/etcd")


def missing_reason() -> str | None:
    """Why a private etcd cannot be started here, or None."""
    if not (os.path.isfile(ETCD_BIN) and os.access(ETCD_BIN, os.X_OK)):
        return f"{ETCD_BIN} is missing: install Debian's etcd-server (bindep.txt)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdServer:
    """One etcd member listening on 127.0.0.1:<free port>."""

    def __init__(self, name: str = "l3tetcd", max_txn_ops: int = 128, tls: dict | None = None) -> None:
        """``tls``: ``{"ca", "cert", "key", "client_cert", "client_key"}`` PEM paths: https with
        client-certificate authentication (the client pair is used for the health check)."""
        self.name = name
        self.max_txn_ops = max_txn_ops
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.data_dir = ""
        self.port = 0
        self.log_path = ""

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EtcdServer:
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.data_dir = tempfile.mkdtemp(prefix=f"{self.name}-")
            self.port, peer = _free_port(), _free_port()
            self.log_path = os.path.join(self.data_dir, "etcd.log")
            cmd = [
                ETCD_BIN,
                "--name",
                self.name,
                "--data-dir",
                os.path.join(self.data_dir, "data"),
                "--listen-client-urls",
                self.endpoint,
                "--advertise-client-urls",
                self.endpoint,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"{self.name}=http://127.0.0.1:{peer}",
                "--max-txn-ops",
                str(self.max_txn_ops),
                "--log-level",
                "warn",
                "--logger",
                "zap",
            ]
            if self.tls:
                cmd += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"], "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_healthy(timeout):
                return self
            self.stop()
        raise RuntimeError(f"etcd did not become healthy; last log: {self.log_tail()}")

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            context = None
            if self.tls:
                import ssl

                context = ssl.create_default_context(cafile=self.tls["ca"])
                context.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1, context=context) as resp:
                    if json.load(resp).get("health") == "true":
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        return False

    def log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop our etcd by its PID (SIGTERM, then SIGKILL), remove its data directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = ""

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
