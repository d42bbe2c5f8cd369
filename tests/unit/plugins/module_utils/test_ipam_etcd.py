# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""ipam_etcd: the etcd datastore against a real etcd — Calico's keys and values, CAS, failure."""

from __future__ import annotations

import ipaddress
import json
import socket
import time

import pytest

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import (
    EtcdConflictError,
    EtcdSettings,
    EtcdStore,
    EtcdUnavailableError,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import StateError
from tests.support.ipam_worker import allocate, audit, release


def _store(endpoint, **options) -> EtcdStore:
    return EtcdStore(EtcdSettings(endpoints=[endpoint], **options))


def _raw(endpoint, prefix="/") -> dict[str, bytes]:
    snap = kv.EtcdKV(EtcdSettings(endpoints=[endpoint])).read_prefix(prefix)
    return {k: v for k, (v, _rev) in snap.kvs.items()}


def _handles(n, node="n1"):
    return [f"l3-workload.default.{node}-{i}" for i in range(n)]


@pytest.mark.etcd
def test_keys_and_values_are_calicos_field_by_field(etcd):
    store = _store(etcd)
    store.transact(lambda s: allocate(s, "node-a", _handles(2, "a")), write=True)
    raw = _raw(etcd)
    block_cidr = "10.44.13.192/26"  # FNV-32("node-a") % 64 = 55: the 56th block of 10.44.0.0/20
    assert set(raw) == {
        f"/calico/ipam/v2/assignment/ipv4/block/{block_cidr.replace('/', '-')}",
        f"/calico/ipam/v2/host/node-a/ipv4/block/{block_cidr.replace('/', '-')}",
        "/calico/ipam/v2/handle/l3-workload.default.a-0",
        "/calico/ipam/v2/handle/l3-workload.default.a-1",
    }
    block = json.loads(raw[kv.block_key(block_cidr)])
    # AllocationBlock (libcalico-go model/block.go): these fields, these JSON names and types
    assert list(block) == ["cidr", "affinity", "allocations", "unallocated", "attributes", "sequenceNumber", "deleted"]
    assert block["cidr"] == block_cidr and block["affinity"] == "host:node-a"
    assert block["allocations"] == [0, 1] + [None] * 62
    assert block["unallocated"] == list(range(2, 64))
    assert block["attributes"] == [
        {"handle_id": "l3-workload.default.a-0", "secondary": {"node": "node-a", "namespace": "default", "workload": "l3-workload.default.a-0"}},
        {"handle_id": "l3-workload.default.a-1", "secondary": {"node": "node-a", "namespace": "default", "workload": "l3-workload.default.a-1"}},
    ]
    assert isinstance(block["sequenceNumber"], int) and block["deleted"] is False
    # BlockAffinity and IPAMHandle values (reference §2), compact as Go's encoding/json writes them
    assert raw[kv.affinity_key("node-a", block_cidr)] == b'{"state":"confirmed","deleted":false}'
    assert raw[kv.handle_key("l3-workload.default.a-0")] == (b'{"block":{"%s":1},"deleted":false}' % block_cidr.encode())

    # the IPAMConfig singleton
    def set_config(state):
        state.config.max_blocks_per_host = 4
        state.touch_config()

    store.transact(set_config, write=True)
    assert json.loads(_raw(etcd)[kv.config_key()]) == {"strict_affinity": False, "auto_allocate_blocks": True, "maxBlocksPerHost": 4}


@pytest.mark.etcd
def test_pools_are_v3_resources(etcd):
    store = _store(etcd)
    spec = {"cidr": "10.44.0.0/20", "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Always", "natOutgoing": True, "nodeSelector": "all()"}

    def add_pool(state):
        state.pools["p1"] = spec
        state.touch_pool("p1")

    store.transact(add_pool, write=True)
    value = json.loads(_raw(etcd)["/calico/resources/v3/projectcalico.org/ippools/p1"])
    assert value == {"kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "p1"}, "spec": spec}
    assert store.load().pools == {"p1": spec}


@pytest.mark.etcd
def test_reload_is_lossless_and_a_noop_writes_nothing(etcd):
    store = _store(etcd)
    store.transact(lambda s: allocate(s, "n1", _handles(70)), write=True)  # two blocks
    before = kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/")
    state = store.load()
    assert audit(state) == []
    assert sum(b.in_use() for b in state.blocks.values()) == 70
    store.transact(lambda s: allocate(s, "n1", _handles(70)), write=True)  # all already there
    assert store.txns == 0
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs == before.kvs


@pytest.mark.etcd
def test_check_mode_writes_nothing(etcd):
    store = _store(etcd)
    given = store.transact(lambda s: allocate(s, "n1", _handles(3)), write=False)
    assert len(given) == 3
    assert _raw(etcd) == {}


@pytest.mark.etcd
def test_release_deletes_handles_and_keeps_fifo(etcd):
    store = _store(etcd)
    store.transact(lambda s: allocate(s, "n1", _handles(3)), write=True)
    store.transact(lambda s: release(s, _handles(1)), write=True)
    state = store.load()
    assert audit(state) == []
    assert set(state.handles) == set(_handles(3)[1:])
    assert len(state.blocks) == 1
    block = next(iter(state.blocks.values()))
    assert block.unallocated[-1] == 0  # released ordinal at the tail


@pytest.mark.etcd
def test_a_conflict_replans_on_fresh_state(etcd):
    """Another writer takes the block between our read and our write: we re-plan, no double."""
    store, other = _store(etcd), _store(etcd)
    calls = []

    def plan(state):
        if not calls:  # first attempt: a competitor commits first
            other.transact(lambda s: allocate(s, "n1", ["l3-workload.default.other"]), write=True)
        calls.append(1)
        return allocate(state, "n1", ["l3-workload.default.mine"])

    given = store.transact(plan, write=True)
    assert len(calls) == 2 and store.conflicts == 1
    state = store.load()
    assert audit(state) == []
    assert given == ["10.44.4.129"]  # .128 went to the competitor
    assert len(state.handles) == 2


@pytest.mark.etcd
def test_persistent_conflict_is_a_clear_error_and_writes_nothing(etcd):
    store, other = _store(etcd, retries=3), _store(etcd)
    n = [0]

    def plan(state):
        n[0] += 1
        other.transact(lambda s: allocate(s, "n1", [f"l3-workload.default.other-{n[0]}"]), write=True)
        return allocate(state, "n1", ["l3-workload.default.mine"])

    with pytest.raises(EtcdConflictError, match="still conflicted with other writers after 3 attempts; nothing was written"):
        store.transact(plan, write=True)
    state = store.load()
    assert "l3-workload.default.mine" not in state.handles
    assert len(state.handles) == 3 and audit(state) == []


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.etcd
def test_unreachable_is_a_clear_error(etcd):
    store = _store(_dead_endpoint(), timeout=1)
    with pytest.raises(EtcdUnavailableError, match="etcd unreachable: http://127.0.0.1:[0-9]+: "):
        store.transact(lambda s: allocate(s, "n1", _handles(1)), write=True)
    assert _raw(etcd) == {}


@pytest.mark.etcd
def test_etcd_dying_before_the_write_leaves_nothing(etcd, monkeypatch):
    """The read succeeds, etcd disappears before the transaction: error, nothing written."""
    store = _store(etcd, timeout=1)
    real = store.kv.txn

    def down(compares, success):
        store.kv.settings.endpoints[:] = [_dead_endpoint()]
        store.kv._clients.clear()
        return real(compares, success)

    monkeypatch.setattr(store.kv, "txn", down)
    with pytest.raises(EtcdUnavailableError, match="nothing was written"):
        store.transact(lambda s: allocate(s, "n1", _handles(5)), write=True)
    assert _raw(etcd) == {}


@pytest.mark.etcd
def test_a_large_plan_commits_in_unit_transactions(etcd):
    store = _store(etcd, max_txn_ops=70)  # one /26 unit (block + 64 handles + affinity) per txn
    store.transact(lambda s: allocate(s, "n1", _handles(300)), write=True)
    assert store.txns == 5
    state = store.load()
    assert audit(state) == [] and len(state.handles) == 300


@pytest.mark.etcd
def test_prefix_keeps_sites_apart(etcd):
    a, b = _store(etcd, prefix="/site-a"), _store(etcd, prefix="/site-b")
    a.transact(lambda s: allocate(s, "n1", _handles(2)), write=True)
    b.transact(lambda s: allocate(s, "n1", _handles(5)), write=True)
    assert len(a.load().handles) == 2 and len(b.load().handles) == 5
    assert all(k.startswith(("/site-a/calico/ipam/v2/", "/site-b/calico/ipam/v2/")) for k in _raw(etcd))


@pytest.mark.etcd
def test_soft_deleted_values_are_ignored_and_foreign_keys_kept(etcd):
    client = kv.EtcdKV(EtcdSettings(endpoints=[etcd]))
    foreign = {
        kv.handle_key("gone"): b'{"block":{"10.44.0.0/26":1},"deleted":true}',
        "/calico/ipam/v2/virtual/lb-1/ipv4/block/10.9.0.0-26": b"{}",
        "/calico/ipam/v2/host/n1": b"{}",
    }
    (txn,), _split = kv.plan_txns(kv.diff({}, foreign), {})
    assert client.txn(txn.compares, txn.ops)
    store = _store(etcd)
    assert store.load().handles == {}
    store.transact(lambda s: allocate(s, "n1", ["gone"]), write=True)  # re-creates over the soft delete
    raw = _raw(etcd)
    assert json.loads(raw[kv.handle_key("gone")])["deleted"] is False
    assert raw["/calico/ipam/v2/virtual/lb-1/ipv4/block/10.9.0.0-26"] == b"{}"


@pytest.mark.etcd
def test_a_value_that_is_not_json_is_refused(etcd):
    client = kv.EtcdKV(EtcdSettings(endpoints=[etcd]))
    (txn,), _split = kv.plan_txns(kv.diff({}, {kv.handle_key("x"): b"{not json"}), {})
    assert client.txn(txn.compares, txn.ops)
    with pytest.raises(StateError, match="key /calico/ipam/v2/handle/x does not hold JSON"):
        _store(etcd).transact(lambda s: allocate(s, "n1", ["y"]), write=True)
    assert kv.handle_key("y") not in _raw(etcd)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"etcd_endpoints": []}, "etcd_endpoints: at least one endpoint"),
        ({"etcd_endpoints": ["ftp://10.0.0.1:2379"]}, "etcd_endpoints: 'ftp://10.0.0.1:2379' is not http"),
        ({"etcd_endpoints": ["10.0.0.1:2379"], "etcd_cert": "/c.pem"}, "etcd_cert and etcd_key: give both"),
        ({"etcd_endpoints": ["10.0.0.1:2379"], "etcd_prefix": "site-a"}, "etcd_prefix: 'site-a' must start with '/'"),
        ({"etcd_endpoints": ["10.0.0.1:2379"], "etcd_retries": -1}, "etcd_retries: -1 must be at least 1"),
    ],
)
def test_bad_module_parameters_are_named_before_any_connection(params, message):
    from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import EtcdError, store_from_params

    with pytest.raises(EtcdError, match=message):
        store_from_params(params, "etcd")


