# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The lab of inventories/lab as an IPAM result, and what a healthy node looks like to probe."""

from __future__ import annotations

import copy

from ansible_collections.l3.calico.plugins.module_utils import naming, verify
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult

NODES = {
    "node-a": ("192.168.100.100", "192.168.100.0/24", 0),
    "node-b": ("192.168.100.101", "192.168.100.0/24", 1),
    "node-c": ("192.168.200.101", "192.168.200.0/24", 2),
}
NAMES = {"node-a": ["web-1", "web-2", "db-1"], "node-b": ["web-3", "web-4", "db-2"], "node-c": ["web-5", "web-6", "db-3"]}


def ipam_result() -> dict:
    nodes = {}
    for name, (ip, network, idx) in NODES.items():
        web, blue = f"172.17.{idx * 64}.0/26", f"172.18.{idx * 64}.0/26"
        workloads = []
        for n, wname in enumerate(NAMES[name]):
            ns = "blue" if wname.startswith("db") else "default"
            pool, block = ("blue-vxlan", blue) if ns == "blue" else ("default-ipv4-ippool", web)
            base = blue if ns == "blue" else web
            workloads.append(
                {
                    "id": naming.workload_id(ns, wname),
                    "name": wname,
                    "namespace": ns,
                    "pool": pool,
                    "ip": f"{base.partition('.0/')[0]}.{n + 1}",
                    "block": block,
                    "borrowed": False,
                }
            )
        nodes[name] = {
            "ip": ip,
            "network": network,
            "blocks": [{"cidr": web, "pool": "default-ipv4-ippool"}, {"cidr": blue, "pool": "blue-vxlan"}],
            "workloads": sorted(workloads, key=lambda w: w["id"]),
            "borrowed": [],
            "tunnels": {"ipip": f"172.17.{idx * 64}.0", "vxlan": f"172.18.{idx * 64}.0"},
        }
    pools = {
        "default-ipv4-ippool": {"cidr": "172.17.0.0/16", "block_size": 26, "ipip_mode": "CrossSubnet", "vxlan_mode": "Never"},
        "blue-vxlan": {"cidr": "172.18.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "Always"},
    }
    return {"changed": False, "nodes": nodes, "pools": pools, "problems": []}


def healthy_probe(ipam: dict, name: str) -> dict:
    """What probe returns on a node where everything is right."""
    nodes = ipam["nodes"]
    routes = [{"dst": "default", "type": "unicast", "gateway": "192.168.100.1", "dev": "vec0", "protocol": "boot", "scope": "global", "onlink": False}]
    for _kind, exp in verify.expected_routes(name, ipam, "vec0"):
        route = {"gateway": "", "dev": "", "protocol": "bird", "scope": "global", "onlink": False}
        route.update({k: v for k, v in exp.items() if v is not None})
        if route["dst"].endswith("/32"):
            route["dst"] = route["dst"][:-3]  # ip -json prints host routes without /32
        routes.append(route)
    targets = [w for n in nodes.values() for w in n["workloads"]]
    return {
        "node_ip": nodes[name]["ip"],
        "ip_forward_expected": "0",
        "underlay_device": "vec0",
        "routes": routes,
        "bird_error": "",
        "bgp": [
            {"name": f"Mesh_{o.replace('-', '_')}", "state": "up", "bgp_state": "Established", "neighbor": nodes[o]["ip"], "info": "Established"}
            for o in sorted(nodes)
            if o != name
        ],
        "pings": {w["id"]: {t["id"]: {"ok": True, "rtt_ms": 0.3} for t in targets if t["id"] != w["id"]} for w in nodes[name]["workloads"]},
        "workloads": {
            w["id"]: {
                "netns": naming.netns_name(w["id"]),
                "exists": True,
                "error": "",
                "veth": naming.veth_name(w["id"]),
                "addresses": [f"{w['ip']}/32"],
                "interfaces": ["eth0"],
                "routes": [
                    {"dst": "default", "type": "unicast", "gateway": naming.GATEWAY, "dev": "eth0", "protocol": "boot", "scope": "global", "onlink": False},
                    {"dst": naming.GATEWAY, "type": "unicast", "gateway": "", "dev": "eth0", "protocol": "boot", "scope": "link", "onlink": False},
                ],
                "neighbours": [{"dst": naming.GATEWAY, "lladdr": naming.HOST_VETH_MAC, "dev": "eth0", "state": "REACHABLE"}],
                "ip_forward": "0",
            }
            for w in nodes[name]["workloads"]
        },
    }


def healthy_capture(ipam: dict) -> list:
    """Echo requests as the router sees them when every pair is encapsulated right."""
    nodes, result = ipam["nodes"], IpamResult.from_dict(ipam)
    flows = []
    for sname, snode in nodes.items():
        for dname, dnode in nodes.items():
            if sname == dname:
                continue
            for src in snode["workloads"]:
                for dst in dnode["workloads"]:
                    encap = result.pools[dst["pool"]].encapsulation(result.nodes[sname], result.nodes[dname])
                    outer = (src["ip"], dst["ip"]) if encap == "none" else (snode["ip"], dnode["ip"])
                    flows.append(
                        {
                            "encap": "vxlan:4096" if encap == "vxlan" else encap,
                            "outer_src": outer[0],
                            "outer_dst": outer[1],
                            "inner_src": src["ip"],
                            "inner_dst": dst["ip"],
                            "icmp": "echo-request",
                            "packets": 4,
                        }
                    )
    return flows


def healthy() -> tuple:
    ipam = ipam_result()
    return ipam, {n: healthy_probe(ipam, n) for n in ipam["nodes"]}, healthy_capture(ipam)


def clone(obj):
    return copy.deepcopy(obj)


# Dual stack: the lab's IPv6 underlay (fd00:100::/64 for node-a and node-b, fd00:200::/64 for node-c) and
# one IPv6 pool, VXLAN CrossSubnet, serving every namespace (inventories/lab).
NODES6 = {"node-a": ("fd00:100::100", "fd00:100::/64"), "node-b": ("fd00:100::101", "fd00:100::/64"), "node-c": ("fd00:200::101", "fd00:200::/64")}
POOL6 = "default-ipv6-ippool"


def dual_stack_result() -> dict:
    ipam = ipam_result()
    for idx, (name, node) in enumerate(sorted(ipam["nodes"].items())):
        block = f"fd00:17::{idx * 64:x}/122" if idx else "fd00:17::/122"
        base = block.partition("/")[0]
        node.update(
            {
                "ipv6": NODES6[name][0],
                "network_ipv6": NODES6[name][1],
                "blocks_ipv6": [{"cidr": block, "pool": POOL6}],
                "borrowed_ipv6": [],
            }
        )
        node["tunnels"]["vxlan_v6"] = base
        for wl in node["workloads"]:
            n = NAMES[name].index(wl["name"])  # as the IPv4 addresses: web-1 ::1, web-2 ::2, db-1 ::3
            wl.update({"ipv6": f"fd00:17::{idx * 64 + n + 1:x}", "pool_ipv6": POOL6, "block_ipv6": block, "borrowed_ipv6": False})
    ipam["pools_ipv6"] = {POOL6: {"cidr": "fd00:17::/48", "block_size": 122, "ipip_mode": "Never", "vxlan_mode": "CrossSubnet"}}
    return ipam


def healthy_probe6(ipam: dict, name: str, bgp6: bool = False) -> dict:
    """What probe returns on a dual-stack node where everything is right (``bgp6``: BIRD carries IPv6,
    with an IPv6 session to every other node)."""
    probe = healthy_probe(ipam, name)
    nodes = ipam["nodes"]
    routes6 = [{"dst": "default", "type": "unicast", "gateway": "fd00:100::1", "dev": "vec0", "protocol": "boot", "scope": "", "onlink": False}]
    for _kind, exp in verify.expected_routes(name, ipam, "vec0", version=6, bgp_nodes=list(nodes) if bgp6 else []):
        route = {"gateway": "", "dev": "", "protocol": "bird" if exp.get("type") == "blackhole" else "80", "scope": "", "onlink": False}
        route.update({k: v for k, v in exp.items() if v is not None and k != "scope"})
        if route["dst"].endswith("/128"):
            route["dst"] = route["dst"][:-4]  # ip -json prints host routes without /128
        routes6.append(route)
    targets = [w for n in nodes.values() for w in n["workloads"]]
    probe.update(
        {
            "node_ip6": nodes[name]["ipv6"],
            "underlay_device6": "vec0",
            "routes6": routes6,
            "bgp_expected6": [nodes[o]["ipv6"] for o in sorted(nodes) if o != name] if bgp6 else [],
            "pings6": {w["id"]: {t["id"]: {"ok": True, "rtt_ms": 0.4} for t in targets if t["id"] != w["id"]} for w in nodes[name]["workloads"]},
        }
    )
    if bgp6:
        probe["bgp"] += [
            {
                "name": f"Mesh6_{o.replace('-', '_')}",
                "state": "up",
                "bgp_state": "Established",
                "neighbor": nodes[o]["ipv6"],
                "info": "Established",
                "channels": ["ipv6"],
            }
            for o in sorted(nodes)
            if o != name
        ]
    for wl in nodes[name]["workloads"]:
        view = probe["workloads"][wl["id"]]
        view.update(
            {
                "addresses6": [f"{wl['ipv6']}/128"],
                "routes6": [{"dst": "default", "type": "unicast", "gateway": naming.GATEWAY6, "dev": "eth0", "protocol": "boot", "scope": "", "onlink": False}],
                "ip6_forward": "0",
            }
        )
        view["neighbours"].append({"dst": naming.GATEWAY6, "lladdr": naming.HOST_VETH_MAC, "dev": "eth0", "state": "REACHABLE"})
    return probe


def healthy_dual_stack(bgp6: bool = False) -> tuple:
    ipam = dual_stack_result()
    return ipam, {n: healthy_probe6(ipam, n, bgp6) for n in ipam["nodes"]}, healthy_capture(ipam) + healthy_capture6(ipam)


def healthy_capture6(ipam: dict) -> list:
    """IPv6 echo requests as the router sees them when every pair is carried right (VXLAN over IPv6
    between the subnets, plain inside one)."""
    nodes, result = ipam["nodes"], IpamResult.from_dict(ipam)
    flows = []
    for sname, snode in nodes.items():
        for dname, dnode in nodes.items():
            if sname == dname:
                continue
            for src in snode["workloads"]:
                for dst in dnode["workloads"]:
                    encap = result.pools6[dst["pool_ipv6"]].encapsulation(result.nodes[sname], result.nodes[dname])
                    outer = (src["ipv6"], dst["ipv6"]) if encap == "none" else (snode["ipv6"], dnode["ipv6"])
                    flows.append(
                        {
                            "encap": "vxlan:4096" if encap == "vxlan" else encap,
                            "outer_src": outer[0],
                            "outer_dst": outer[1],
                            "inner_src": src["ipv6"],
                            "inner_dst": dst["ipv6"],
                            "icmp": "echo-request",
                            "packets": 2,
                        }
                    )
    return flows
