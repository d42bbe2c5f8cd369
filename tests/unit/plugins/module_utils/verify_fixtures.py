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
