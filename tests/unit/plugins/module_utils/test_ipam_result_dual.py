# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""ipam_result, dual stack: the IPv6 side of the IPAM result read beside the IPv4 one, and each question
(CrossSubnet, encapsulation, borrowed, expected routes) answered per family.

The results are the IPAM's own (the planner run on a dual-stack inventory), so the model is proven
against what ipam_report.build_result writes, not against a hand-written copy of it.
"""

from __future__ import annotations

import copy
import ipaddress

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import (
    BORROWED,
    BY_BIRD,
    BY_TUNNELS,
    OWN_BLOCK,
    REMOTE_BLOCK,
    WORKLOAD,
    IpamResult,
    IpamResultError,
    Subnet,
    Subnet6,
)
from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import Ipam


def plan(pools, nodes, config=None):
    ipam = Ipam(pools=pools, config=config or {})
    result = ipam.plan(None, nodes=nodes)
    assert result["problems"] == []
    return {"nodes": result["nodes"], "pools": result["pools"], "pools_ipv6": result["pools_ipv6"]}


P4 = {"name": "p4", "cidr": "10.9.0.0/24", "block_size": 28, "ipip_mode": "CrossSubnet"}
P6 = {"name": "p6", "cidr": "fd00:9::/120", "block_size": 124, "vxlan_mode": "CrossSubnet"}
P6_BGP = {"name": "p6", "cidr": "fd00:9::/120", "block_size": 124}

# a and b share an IPv4 subnet but not an IPv6 one; c has no IPv6 address.
NODES = [
    {"name": "a", "ip": "192.168.0.1/24", "ipv6": "fd00:100::1/64", "workloads": [{"name": "wa"}]},
    {"name": "b", "ip": "192.168.0.2/24", "ipv6": "fd00:200::2/64", "workloads": [{"name": "wb"}]},
    {"name": "c", "ip": "192.168.0.3/24", "workloads": [{"name": "wc"}]},
]


def test_the_ipv6_side_is_read_beside_the_ipv4_one():
    data = plan([P4, P6], copy.deepcopy(NODES))
    result = IpamResult.from_dict(data)
    assert set(result.pools) == {"p4"} and set(result.pools6) == {"p6"}
    assert result.pools6["p6"].version == 6 and isinstance(result.pools6["p6"].cidr, Subnet6)
    a = result.nodes["a"]
    assert a.ipv6 == "fd00:100::1" and a.address6 == int(ipaddress.ip_address("fd00:100::1"))
    assert str(a.network6) == "fd00:100::/64"
    assert [str(b.cidr) for b in a.blocks6] == [b["cidr"] for b in data["nodes"]["a"]["blocks_ipv6"]]
    vxlan_v6 = data["nodes"]["a"]["tunnels"]["vxlan_v6"]
    assert vxlan_v6 is not None and a.vxlan_v6 == vxlan_v6
    (wa6,) = a.workloads6
    (wa4,) = a.workloads
    assert wa6.ip == data["nodes"]["a"]["workloads"][0]["ipv6"] and wa4.ip == data["nodes"]["a"]["workloads"][0]["ip"]
    assert isinstance(wa6.block, Subnet6) and isinstance(wa4.block, Subnet)
    c = result.nodes["c"]
    # an IPv6 block and an IPv6 VTEP address (Calico's allocateip gives one whatever the node's addresses),
    # but no IPv6 address: no IPv6 route to or from it (test_expected_routes_per_family)
    assert c.ipv6 is None and c.vxlan_v6 is not None and c.blocks6


def test_a_lazy_reading_reads_the_ipv6_side_as_the_reading_at_once():
    data = plan([P4, P6], copy.deepcopy(NODES))
    assert IpamResult.from_dict(data, lazy=True) == IpamResult.from_dict(data)
    lazy = IpamResult.from_dict(data, lazy=True)
    assert [n.borrowed(6) for n in lazy.nodes.values()] == [n.borrowed(6) for n in IpamResult.from_dict(data).nodes.values()]
    # a node's IPv6 side is read with the node (before its IPv4 workloads): a workload's id checked there too
    data["nodes"]["a"]["workloads"][0]["id"] = ""
    with pytest.raises(IpamResultError, match=r"nodes\.a\.workloads\[0\]\.id='': a workload needs its id"):
        IpamResult.from_dict(data, lazy=True).nodes.get("a")
    with pytest.raises(IpamResultError, match=r"nodes\.a\.workloads\[0\]\.id='': a workload needs its id"):
        IpamResult.from_dict(data)


def test_an_ipv4_result_reads_as_it_always_did():
    data = plan([P4], [{"name": "a", "ip": "192.168.0.1/24", "workloads": [{"name": "wa"}]}])
    assert data["pools_ipv6"] == {} and "ipv6" not in data["nodes"]["a"]["workloads"][0]
    result = IpamResult.from_dict(data)
    assert result.pools6 == {} and result.nodes["a"].workloads6 == () and result.nodes["a"].blocks6 == ()


def test_expected_routes_per_family():
    data = plan([P4, P6], copy.deepcopy(NODES))
    result = IpamResult.from_dict(data)
    v4 = result.expected_routes("a")
    v6 = result.expected_routes("a", version=6)
    assert all(isinstance(r.dst, Subnet) for r in v4) and all(isinstance(r.dst, Subnet6) for r in v6)
    # the IPv4 routes are exactly those of an IPv4-only result
    v6_keys = ("ipv6", "network_ipv6", "blocks_ipv6", "borrowed_ipv6")
    nodes4 = {n: {k: v for k, v in node.items() if k not in v6_keys} for n, node in copy.deepcopy(data["nodes"]).items()}
    for node in nodes4.values():
        node["tunnels"].pop("vxlan_v6")
        for w in node["workloads"]:
            for key in ("ipv6", "pool_ipv6", "block_ipv6", "borrowed_ipv6"):
                w.pop(key)
    only4 = IpamResult.from_dict({"nodes": nodes4, "pools": data["pools"]})
    assert v4 == only4.expected_routes("a")
    own = [r for r in v6 if r.kind == OWN_BLOCK]
    assert own and all(r.blackhole and r.by == BY_BIRD for r in own)
    (wl,) = [r for r in v6 if r.kind == WORKLOAD]
    assert wl.dst.prefix == 128 and wl.dev == naming.veth_name("default.wa")
    remote = {r.node: r for r in v6 if r.kind == REMOTE_BLOCK}
    # b: not in a's IPv6 subnet -> VXLAN over vxlan-v6.calico to b's IPv6 VTEP (the IPv4 rule would say inside)
    assert remote["b"].by == BY_TUNNELS and remote["b"].dev == naming.VXLAN_V6_DEVICE and remote["b"].onlink
    assert remote["b"].gateway == result.nodes["b"].vxlan_v6 and remote["b"].encap == "vxlan"
    # c has no IPv6 address: no IPv6 route to its block
    assert "c" not in remote
    assert result.expected_routes("c", version=6) == tuple(r for r in result.expected_routes("c", version=6) if r.node == "c")


def test_crosssubnet_and_bgp_in_ipv6_use_the_ipv6_subnets():
    nodes = copy.deepcopy(NODES)
    nodes[1]["ipv6"] = "fd00:100::2/64"  # b now in a's IPv6 subnet
    data = plan([P4, P6], nodes)
    result = IpamResult.from_dict(data)
    a, b, c = (result.nodes[n] for n in "abc")
    p6 = result.pools6["p6"]
    assert p6.encapsulation(a, b) == "none" and p6.tunnel_kinds == ("vxlan_v6",) and p6.routed_by == BY_TUNNELS
    assert p6.encapsulation(a, c) == "vxlan"  # c has no IPv6 address: never inside
    remote = {r.node: r for r in result.expected_routes("a", version=6) if r.kind == REMOTE_BLOCK}
    assert remote["b"].encap == "none" and remote["b"].gateway == "fd00:100::2" and remote["b"].dev is None
    # an unencapsulated IPv6 pool is BIRD's: between the nodes with an IPv6 address only
    data = plan([P4, P6_BGP], nodes)
    result = IpamResult.from_dict(data)
    remote = {r.node: r for r in result.expected_routes("a", version=6) if r.kind == REMOTE_BLOCK}
    assert set(remote) == {"b"} and remote["b"].by == BY_BIRD and remote["b"].gateway == "fd00:100::2"
    assert {r.node for r in result.expected_routes("a", bgp_nodes=["a"], version=6) if r.kind == REMOTE_BLOCK} == set()


def test_borrowed_per_family():
    # strict affinity off, one /124 block per node at most: the second node borrows IPv6 addresses
    pools = [{"name": "p4", "cidr": "10.9.0.0/24", "block_size": 24}, {"name": "p6", "cidr": "fd00:9::/124", "block_size": 124}]
    nodes = [
        {"name": "a", "ip": "192.168.0.1/24", "ipv6": "fd00:100::1/64", "workloads": [{"name": "wa"}]},
        {"name": "b", "ip": "192.168.0.2/24", "ipv6": "fd00:100::2/64", "workloads": [{"name": "wb"}]},
    ]
    data = plan(pools, nodes)
    result = IpamResult.from_dict(data)
    b = result.nodes["b"]
    assert [x.ip for x in b.borrowed(6)] == data["nodes"]["b"]["borrowed_ipv6"] != []
    assert [x.ip for x in b.borrowed()] == data["nodes"]["b"]["borrowed"] != []  # the one /24 IPv4 block: borrowed too
    assert {x.ip for x in b.borrowed()}.isdisjoint(x.ip for x in b.borrowed(6))
    routes = [r for r in result.expected_routes("a", version=6) if r.kind == BORROWED]
    assert [str(r.dst) for r in routes] == [f"{ip}/128" for ip in data["nodes"]["b"]["borrowed_ipv6"]]
    assert result.node_addresses(6) == ["fd00:100::1", "fd00:100::2"] and result.node_addresses() == ["192.168.0.1", "192.168.0.2"]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["pools_ipv6"]["p6"].update(cidr="10.99.0.0/16"), r"pools_ipv6\.p6\.cidr='10\.99\.0\.0/16': not an IPv6 network \(an IPv4 one"),
        (lambda d: d["pools"]["p4"].update(cidr="fd00:99::/64"), r"pools\.p4\.cidr='fd00:99::/64': not an IPv4 network \(an IPv6 one"),
        (lambda d: d["pools_ipv6"]["p6"].update(ipip_mode="Always", vxlan_mode="Never"), r"p6\.ipip_mode='Always': IPIP is IPv4-only"),
        (lambda d: d["pools_ipv6"]["p6"].update(block_size=129), r"p6\.block_size=129"),
        (lambda d: d["pools_ipv6"].update(p4=d["pools_ipv6"]["p6"]), r"pools_ipv6='p4': a pool name is in both"),
        (lambda d: d["nodes"]["a"].update(ipv6="192.168.0.1"), r"a\.ipv6='192\.168\.0\.1': not an IPv6 address"),
        (lambda d: d["nodes"]["a"].update(network_ipv6="fd00:300::/64"), r"a\.network_ipv6='fd00:300::/64': does not contain"),
        (lambda d: d["nodes"]["a"]["workloads"][0].update(ipv6="10.9.0.1"), r"workloads\[0\]\.ipv6='10\.9\.0\.1': not an IPv6 address"),
        (lambda d: d["nodes"]["a"]["workloads"][0].update(pool_ipv6="p4"), r"workloads\[0\]\.pool_ipv6='p4': not a pool"),
        (lambda d: d["nodes"]["a"]["blocks_ipv6"][0].update(cidr="fd00:9::1/124"), r"blocks_ipv6\[0\]\.cidr='fd00:9::1/124': host bits set"),
        (lambda d: d["nodes"]["a"]["tunnels"].update(vxlan_v6="10.9.0.1"), r"tunnels\.vxlan_v6='10\.9\.0\.1': not an IPv6 address"),
    ],
)
def test_bad_ipv6_data_is_refused_naming_field_and_value(change, match):
    data = plan([P4, P6], copy.deepcopy(NODES))
    change(data)
    with pytest.raises(IpamResultError, match=match):
        IpamResult.from_dict(data)
