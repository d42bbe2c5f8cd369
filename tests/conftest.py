# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Shared fixtures: a private etcd (tests marked ``etcd`` start their own)."""

from __future__ import annotations

import os

import pytest

from tests.support.etcd_server import EtcdServer, missing_reason


@pytest.fixture(scope="session")
def etcd_server():
    """One private etcd for the session, on 127.0.0.1 with free ports, stopped by PID after."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    server = EtcdServer(name=f"l3tetcd-{os.getpid()}")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd(etcd_server):
    """The session's etcd, emptied before the test: its client endpoint URL."""
    import etcd3gw  # pinned in requirements.txt

    host, port = etcd_server.endpoint.rsplit("//", 1)[1].split(":")
    client = etcd3gw.Etcd3Client(host=host, port=int(port), timeout=10)
    # key "\0" with range_end "\0" is every key
    client.post(client.get_url("/kv/deleterange"), json={"key": "AA==", "range_end": "AA=="})
    return etcd_server.endpoint
