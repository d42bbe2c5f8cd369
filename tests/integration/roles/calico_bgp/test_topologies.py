# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Cross-subnet IPIP routes and route reflectors, with real BIRD started by the role."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

POOLS = {"default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet"}}


def test_cross_subnet_routes_tunnel_only_across_the_router(fabric_factory, bgp):
    """n1, n2 on 192.168.100.0/24, n3 on 192.168.200.0/24 behind a router: with a CrossSubnet pool,
    routes between the subnets go `via <node> dev tunl0 onlink`, routes within one go out eth0."""
    fabric = fabric_factory("x")
    fabric.add_subnet("a", "192.168.100.1/24")
    fabric.add_subnet("b", "192.168.200.1/24")
    nodes = {
        "n1": {"ip": "192.168.100.11/24", "blocks": [("172.17.0.0/26", "default")]},
        "n2": {"ip": "192.168.100.12/24", "blocks": [("172.17.0.64/26", "default")]},
        "n3": {
            "ip": "192.168.200.13/24",
            "blocks": [("172.17.0.128/26", "default")],
            "borrowed": [("172.17.0.70", "172.17.0.64/26", "default")],
        },
    }
    for name, node in nodes.items():
        subnet = "b" if name == "n3" else "a"
        fabric.add_node(name, node["ip"], subnet, gateway="192.168.200.1" if subnet == "b" else "192.168.100.1")
    fabric.add_workload_route("n3", "172.17.0.70")
    fabric.converge(fabric.inventory(bgp.ipam_result(nodes, POOLS)))
    bgp.wait_for(lambda: all(fabric.established(n) for n in nodes), 20, what="every session Established")
    expected = {
        "n1": [
            "172.17.0.64/26 via 192.168.100.12 dev eth0 proto bird",
            "172.17.0.128/26 via 192.168.200.13 dev tunl0 proto bird onlink",
            "172.17.0.70 via 192.168.200.13 dev tunl0 proto bird onlink",
        ],
        "n2": [
            "172.17.0.0/26 via 192.168.100.11 dev eth0 proto bird",
            "172.17.0.128/26 via 192.168.200.13 dev tunl0 proto bird onlink",
            "172.17.0.70 via 192.168.200.13 dev tunl0 proto bird onlink",
            "blackhole 172.17.0.64/26 proto bird",
        ],
        "n3": [
            "172.17.0.0/26 via 192.168.100.11 dev tunl0 proto bird onlink",
            "172.17.0.64/26 via 192.168.100.12 dev tunl0 proto bird onlink",
            "blackhole 172.17.0.128/26 proto bird",
        ],
    }
    for node, lines in expected.items():
        bgp.wait_for(lambda lines=lines, node=node: set(lines) <= set(fabric.routes(node)), 10, what=f"{node}: {lines} in {fabric.routes(node)}")


def test_route_reflector_with_the_mesh_off(fabric_factory, bgp):
    """rr (cluster 1.1.1.1) reflects for n1..n3, no mesh: each client has one session (to rr)
    and every other node's block, with the owner (not the reflector) as next hop."""
    fabric = fabric_factory("r")
    fabric.add_subnet("a", "192.168.100.1/24")
    nodes = {
        "rr": {"ip": "192.168.100.10/24", "blocks": [("172.17.1.0/26", "default")]},
        "n1": {"ip": "192.168.100.11/24", "blocks": [("172.17.0.0/26", "default")]},
        "n2": {"ip": "192.168.100.12/24", "blocks": [("172.17.0.64/26", "default")]},
        "n3": {"ip": "192.168.100.13/24", "blocks": [("172.17.0.128/26", "default")]},
    }
    for name, node in nodes.items():
        fabric.add_node(name, node["ip"], "a")
    inventory = fabric.inventory(
        bgp.ipam_result(nodes, POOLS),
        group_vars={"calico_bgp_node_mesh": False},
        host_vars={"rr": {"calico_bgp_rr_cluster_id": "1.1.1.1"}},
        route_reflectors=["rr"],
    )
    fabric.converge(inventory)
    bgp.wait_for(lambda: all(fabric.established(n) for n in nodes), 20, what="every session Established")
    assert sorted(fabric.sessions("rr")) == ["RR_192_168_100_11", "RR_192_168_100_12", "RR_192_168_100_13"]
    assert "rr client;" in open(fabric.nodes["rr"]["calico_bgp_config_file"]).read()
    for client in ("n1", "n2", "n3"):
        assert sorted(fabric.sessions(client)) == ["RR_192_168_100_10"]
        others = [f"{nodes[o]['blocks'][0][0]} via {nodes[o]['ip'].split('/')[0]} dev eth0 proto bird" for o in nodes if o != client]
        own = f"blackhole {nodes[client]['blocks'][0][0]} proto bird"
        bgp.wait_for(
            lambda others=others, own=own, client=client: set(others + [own]) <= set(fabric.routes(client)),
            10,
            what=f"{client}: {others} in {fabric.routes(client)}",
        )


def test_cross_subnet_with_different_prefix_lengths_follows_the_one_rule(fabric_factory, bgp):
    """n1 10.0.0.1/16 and n2 10.0.1.1/24 on one bridge: n2's address lies inside n1's subnet, n1's outside n2's.
    Calico's CrossSubnet rule (the peer's address inside THIS node's subnet): n1 reaches n2's block straight
    on eth0, n2 reaches n1's through tunl0. Real BIRD programs exactly that; the IPAM result's model expects
    it (module_utils/ipam_result.py), and the host audit and verify find both tables right."""
    import json

    from ansible_collections.l3.calico.plugins.module_utils import host_audit, verify
    from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult
    from ansible_collections.l3.calico.plugins.module_utils.probe import simplify_route

    fabric = fabric_factory("p")
    fabric.add_subnet("a", "10.0.0.254/16")
    fabric.sh(fabric.router, "ip", "addr", "add", "10.0.1.254/24", "dev", "br-a")
    nodes = {
        "n1": {"ip": "10.0.0.1/16", "blocks": [("172.17.0.0/26", "default")]},
        "n2": {"ip": "10.0.1.1/24", "blocks": [("172.17.0.64/26", "default")]},
    }
    fabric.add_node("n1", "10.0.0.1/16", "a", gateway="10.0.0.254")
    fabric.add_node("n2", "10.0.1.1/24", "a", gateway="10.0.1.254")
    ipam = bgp.ipam_result(nodes, POOLS)
    fabric.converge(fabric.inventory(ipam))
    bgp.wait_for(lambda: all(fabric.established(n) for n in nodes), 20, what="every session Established")
    expected = {
        "n1": "172.17.0.64/26 via 10.0.1.1 dev eth0 proto bird",  # inside n1's /16: not encapsulated
        "n2": "172.17.0.0/26 via 10.0.0.1 dev tunl0 proto bird onlink",  # outside n2's /24: through the tunnel
    }
    for node, line in expected.items():
        bgp.wait_for(lambda line=line, node=node: line in fabric.routes(node), 10, what=f"{node}: {line} in {fabric.routes(node)}")
    model = IpamResult.from_dict(ipam)
    for node in nodes:
        table = json.loads(fabric.sh(fabric.nodes[node]["ns"], "ip", "-json", "route", "show", "table", "main"))
        assert host_audit.audit_routes(node, model, table) == [], node
        seen = [dict(simplify_route(r), dst=verify.normalise_dst(r["dst"])) for r in table]
        for kind, want in verify.expected_routes(node, model, "eth0"):
            assert any(f["dst"] == want["dst"] and verify.route_matches(want, f) for f in seen), (node, kind, want, seen)
