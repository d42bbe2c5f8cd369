# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird.conf of IPv4-only inputs stays byte-identical (CASES; golden/*.conf were printed by the code
before the IPv6 sessions were added): dual stack adds to bird.conf only where a node has IPv6 to route."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_conf

POOLS = {
    "default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet", "vxlan_mode": "Never"},
    "blue": {"cidr": "172.18.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Always"},
    "always": {"cidr": "172.20.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Never"},
    "private": {"cidr": "172.19.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Never", "disable_bgp_export": True},
}
NODES = {
    "a": {
        "ip": "192.168.100.10",
        "network": "192.168.100.0/24",
        "blocks": [{"cidr": "172.17.0.0/26"}, {"cidr": "172.18.0.0/26"}, {"cidr": "172.17.9.1/32"}],
        "borrowed": ["172.17.1.5"],
    },
    "b": {"ip": "192.168.100.11", "network": "192.168.100.0/24", "blocks": [{"cidr": "172.20.0.0/26"}]},
    "c": {"ip": "192.168.200.12", "network": "192.168.200.0/24", "blocks": []},
}
FULL = {
    "route_reflectors": {"a": "1.1.1.1"},
    "node_as": {"c": 65001},
    "mesh_password": "mesh-key",
    "peers": [{"address": "10.0.0.1", "as": 65000, "password": "tor-key", "ttl_security": True, "multihop": 2}],
    "node_peers": [{"address": "10.0.0.2", "as": 65002, "keep_next_hop": True, "port": 1179, "import_default_route": True}],
    "router_id": "hash",
    "graceful_restart_time": 300,
}
LAYOUT = {"header": "managed by l3", "log_file": "/var/log/bird.log", "direct_exclude": ["cali*"], "kernel_persist": False, "hold_time": 90}
# name -> (nodes, pools, node, settings, layout); an IPv6 key anywhere would make it a dual-stack case.
CASES = {
    "mesh-a": (NODES, POOLS, "a", {}, {}),
    "mesh-c": (NODES, POOLS, "c", {}, {}),
    "full-a": (NODES, POOLS, "a", FULL, {}),
    "full-b": (NODES, POOLS, "b", FULL, {}),
    "full-c": (NODES, POOLS, "c", FULL, LAYOUT),
    "nomesh-c": (
        NODES,
        {"default": POOLS["default"], "always": POOLS["always"]},
        "c",
        {"node_mesh": False, "import_default_route": True, "graceful_restart": False},
        {},
    ),
}

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_ipv4_only_bird_conf_is_byte_identical(name):
    nodes, pools, node, settings, layout = CASES[name]
    bgp = {"node": node, "nodes": nodes, "pools": pools, "settings": settings, "layout": layout}
    config, secrets = bird_conf.from_bgp(bgp, "/etc/bird/bird.conf", "/etc/bird/bird-secrets.conf")
    assert config == (GOLDEN / f"{name}.conf").read_text()
    pinned = GOLDEN / f"{name}.secrets"
    assert secrets == (pinned.read_text() if pinned.exists() else None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_ipv6_pools_without_node_ipv6_addresses_change_nothing(name):
    """IPv6 pools, but no node with calico_node_ipv6: no IPv6 session, no IPv6 route - the same bytes."""
    nodes, pools, node, settings, layout = CASES[name]
    bgp = {"node": node, "nodes": nodes, "pools": pools, "pools_ipv6": {"v6": {"cidr": "fd00:10::/48"}}, "settings": settings, "layout": layout}
    config, _secrets = bird_conf.from_bgp(bgp, "/etc/bird/bird.conf", "/etc/bird/bird-secrets.conf")
    assert config == (GOLDEN / f"{name}.conf").read_text()