@pytest.mark.etcd
def test_a_multi_transaction_plan_holds_the_writer_lock(etcd):
    """While a plan too large for one transaction commits, other runs wait instead of conflicting
    with it: the large plan is never left half-written by a competitor."""
    import threading
    import time

    big = _store(etcd, max_txn_ops=70)  # 300 addresses = 5 unit transactions
    real = big.kv.txn

    def slow(compares, success):
        ok = real(compares, success)
        time.sleep(0.1)
        return ok

    big.kv.txn = slow
    finished = {}

    def run_big():
        big.transact(lambda s: allocate(s, "n1", _handles(300)), write=True)
        finished["big"] = time.monotonic()

    thread = threading.Thread(target=run_big)
    thread.start()
    lock_key = kv.WRITE_LOCK_KEY
    client = kv.EtcdKV(EtcdSettings(endpoints=[etcd]))
    deadline = time.monotonic() + 20
    while client.get(lock_key) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.get(lock_key) is not None, "the large plan never took the writer lock"
    small = _store(etcd)
    small.transact(lambda s: allocate(s, "n2", _handles(1, "n2")), write=True)
    finished["small"] = time.monotonic()
    thread.join(timeout=60)
    assert finished["big"] <= finished["small"]  # the small run waited its turn
    assert big.conflicts == 0 and small.conflicts == 0 and big.txns == 5
    assert client.get(lock_key) is None  # released
    state = small.load()
    assert audit(state) == [] and len(state.handles) == 301


