# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""etcd_kv: Calico's key layout, the CAS transactions, packing and failure, against a real etcd."""

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv


def test_keys_are_calicos():
    assert kv.block_key("10.233.64.0/26") == "/calico/ipam/v2/assignment/ipv4/block/10.233.64.0-26"
    assert kv.affinity_key("node-a", "10.233.64.0/26") == "/calico/ipam/v2/host/node-a/ipv4/block/10.233.64.0-26"
    assert kv.handle_key("ipip-tunnel-addr-node-a") == "/calico/ipam/v2/handle/ipip-tunnel-addr-node-a"
    assert kv.config_key() == "/calico/ipam/v2/config"
    assert kv.pool_key("p") == "/calico/resources/v3/projectcalico.org/ippools/p"
    assert kv.block_key("10.0.0.0/26", "/site-a") == "/site-a/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26"


@pytest.mark.parametrize(
    "key,parsed",
    [
        ("/calico/ipam/v2/assignment/ipv4/block/10.233.64.0-26", ("block", "10.233.64.0/26")),
        ("/calico/ipam/v2/host/n1/ipv4/block/10.233.64.0-26", ("affinity", ("n1", "10.233.64.0/26"))),
        ("/calico/ipam/v2/handle/l3-workload.default.web-1", ("handle", "l3-workload.default.web-1")),
        ("/calico/ipam/v2/config", ("config", None)),
        ("/calico/ipam/v2/assignment/ipv6/block/fd00::-122", ("block", "fd00::/122")),  # Calico's IPv6 block
        ("/calico/ipam/v2/host/n1/ipv6/block/fd00::-122", ("affinity", ("n1", "fd00::/122"))),
        ("/calico/ipam/v2/assignment/ipv6/block/10.0.0.0-26", None),  # an IPv4 cidr under ipv6: not Calico's
        ("/calico/ipam/v2/host/n1/ipv4/block/fd00::-122", None),
        ("/calico/ipam/v2/host/n1", None),  # IPAMHost marker
        ("/calico/ipam/v2/host/lb/virtual/block/10.0.0.0-26", None),
        ("/calico/resources/v3/projectcalico.org/ippools/p", ("pool", "p")),
        ("/calico/resources/v3/projectcalico.org/nodes/p", None),
    ],
)
def test_parse_key(key, parsed):
    assert kv.parse_key(key) == parsed
    assert kv.parse_key("/p" + key, "/p") == parsed


@pytest.mark.parametrize(
    "settings,field",
    [
        (dict(endpoints=[]), "etcd_endpoints"),
        (dict(endpoints=["ftp://x:1"]), "etcd_endpoints"),
        (dict(endpoints=["http://x:notaport"]), "etcd_endpoints"),
        (dict(endpoints=["x:2379"], client_cert="/c"), "etcd_cert and etcd_key"),
        (dict(endpoints=["x:2379"], prefix="site/"), "etcd_prefix"),
    ],
)
def test_bad_settings_are_named(settings, field):
    with pytest.raises(kv.EtcdError, match=field):
        kv.EtcdSettings(**settings).validate()


def _value(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _handle(counts):
    return _value({"block": counts, "deleted": False})


def test_units_keep_a_block_with_its_handles_and_affinity():
    b1, b2 = "10.0.0.0/26", "10.0.0.64/26"
    new = {
        kv.block_key(b1): b"{}",
        kv.affinity_key("n1", b1): b"{}",
        kv.handle_key("h1"): _handle({b1: 1}),
        kv.handle_key("h2"): _handle({b2: 1}),
        kv.block_key(b2): b"{}",
        kv.config_key(): b"{}",
    }
    changes = kv.diff({}, new)
    groups = kv.units(changes, {})
    assert groups[0] == [kv.config_key()]
    assert [kv.block_key(b1), kv.handle_key("h1"), kv.affinity_key("n1", b1)] in groups
    assert [kv.block_key(b2), kv.handle_key("h2")] in groups
    # a handle moving from b1 to b2 ties both blocks into one unit
    old = {k: (v, 7) for k, v in new.items()}
    moved = dict(new, **{kv.handle_key("h1"): _handle({b2: 1}), kv.block_key(b1): b"{1}", kv.block_key(b2): b"{2}"})
    assert kv.units(kv.diff(old, moved), old) == [[kv.block_key(b1), kv.block_key(b2), kv.handle_key("h1")]]


def test_packing_respects_max_ops_and_never_splits_a_unit():
    new = {}
    for i in range(10):
        cidr = f"10.0.{i}.0/26"
        new[kv.block_key(cidr)] = b"{}"
        for j in range(20):
            new[kv.handle_key(f"h{i}-{j}")] = _handle({cidr: 1})
    txns, split = kv.plan_txns(kv.diff({}, new), {}, max_ops=64)
    assert split == 0
    assert all(len(t.ops) <= 64 for t in txns)
    assert [len(t.ops) for t in txns] == [63, 63, 63, 21]  # 3 whole units of 21 per txn
    for t in txns:
        blocks = {k for k in t.keys if "/block/" in k}
        for k in t.keys:
            if "/handle/" in k:
                assert kv.block_key(next(iter(json.loads(new[k])["block"]))) in blocks


@pytest.mark.etcd
def test_cas_create_update_delete(etcd):
    store = kv.EtcdKV(kv.EtcdSettings(endpoints=[etcd]))
    key = kv.handle_key("h")
    assert store.read_prefix(kv.ROOT).kvs == {}
    create = kv.plan_txns(kv.diff({}, {key: b"1"}), {})[0]
    assert store.txn(create[0].compares, create[0].ops)
    assert not store.txn(create[0].compares, create[0].ops)  # create only if absent
    snap = store.read_prefix(kv.ROOT)
    value, rev = snap.kvs[key]
    assert value == b"1"
    update = kv.plan_txns(kv.diff(snap.kvs, {key: b"2"}), snap.kvs)[0][0]
    assert store.txn(update.compares, update.ops)
    assert not store.txn(update.compares, update.ops)  # update only if unchanged
    snap2 = store.read_prefix(kv.ROOT)
    delete = kv.plan_txns(kv.diff(snap.kvs, {}), snap.kvs)[0][0]
    assert not store.txn(delete.compares, delete.ops)  # stale delete refused
    delete = kv.plan_txns(kv.diff(snap2.kvs, {}), snap2.kvs)[0][0]
    assert store.txn(delete.compares, delete.ops)
    assert store.read_prefix(kv.ROOT).kvs == {}


@pytest.mark.etcd
def test_paged_read_is_one_revision(etcd):
    store = kv.EtcdKV(kv.EtcdSettings(endpoints=[etcd]))
    store.PAGE = 7
    new = {kv.handle_key(f"h{i:03d}"): b"x" for i in range(50)}
    for txn in kv.plan_txns(kv.diff({}, new), {}, max_ops=16)[0]:
        assert store.txn(txn.compares, txn.ops)
    snap = store.read_prefix(kv.ROOT)
    assert set(snap.kvs) == set(new)


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_is_a_clear_error():
    dead = _dead_endpoint()
    store = kv.EtcdKV(kv.EtcdSettings(endpoints=[dead], timeout=1))
    with pytest.raises(kv.EtcdUnavailableError, match=f"etcd unreachable: {dead}"):
        store.read_prefix(kv.ROOT)


@pytest.mark.etcd
def test_failover_to_the_next_endpoint(etcd):
    store = kv.EtcdKV(kv.EtcdSettings(endpoints=[_dead_endpoint(), etcd], timeout=1))
    assert store.read_prefix(kv.ROOT).revision >= 1
    assert store._current == 1
