# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Three nodes in one subnet, full mesh, real BIRD started by the role.

The tests of this module share one topology and run in file order: converge, routes,
idempotence, check mode, a filter change, a refused value, a rogue peer, an MD5 mismatch.
"""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

POOLS = {
    "default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet"},
    "blue-vxlan": {"cidr": "172.18.0.0/16", "vxlan_mode": "Always"},
    "private": {"cidr": "172.19.0.0/16", "disable_bgp_export": True},
}
NODES = {
    "n1": {"ip": "192.168.100.11/24", "blocks": [("172.17.0.0/26", "default"), ("172.18.0.0/26", "blue-vxlan")]},
    "n2": {"ip": "192.168.100.12/24", "blocks": [("172.17.0.64/26", "default"), ("172.19.0.0/26", "private")]},
    "n3": {"ip": "192.168.100.13/24", "blocks": [("172.17.0.128/26", "default")],
           "borrowed": [("172.17.0.5", "172.17.0.0/26", "default")]},
}
BORROWED = "172.17.0.5"


@pytest.fixture(scope="module")
def mesh(fabric_factory, bgp):
    fabric = fabric_factory("m")
    fabric.add_subnet("a", "192.168.100.1/24")
    for name, node in NODES.items():
        fabric.add_node(name, node["ip"], "a")
    fabric.add_workload_route("n3", BORROWED)
    fabric.ipam = bgp.ipam_result(NODES, POOLS)
    fabric.inv = fabric.inventory(fabric.ipam)
    started = time.monotonic()
    fabric.first = fabric.converge(fabric.inv)
    fabric.converge_seconds = time.monotonic() - started
    bgp.wait_for(lambda: all(fabric.established(n) for n in NODES), 30, what="every session Established")
    fabric.established_seconds = time.monotonic() - started
    print(f"\nconverge {fabric.converge_seconds:.1f} s, all sessions Established {fabric.established_seconds:.1f} s "
          "after the start of the playbook")
    return fabric


def test_mesh_sessions_established(mesh):
    for name in NODES:
        sessions = mesh.sessions(name)
        others = sorted(f"Mesh_{NODES[o]['ip'].split('/')[0].replace('.', '_')}" for o in NODES if o != name)
        assert sorted(sessions) == others
        assert {state for state, _ in sessions.values()} == {"Established"}
