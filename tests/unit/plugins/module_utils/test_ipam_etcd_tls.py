# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The etcd datastore over TLS with client-certificate authentication (a private etcd, own CA)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import (
    EtcdSettings,
    EtcdStore,
    EtcdUnavailableError,
)
from tests.support.etcd_server import EtcdServer, missing_reason
from tests.support.ipam_worker import allocate, audit

pytestmark = pytest.mark.etcd


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    if missing_reason():
        pytest.skip(missing_reason())
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing: needed to make the test CA")
    d = tmp_path_factory.mktemp("l3tetcd-tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=l3tetcd-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    # etcd's grpc-gateway dials etcd's own gRPC server with the server certificate, so with
    # --client-cert-auth that certificate must allow client auth too (as etcd's docs say).
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"), ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=l3tetcd-{name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    tls = {
        "ca": str(d / "ca.pem"),
        "cert": str(d / "server.pem"),
        "key": str(d / "server.key"),
        "client_cert": str(d / "client.pem"),
        "client_key": str(d / "client.key"),
    }
    server = EtcdServer(name="l3tetcd-tls", tls=tls).start()
    yield server, tls
    server.stop()


def test_tls_with_client_certificate(tls_etcd):
    server, tls = tls_etcd
    store = EtcdStore(EtcdSettings(endpoints=[server.endpoint], ca_cert=tls["ca"], client_cert=tls["client_cert"], client_key=tls["client_key"]))
    store.transact(lambda s: allocate(s, "n1", ["l3-workload.default.a"]), write=True)
    state = store.load()
    assert audit(state) == [] and list(state.handles) == ["l3-workload.default.a"]
    # a bare host:port becomes https when a CA is given
    bare = EtcdStore(EtcdSettings(endpoints=[server.endpoint.split("//")[1]], ca_cert=tls["ca"], client_cert=tls["client_cert"], client_key=tls["client_key"]))
    assert bare.load().handles.keys() == state.handles.keys()


def test_tls_without_client_certificate_is_refused_clearly(tls_etcd):
    server, tls = tls_etcd
    store = EtcdStore(EtcdSettings(endpoints=[server.endpoint], ca_cert=tls["ca"], timeout=2))
    with pytest.raises(EtcdUnavailableError, match="etcd unreachable: https://127.0.0.1:[0-9]+: .*nothing was written"):
        store.transact(lambda s: allocate(s, "n1", ["l3-workload.default.b"]), write=True)
