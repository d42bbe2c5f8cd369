# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The audit's pure parts: the IPAM state against the inventory, a host's routes against the IPAM."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.host_audit import audit_routes
from ansible_collections.l3.calico.plugins.module_utils.naming import veth_name
from ansible_collections.l3.calico.plugins.modules.ipam import run

POOLS = [{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26}]


def params(tmp_path, nodes, **kw):
    return {"pools": POOLS, "config": {}, "reservations": [], "node": None, "lock_timeout": 5.0,
            "state_file": str(tmp_path / "s.json"), "nodes": nodes, **kw}


def nodes(**workloads):
    return [{"name": n, "ip": f"192.168.1.{i}/24", "workloads": [{"name": w} for w in wls]}
            for i, (n, wls) in enumerate(sorted(workloads.items()), 1)]


def test_audit_of_a_consistent_state_is_clean_and_writes_nothing(tmp_path):
    run(params(tmp_path, nodes(a=["w1"], b=["w2"])), check_mode=False)
    before = (tmp_path / "s.json").read_bytes()
    result, _ = run(params(tmp_path, nodes(a=["w1"], b=["w2"]), audit=True), check_mode=False)
    assert result["audit"] == [] and result["problems"] == [] and result["changed"] is False
    assert (tmp_path / "s.json").read_bytes() == before


def test_audit_finds_leaks_moves_missing_and_gone_nodes_each_with_a_fix(tmp_path):
    run(params(tmp_path, nodes(a=["w1", "old"], b=["w2"], c=["w3"])), check_mode=False)
    before = (tmp_path / "s.json").read_bytes()
    # old leaves the inventory, w2 moves to a, new appears, c is gone - nobody ran the IPAM.
    result, _ = run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[]), audit=True), check_mode=False)
    by = {e["problem"]: e["fix"] for e in result["audit"]}
    text = "\n".join(by)
    assert (tmp_path / "s.json").read_bytes() == before
    assert any("default.old on a, which the inventory no longer lists" in p and "ipam.yml" in f for p, f in by.items()), text
    assert any("recorded on b but the inventory lists workload default.w2 on a" in p for p in by), text
    assert any("workload default.new on a has no address" in p for p in by), text
    assert any("belongs to c, which is not in the inventory" in p and "ipam.yml" in f for p, f in by.items()), text
    assert any("affine to c, which is not in the inventory" in p for p in by), text
    # a plan run fixes every one of them
    run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[])), check_mode=False)
    again, _ = run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[]), audit=True), check_mode=False)
    assert again["audit"] == []


IPAM = {
    "pools": {"p1": {"cidr": "10.10.0.0/16", "block_size": 26, "vxlan_mode": "Never", "disable_bgp_export": False},
              "priv": {"cidr": "10.20.0.0/16", "block_size": 26, "vxlan_mode": "Never", "disable_bgp_export": True}},
    "nodes": {
        "a": {"blocks": [{"cidr": "10.10.0.0/26", "pool": "p1"}],
              "workloads": [{"id": "default.w1", "ip": "10.10.0.1"}]},
        "b": {"blocks": [{"cidr": "10.10.0.64/26", "pool": "p1"}, {"cidr": "10.20.0.0/26", "pool": "priv"}],
              "workloads": [{"id": "default.w2", "ip": "10.10.0.65"}]},
    },
}
GOOD = [
    {"dst": "10.10.0.1", "dev": veth_name("default.w1"), "scope": "link"},
    {"type": "blackhole", "dst": "10.10.0.0/26", "protocol": "bird"},
    {"dst": "10.10.0.64/26", "gateway": "192.168.1.2", "dev": "eth0", "protocol": "bird"},
    {"dst": "default", "gateway": "192.168.1.254", "dev": "eth0"},
]


def test_routes_in_agreement():
    assert audit_routes("a", IPAM, GOOD) == []  # b's private block is not exported: no route expected


def test_routes_disagreeing():
    routes = [r for r in GOOD if r.get("dst") != "10.10.0.64/26" and r.get("type") != "blackhole"]
    routes += [{"dst": "10.10.0.65", "dev": "cali0000000000x"},  # b's workload address, here
               {"dst": "10.10.0.9", "dev": "cali0000000000y"},  # nobody's
               {"dst": "10.10.9.0/26", "gateway": "192.168.1.3", "dev": "eth0", "protocol": "bird"}]  # stale
    routes = [r for r in routes if r.get("dev") != veth_name("default.w1")]
    problems = [p["problem"] for p in audit_routes("a", IPAM, routes)]
    text = "\n".join(problems)
    assert any("workload default.w1 (10.10.0.1) has no route" in p for p in problems), text
    assert any("10.10.0.65 is used here" in p and "default.w2 on b" in p for p in problems), text
    assert any("'10.10.0.9 dev cali0000000000y' belongs to no workload" in p for p in problems), text
    assert any("own block 10.10.0.0/26 is not blackholed" in p for p in problems), text
    assert any("no route to block 10.10.0.64/26 of b" in p for p in problems), text
    assert any("route to 10.10.9.0/26" in p and "stale" in p for p in problems), text
    assert len(problems) == 6, text
