# SPDX-License-Identifier: MIT
"""IPAM result benchmark: the model every consumer reads (module_utils/ipam_result.py), at fleet size.

1. ``IpamResult.from_dict`` of a generated fleet's result (N nodes in a few subnets of different prefix
   lengths, two pools, two blocks per node, W workloads per node): the ``routing`` view (what the
   tunnels and the BGP data read on every host, and for every host on the controller) and the full
   result (the host audit, verify); cold (a fresh process: every value parsed) and warm (the same
   fleet again, as on the controller: checked subnets and node names remembered). Against the plain
   alternative, the same fields read into the standard library's ``ipaddress`` objects, and the ratio.
2. Its consumers for one node of that fleet: ``tunnels.desired_tunnels``, ``bgp.node_config``
   (routing view), ``host_audit.audit_routes`` of a healthy host and ``verify.expected_routes`` (full).

CPU seconds of this process are what is judged (the machine may be shared). Goal: the model read no
slower than the plain ``ipaddress`` reading (ratio <= 1).
Usage: python benchmarks/ipam_result.py [--nodes N] [--workloads W] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import bgp, host_audit, tunnels, verify  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult  # noqa: E402


def fleet(nodes: int, workloads: int) -> dict:
    """A result of the documented shape: node i in 10.x.y.0/24, every third node's subnet a /16."""
    result = {
        "nodes": {},
        "pools": {
            "ipip": {
                "cidr": "172.16.0.0/12",
                "block_size": 26,
                "ipip_mode": "CrossSubnet",
                "vxlan_mode": "Never",
                "nat_outgoing": True,
                "disabled": False,
                "disable_bgp_export": False,
            },
            "vx": {
                "cidr": "100.64.0.0/10",
                "block_size": 26,
                "ipip_mode": "Never",
                "vxlan_mode": "CrossSubnet",
                "nat_outgoing": False,
                "disabled": False,
                "disable_bgp_export": False,
            },
        },
    }
    for i in range(nodes):
        hi, lo = (i >> 8) & 255, i & 255
        block = f"172.{16 + (i >> 14)}.{(i >> 2) & 255}.{(i & 3) * 64}"
        vx = f"100.{64 + (i >> 14)}.{(i >> 2) & 255}.{(i & 3) * 64}"
        stem, last = block.rsplit(".", 1)
        result["nodes"][f"node-{i:05d}"] = {
            "ip": f"10.{hi}.{lo}.1",
            "network": f"10.{hi}.0.0/16" if i % 3 == 0 else f"10.{hi}.{lo}.0/24",
            "blocks": [{"cidr": f"{block}/26", "pool": "ipip"}, {"cidr": f"{vx}/26", "pool": "vx"}],
            "workloads": [
                {
                    "id": f"default.w{i}-{k}",
                    "name": f"w{i}-{k}",
                    "namespace": "default",
                    "pool": "ipip",
                    "ip": f"{stem}.{int(last) + 1 + k}",
                    "block": f"{block}/26",
                    "borrowed": False,
                }
                for k in range(workloads)
            ],
            "borrowed": [],
            "tunnels": {"ipip": f"{stem}.{last}", "vxlan": vx},
        }
    return result


def routing(result: dict) -> dict:
    """The action plugin's routing view: every node without its workloads (only the borrowed ones)."""
    return {
        "nodes": {name: dict(node, workloads=[w for w in node["workloads"] if w.get("borrowed")]) for name, node in result["nodes"].items()},
        "pools": result["pools"],
    }


def plain(result: dict) -> dict:
    """The plain alternative: the same fields read into ipaddress objects, nothing checked beyond that."""
    pools = {name: (ipaddress.IPv4Network(p["cidr"]), p["ipip_mode"], p["vxlan_mode"]) for name, p in result["pools"].items()}
    nodes = {}
    for name, node in result["nodes"].items():
        tunnels_ = node.get("tunnels") or {}
        nodes[name] = {
            "ip": ipaddress.IPv4Address(node["ip"]),
            "network": ipaddress.IPv4Network(node["network"]),
            "blocks": [(ipaddress.IPv4Network(b["cidr"]), b["pool"]) for b in node["blocks"]],
            "workloads": [(w["id"], ipaddress.IPv4Address(w["ip"]), w["pool"], ipaddress.IPv4Network(w["block"]), w["borrowed"]) for w in node["workloads"]],
            "tunnels": {k: ipaddress.IPv4Address(v) for k, v in tunnels_.items() if v},
        }
    return {"nodes": nodes, "pools": pools}


def cpu(fn, rounds: int) -> float:
    """The least CPU seconds of ``rounds`` runs of ``fn``."""
    best = None
    for _round in range(rounds):
        gc.collect()
        start = time.process_time()
        fn()
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    return best


def healthy_routes(result: IpamResult, node: str) -> list:
    """``ip -json route`` of a node where everything the model expects is programmed."""
    table = []
    for _kind, want in verify.expected_routes(node, result, "eth0"):
        route = {k: v for k, v in want.items() if v not in (None, "")}
        route["dst"] = route["dst"][:-3] if route["dst"].endswith("/32") else route["dst"]
        route["flags"] = ["onlink"] if route.pop("onlink", False) else []
        table.append(route)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--workloads", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", help=argparse.SUPPRESS)  # internal: one cold reading in a fresh process
    args = parser.parse_args()
    full = fleet(args.nodes, args.workloads)
    view = routing(full)
    if args.cold:
        start = time.process_time()
        IpamResult.from_dict(view if args.cold == "routing" else full)
        print(time.process_time() - start)
        return 0

    print(
        f"IPAM result benchmark: {args.nodes:,} nodes x {args.workloads} workloads "
        f"({args.nodes * args.workloads:,} workloads), best of {args.rounds}, CPU seconds"
    )
    failed = False
    for label, data in (("routing", view), ("full", full)):
        cold = min(
            float(
                subprocess.run(
                    [sys.executable, __file__, "--nodes", str(args.nodes), "--workloads", str(args.workloads), "--cold", label],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _round in range(args.rounds)
        )
        warm = cpu(lambda data=data: IpamResult.from_dict(data), args.rounds)
        base = cpu(lambda data=data: plain(data), args.rounds)
        failed |= cold > base
        print(
            f"  read the {label:7} result: model {cold:7.3f} s cold, {warm:7.3f} s warm; plain ipaddress "
            f"{base:7.3f} s; ratio {cold / base:.2f} cold, {warm / base:.2f} warm"
        )
    model = IpamResult.from_dict(full)
    node = "node-00001"
    routes = healthy_routes(model, node)
    for label, fn in (
        ("tunnels.desired_tunnels (routing view)", lambda: tunnels.desired_tunnels(node, view)),
        ("bgp.node_config (routing view)", lambda: bgp.node_config(view, node)),
        ("host_audit.audit_routes (full, healthy)", lambda: host_audit.audit_routes(node, full, routes)),
        ("verify.expected_routes (model)", lambda: verify.expected_routes(node, model, "eth0")),
    ):
        print(f"  {label:<42} {cpu(fn, args.rounds):7.3f} s")
    problems = host_audit.audit_routes(node, full, routes)
    if problems:
        print(f"  the healthy host has problems: {problems[:3]}")
        return 1
    print(f"  goal (model <= plain ipaddress, cold): {'met' if not failed else 'NOT met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
