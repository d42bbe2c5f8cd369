# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""IPv6 BGP through the role itself (issue 17): a dual-stack fabric, the role converged by Ansible, real BIRD.

n1, n2 on 192.168.100.0/24 + fd00:100::/64, n3 on 192.168.200.0/24 + fd00:200::/64 behind the router
(forwarding both families), n4 IPv4 only. The role's verify waits for every session of both families."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

POOLS = {"default": {"cidr": "172.17.0.0/16"}}
POOLS6 = {
    "v6": {"cidr": "fd00:10::/48", "block_size": 122, "ipip_mode": "Never", "vxlan_mode": "Never", "nat_outgoing": False, "disabled": False},
}
V6 = {"n1": "fd00:100::11/64", "n2": "fd00:100::12/64", "n3": "fd00:200::13/64"}
BLOCKS6 = {"n1": "fd00:10::/122", "n2": "fd00:10::40/122", "n3": "fd00:10::80/122"}


def routes6(fabric, node: str) -> list[str]:
    """The IPv6 routes BIRD installed (`proto bird`, which ip leaves out when it selects by it)."""
    out = fabric.sh(fabric.nodes[node]["ns"], "ip", "-6", "route", "show", "proto", "bird")
    return [" ".join(line.split()) for line in out.splitlines()]


def test_ipv6_sessions_and_routes_through_the_role(fabric_factory, bgp):
    fabric = fabric_factory("6")
    fabric.add_subnet("a", "192.168.100.1/24")
    fabric.add_subnet("b", "192.168.200.1/24")
    fabric.sh(fabric.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    fabric.sh(fabric.router, "ip", "addr", "add", "fd00:100::1/64", "dev", "br-a", "nodad")
    fabric.sh(fabric.router, "ip", "addr", "add", "fd00:200::1/64", "dev", "br-b", "nodad")
    nodes = {
        "n1": {"ip": "192.168.100.11/24", "blocks": [("172.17.0.0/26", "default")]},
        "n2": {"ip": "192.168.100.12/24", "blocks": [("172.17.0.64/26", "default")]},
        "n3": {"ip": "192.168.200.13/24", "blocks": [("172.17.0.128/26", "default")]},
        "n4": {"ip": "192.168.100.14/24", "blocks": [("172.17.0.192/26", "default")]},
    }
    for name, node in nodes.items():
        across = name == "n3"
        fabric.add_node(name, node["ip"], "b" if across else "a", gateway="192.168.200.1" if across else "192.168.100.1")
        if name in V6:
            ns = fabric.nodes[name]["ns"]
            fabric.sh(ns, "ip", "addr", "add", V6[name], "dev", "eth0", "nodad")
            fabric.sh(ns, "ip", "-6", "route", "add", "default", "via", "fd00:200::1" if across else "fd00:100::1")
    ipam = bgp.ipam_result(nodes, POOLS)
    ipam["pools_ipv6"] = POOLS6
    for name, address in V6.items():
        prefix = address.split("::", maxsplit=1)[0]
        ipam["nodes"][name].update(
            ipv6=address.split("/", maxsplit=1)[0], network_ipv6=f"{prefix}::/64", blocks_ipv6=[{"cidr": BLOCKS6[name], "pool": "v6"}], borrowed_ipv6=[]
        )
    inventory = fabric.inventory(ipam, group_vars={"calico_bgp_verify": True, "calico_bgp_mesh_password": "l3tbgp-six"})
    first = fabric.converge(inventory)
    assert not bgp.failures(first)
    assert sorted(fabric.sessions("n1")) == ["Mesh_192_168_100_12", "Mesh_192_168_100_14", "Mesh_192_168_200_13", "Mesh_fd00_100__12", "Mesh_fd00_200__13"]
    assert sorted(fabric.sessions("n4")) == ["Mesh_192_168_100_11", "Mesh_192_168_100_12", "Mesh_192_168_200_13"]  # IPv4 only
    expected = {
        "n1": {f"{BLOCKS6['n2']} via fd00:100::12 dev eth0", f"{BLOCKS6['n3']} via fd00:100::1 dev eth0"},
        "n2": {f"{BLOCKS6['n1']} via fd00:100::11 dev eth0", f"{BLOCKS6['n3']} via fd00:100::1 dev eth0"},
        "n3": {f"{BLOCKS6['n1']} via fd00:200::1 dev eth0", f"{BLOCKS6['n2']} via fd00:200::1 dev eth0"},
    }
    for node, lines in expected.items():
        bgp.wait_for(
            lambda node=node, lines=lines: all(any(r.startswith(line + " ") for r in routes6(fabric, node)) for line in lines),
            15,
            what=f"{node}: {lines} in {routes6(fabric, node)}",
        )
        assert any(r.startswith(f"blackhole {BLOCKS6[node]}") for r in routes6(fabric, node)), routes6(fabric, node)
    assert routes6(fabric, "n4") == []
    second = fabric.converge(inventory)
    assert {host: stats["changed"] for host, stats in second["stats"].items()} == dict.fromkeys(nodes, 0)