@pytest.mark.etcd
def test_a_dead_lock_holder_is_outlived_by_its_lease(etcd):
    import time

    client = kv.EtcdKV(EtcdSettings(endpoints=[etcd]))
    lease = client.grant(2)  # a holder that died without releasing
    put = {"request_put": {"key": kv._b64(kv.WRITE_LOCK_KEY), "value": kv._b64("dead"), "lease": lease}}
    assert client.txn([kv.lock_free(kv.WRITE_LOCK_KEY)], [put])
    started = time.monotonic()
    store = _store(etcd)
    store.transact(lambda s: allocate(s, "n1", _handles(1)), write=True)
    assert 0.5 < time.monotonic() - started < 10 and store.conflicts == 0
    assert len(store.load().handles) == 1


def _slow_under_lock(store, seconds, also=None):
    """A plan of 300 addresses (5 unit transactions: the writer lock is taken) whose every call after the
    first (so every call under the lock) takes ``seconds``; ``also(store)`` runs then too."""
    calls = []

    def plan(state):
        calls.append(1)
        if len(calls) > 1:
            if also:
                also(store)
            time.sleep(seconds)
        return allocate(state, "n1", _handles(300))

    return plan


@pytest.mark.etcd
def test_a_plan_longer_than_the_lock_lease_still_commits(etcd):
    """The reload and plan under the writer lock take 3.5 s, the lease 2 s: the lease is kept alive while the
    lock is held (it used to expire before the first transaction, and the run never committed)."""
    store = _store(etcd, max_txn_ops=70, retries=3)
    store.LOCK_TTL = 2
    store.transact(_slow_under_lock(store, 3.5), write=True)
    assert store.conflicts == 0 and store.txns == 5
    assert len(store.load().handles) == 300
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).get(kv.WRITE_LOCK_KEY) is None  # released


