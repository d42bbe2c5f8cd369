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
3. Per host, as a module runs them (one call in a fresh process, the result given as the dict a module
   gets): ``bgp.node_config`` (the routing view) and ``host_audit.audit_routes`` (the full result, a healthy
   host) at 1,000 and 10,000 nodes x W workloads, against the same function of the code before the model
   (``BEFORE``: plain dict reading, read from git in this run; skipped with a message where git cannot
   give it). Issue 14's acceptance: within noise of it (ratio ~1 or below).

CPU seconds of this process are what is judged (the machine may be shared). Goal: the model read no
slower than the plain ``ipaddress`` reading (ratio <= 1).
Usage: python benchmarks/ipam_result.py [--nodes N] [--workloads W] [--rounds R] [--per-host 1000,10000]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import bgp, host_audit, tunnels, verify  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult  # noqa: E402

# The code before the model (main before issue 14a's merge eb60b4b): its bgp.py and host_audit.py read
# the result's dicts directly. Loaded from git by the per-host part (3.) as modules of their own.
BEFORE = "eb60b4b^1"
PER_HOST = {"bgp": "plugins/module_utils/bgp.py", "host_audit": "plugins/module_utils/host_audit.py"}
NODE = "node-00001"


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
        block = f"172.{16 + (i >> 10)}.{(i >> 2) & 255}.{(i & 3) * 64}"
        vx = f"100.{64 + (i >> 10)}.{(i >> 2) & 255}.{(i & 3) * 64}"
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


def before_module(name: str, work: str):
    """The module ``name`` (bgp, host_audit) as it was at :data:`BEFORE`; None: git cannot give it."""
    path = os.path.join(work, f"before_{name}.py")
    if not os.path.exists(path):
        proc = subprocess.run(["git", "-C", HERE, "show", f"{BEFORE}:{PER_HOST[name]}"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return None
        with open(path, "w", encoding="utf-8") as out:
            out.write(proc.stdout)
    spec = importlib.util.spec_from_file_location(f"before_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def one_call(consumer: str, code: str, nodes: int, workloads: int, work: str) -> float:
    """CPU seconds of one call of ``consumer`` (bgp, host_audit) of ``code`` (model, before) for node-00001,
    in this fresh process (nothing of the fleet read before; generating the fleet is not counted)."""
    full = fleet(nodes, workloads)
    if code == "before":
        module = before_module(consumer, work)
    else:
        module = bgp if consumer == "bgp" else host_audit
    if consumer == "bgp":
        args = (routing(full), NODE)
        call = module.node_config
    else:
        with open(os.path.join(work, f"routes-{nodes}-{workloads}.json"), encoding="utf-8") as src:
            args = (NODE, full, json.load(src))
        call = module.audit_routes
    gc.collect()
    start = time.process_time()
    out = call(*args)
    spent = time.process_time() - start
    if consumer == "host_audit" and out:
        raise SystemExit(f"{code} host_audit: the healthy host has problems: {out[:3]}")
    return spent


def per_host(sizes: list, workloads: int, rounds: int) -> None:
    """Part 3: every (consumer, size) measured ``rounds`` times in fresh processes, model and before alternating."""
    with tempfile.TemporaryDirectory(prefix="l3t-bench-per-host-") as work:
        if before_module("bgp", work) is None or before_module("host_audit", work) is None:
            print(f"  per host against the code before the model: skipped (git cannot show {BEFORE} here)")
            return
        print(f"  per host, one call in a fresh process (CPU s, {rounds} runs each, model and before alternating; before = {BEFORE}):")
        for nodes in sizes:
            full = fleet(nodes, workloads)
            with open(os.path.join(work, f"routes-{nodes}-{workloads}.json"), "w", encoding="utf-8") as out:
                json.dump(healthy_routes(IpamResult.from_dict(full), NODE), out)
            for consumer, label in (("bgp", "bgp.node_config (routing view)"), ("host_audit", f"host_audit.audit_routes (x {workloads})")):
                runs = {"model": [], "before": []}
                for _round in range(rounds):
                    for code in runs:
                        argv = [sys.executable, __file__, "--one", f"{consumer}:{code}:{nodes}:{workloads}:{work}"]
                        runs[code].append(float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout))
                model, before = statistics.median(runs["model"]), statistics.median(runs["before"])
                print(
                    f"    {label:<36} {nodes:>6,} nodes: model {min(runs['model']):.3f}-{max(runs['model']):.3f}, "
                    f"before {min(runs['before']):.3f}-{max(runs['before']):.3f}; ratio of the medians {model / before:.2f}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--workloads", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-host", default="1000,10000", help="fleet sizes of part 3 (comma-separated; empty: skip it)")
    parser.add_argument("--only-per-host", action="store_true", help="run part 3 alone")
    parser.add_argument("--cold", help=argparse.SUPPRESS)  # internal: one cold reading in a fresh process
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one per-host call in a fresh process
    args = parser.parse_args()
    sizes = [int(size) for size in args.per_host.split(",") if size]
    if args.one:
        consumer, code, nodes, workloads, work = args.one.split(":", 4)
        print(one_call(consumer, code, int(nodes), int(workloads), work))
        return 0
    if args.only_per_host:
        per_host(sizes, args.workloads, args.rounds)
        return 0
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
    per_host(sizes, args.workloads, args.rounds)
    print(f"  goal (model <= plain ipaddress, cold): {'met' if not failed else 'NOT met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