@pytest.mark.etcd
def test_a_lost_lock_is_named_as_the_cause_not_other_writers(etcd):
    """The lock's lease revoked from outside while the plan runs: the error says the lock was lost (and what
    was written), not that other writers conflicted."""
    store = _store(etcd, max_txn_ops=70, retries=3)
    store.LOCK_TTL = 2
    taken = []
    real_take = store._take_lock

    def take(key):
        taken.append(real_take(key))
        return taken[-1]

    store._take_lock = take

    def revoke(_store):
        kv.EtcdKV(EtcdSettings(endpoints=[etcd])).revoke(taken[-1][1])

    with pytest.raises(EtcdConflictError) as err:
        store.transact(_slow_under_lock(store, 0.1, also=revoke), write=True)
    message = str(err.value)
    assert "lost the IPAM writer lock" in message and "nothing was written" in message, message
    assert "other writers" not in message, message
    assert store.load().handles == {}


# -- dual stack (issue 17): IPv6 blocks and affinities under Calico's ipv6 keys ---------------------------

DUAL_POOLS = [
    {"name": "p4", "cidr": "10.46.0.0/24", "block_size": 28},
    {"name": "p6", "cidr": "fd00:46::/120", "block_size": 124, "vxlan_mode": "Always"},
]


def _dual_params(etcd, workloads, pools=None):
    return {
        "pools": DUAL_POOLS if pools is None else pools,
        "config": {},
        "reservations": [],
        "nodes": [{"name": "node-a", "ip": "192.168.46.1/24", "ipv6": "fd00:146::1/64", "labels": {}, "workloads": workloads}],
        "node": None,
        "datastore": "etcd",
        "etcd_endpoints": [etcd],
        "etcd_prefix": "",
        "etcd_timeout": 5.0,
        "etcd_retries": 5,
    }


@pytest.mark.etcd
def test_ipv6_blocks_and_affinities_use_calicos_ipv6_keys(etcd):
    from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

    result, _diff = run(_dual_params(etcd, [{"name": "w1"}, {"name": "w2"}]), check_mode=False)
    node = result["nodes"]["node-a"]
    (block6,) = [b["cidr"] for b in node["blocks_ipv6"]]
    (block4,) = [b["cidr"] for b in node["blocks"]]
    raw = _raw(etcd, "/calico/ipam/v2/")
    key6 = block6.replace("/", "-")
    assert f"/calico/ipam/v2/assignment/ipv6/block/{key6}" in raw
    assert f"/calico/ipam/v2/host/node-a/ipv6/block/{key6}" in raw
    assert f"/calico/ipam/v2/assignment/ipv4/block/{block4.replace('/', '-')}" in raw
    assert not any(":" in key.rsplit("/", 1)[1] for key in raw if "/ipv4/" in key)  # no IPv6 block under ipv4
    value = json.loads(raw[f"/calico/ipam/v2/assignment/ipv6/block/{key6}"])
    assert list(value) == ["cidr", "affinity", "allocations", "unallocated", "attributes", "sequenceNumber", "deleted"]
    assert value["cidr"] == block6 and value["affinity"] == "host:node-a" and len(value["allocations"]) == 16
    # the node's IPv6 VTEP address first (Calico's vxlan-v6-tunnel-addr-<node>, vxlanV6TunnelAddress), then w1, w2
    assert value["allocations"][:3] == [0, 1, 2] and value["unallocated"] == list(range(3, 16))
    assert value["attributes"][0] == {"handle_id": "vxlan-v6-tunnel-addr-node-a", "secondary": {"node": "node-a", "type": "vxlanV6TunnelAddress"}}
    assert value["attributes"][1]["handle_id"] == "l3-workload-v6.default.w1"
    assert raw[f"/calico/ipam/v2/host/node-a/ipv6/block/{key6}"] == b'{"state":"confirmed","deleted":false}'
    assert json.loads(raw["/calico/ipam/v2/handle/l3-workload-v6.default.w1"]) == {"block": {block6: 1}, "deleted": False}
    assert json.loads(raw["/calico/ipam/v2/handle/l3-workload.default.w1"]) == {"block": {block4: 1}, "deleted": False}
    assert json.loads(_raw(etcd)["/calico/resources/v3/projectcalico.org/ippools/p6"])["spec"]["blockSize"] == 124
    assert ipaddress.ip_address(node["workloads"][0]["ipv6"]) == ipaddress.ip_network(block6)[1]  # ordinal 0: the VTEP
    # read back: lossless, and the same inventory again writes nothing
    again, _diff = run(_dual_params(etcd, [{"name": "w1"}, {"name": "w2"}]), check_mode=False)
    assert again["changed"] is False and again["nodes"] == result["nodes"] and again["problems"] == []
    assert _raw(etcd, "/calico/ipam/v2/") == raw


@pytest.mark.etcd
def test_ipv6_release_goes_to_the_fifo_tail_in_etcd(etcd):
    from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

    first, _diff = run(_dual_params(etcd, [{"name": "w1"}, {"name": "w2"}]), check_mode=False)
    (block6,) = [b["cidr"] for b in first["nodes"]["node-a"]["blocks_ipv6"]]
    run(_dual_params(etcd, [{"name": "w2"}]), check_mode=False)  # w1 leaves: its ordinal 1 goes to the tail
    value = json.loads(_raw(etcd)[kv.block_key(block6)])
    assert value["unallocated"] == [*range(3, 16), 1]
    assert kv.handle_key("l3-workload-v6.default.w1") not in _raw(etcd)
    third, _diff = run(_dual_params(etcd, [{"name": "w2"}, {"name": "w3"}]), check_mode=False)
    w3 = next(w for w in third["nodes"]["node-a"]["workloads"] if w["id"] == "default.w3")
    ordinal = int(ipaddress.ip_address(w3["ipv6"])) - int(ipaddress.ip_network(block6).network_address)
    assert ordinal == 3  # the head of the FIFO, not the released ordinal 1


@pytest.mark.etcd
def test_an_ipv4_state_in_etcd_loads_unchanged_when_ipv6_pools_are_added(etcd):
    from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

    run(_dual_params(etcd, [{"name": "w1"}], pools=DUAL_POOLS[:1]), check_mode=False)
    before = _raw(etcd, "/calico/ipam/v2/assignment/ipv4/")
    result, _diff = run(_dual_params(etcd, [{"name": "w1"}]), check_mode=False)
    assert result["problems"] == [] and result["nodes"]["node-a"]["workloads"][0]["ipv6"]
    after = _raw(etcd, "/calico/ipam/v2/assignment/ipv4/")
    assert set(after) == set(before)  # the IPv4 blocks untouched (w1 keeps its IPv4 address)
    assert {k: json.loads(v)["allocations"] for k, v in after.items()} == {k: json.loads(v)["allocations"] for k, v in before.items()}
